"""The executor payload contract: runtime files, environment variables and the command line.

Real bundles read these exact names, so nothing here is a design choice: files are
``mirror_neuron_*`` (both generations), variables come in the April ``MIRROR_NEURON_*``
and the later ``MN_*`` spelling with identical values, and commands are bash text.
Paths are given *as the command sees them* (``/sandbox/job/...`` inside the sandbox, the
host staging directory for the host runner).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import _json
from .._time import now_iso
from ..messages import Message, encode_body
from .errors import StagingError

INPUT_FILE = "mirror_neuron_input.json"
MESSAGE_FILE = "mirror_neuron_message.json"
BODY_FILE = "mirror_neuron_body.bin"
BODY_META_FILE = "mirror_neuron_body_meta.json"
CONTEXT_FILE = "mirror_neuron_context.json"
RUNTIME_FILES = (INPUT_FILE, MESSAGE_FILE, BODY_FILE, BODY_META_FILE, CONTEXT_FILE)

ENV_PREFIXES = ("MIRROR_NEURON_", "MN_")
#: ``mn.workflow.<key>`` message headers become ``context.workflow`` and ``MN_WORKFLOW_<KEY>``.
WORKFLOW_KEYS = (
    "run_id",
    "step_id",
    "attempt_id",
    "attempt",
    "deadline_at",
    "heartbeat_deadline_at",
    "idempotency_key",
)
PLACEHOLDERS = ("input_file", "context_file", "message_file", "body_file", "workdir", "job_id", "agent_id")
NO_COMMAND = "printf '%s\\n' 'No command configured for this executor node'"


@dataclass(frozen=True, slots=True)
class RuntimePaths:
    """Where the command finds the runtime files, in its own view of the file system."""

    root: str

    def _join(self, name: str) -> str:
        return str(PurePosixPath(self.root) / name)

    @property
    def input_file(self) -> str:
        return self._join(INPUT_FILE)

    @property
    def message_file(self) -> str:
        return self._join(MESSAGE_FILE)

    @property
    def body_file(self) -> str:
        return self._join(BODY_FILE)

    @property
    def context_file(self) -> str:
        return self._join(CONTEXT_FILE)


def workflow_from_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The ``workflow`` block of the later context file, from ``mn.workflow.*`` headers."""
    out: dict[str, Any] = {}
    for key in WORKFLOW_KEYS:
        value = headers.get(f"mn.workflow.{key}")
        if value is not None:
            out[key] = value
    return out


def message_document(message: Message, job_id: str, agent_id: str) -> dict[str, Any]:
    """The full normalised message, with the job and recipient filled in when missing."""
    doc = message.to_dict()
    envelope = doc["envelope"]
    envelope.setdefault("job_id", job_id)
    envelope.setdefault("to", agent_id)
    return doc


def context_document(
    *,
    job_id: str,
    agent_id: str,
    agent_type: str,
    template_type: str | None,
    agent_state: Any,
    workflow: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "agent_id": agent_id,
        "agent_type": agent_type,
        "template_type": template_type or "generic",
        "agent_state": {} if agent_state is None else agent_state,
        "timestamp": now_iso(),
        "workflow": dict(workflow),
    }


def write_runtime_files(staging: Path, message: Message, message_doc: Any, context: Any) -> None:
    """Write the five runtime files into ``staging`` (they win over uploads of the same name).

    Raises:
        StagingError: when the body cannot be encoded for its content type/encoding.
    """
    try:
        body_bytes = encode_body(message.body, message.content_type, message.content_encoding)
    except Exception as exc:
        raise StagingError(f"message body cannot be encoded for the executor: {exc}") from exc
    meta = {"content_type": message.content_type, "content_encoding": message.content_encoding}
    files = {
        INPUT_FILE: _json.dumps_pretty(message.body),
        MESSAGE_FILE: _json.dumps_pretty(message_doc),
        BODY_FILE: body_bytes,
        BODY_META_FILE: _json.dumps_pretty(meta),
        CONTEXT_FILE: _json.dumps_pretty(context),
    }
    for name, data in files.items():
        target = staging / name
        if target.is_symlink() or target.is_dir():
            raise StagingError(f"an upload occupies the runtime file name {name}")
        target.write_bytes(data)


def contract_env(
    paths: RuntimePaths,
    *,
    message: Message,
    agent_type: str,
    template_type: str | None,
    job_id: str,
    agent_id: str,
    workdir: str,
    workflow: Mapping[str, Any],
) -> dict[str, str]:
    """The runtime variables, once per prefix (``MIRROR_NEURON_*`` and ``MN_*``)."""
    values = {
        "INPUT_FILE": paths.input_file,
        "CONTEXT_FILE": paths.context_file,
        "MESSAGE_FILE": paths.message_file,
        "BODY_FILE": paths.body_file,
        "BODY_CONTENT_TYPE": message.content_type or "application/json",
        "BODY_CONTENT_ENCODING": message.content_encoding or "identity",
        "AGENT_TYPE": agent_type,
        "AGENT_TEMPLATE": template_type or "generic",
        "JOB_ID": job_id,
        "AGENT_ID": agent_id,
        "WORKDIR": workdir,
    }
    env = {prefix + name: value for prefix in ENV_PREFIXES for name, value in values.items()}
    for key, value in workflow.items():
        env[f"MN_WORKFLOW_{key.upper()}"] = value if isinstance(value, str) else _json.dumps_str(value)
    return env


def passed_env(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``pass_env``: copy the named variables from the runtime's environment when set."""
    return {name: environ[name] for name in names if name in environ}


def resolve_workdir(configured: str | None, sandbox_root: str, root: str) -> str:
    """Map ``workdir`` onto the staging root (§8.4), in the command's view.

    ``/sandbox/job`` → root, ``/sandbox/job/x`` → root/x, a relative path → root/path, and any
    other absolute path verbatim.

    Raises:
        StagingError: when a path below the root climbs out of it with ``..``.
    """
    if not configured:
        return root
    if configured == sandbox_root:
        return root
    if configured.startswith(sandbox_root.rstrip("/") + "/"):
        suffix = configured[len(sandbox_root.rstrip("/")) + 1 :]
    elif not configured.startswith("/"):
        suffix = configured
    else:
        return configured
    parts = PurePosixPath(suffix).parts
    if ".." in parts:
        raise StagingError(f"workdir {configured} climbs out of the staging directory")
    return str(PurePosixPath(root, *parts)) if parts else root


def shell_quote(text: str) -> str:
    """Single-quote for bash, always (the original quotes every list element)."""
    return "'" + text.replace("'", "'\\''") + "'"


_PLACEHOLDER = re.compile(
    r"\{\{\s*(" + "|".join(PLACEHOLDERS) + r")\s*\}\}|\{(" + "|".join(PLACEHOLDERS) + r")\}"
)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{{name}}`` (OpenShell) and ``{name}`` (HostLocal) placeholders; others stay."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1) or m.group(2)], text)


def build_command(command: str | list[str] | None, values: Mapping[str, str]) -> str:
    """Shell text for ``bash -c``: a list is substituted and quoted element-wise."""
    if command is None or command == [] or command == "":
        return NO_COMMAND
    if isinstance(command, list):
        return " ".join(shell_quote(substitute(part, values)) for part in command)
    return substitute(command, values)


def placeholder_values(paths: RuntimePaths, workdir: str, job_id: str, agent_id: str) -> dict[str, str]:
    return {
        "input_file": paths.input_file,
        "context_file": paths.context_file,
        "message_file": paths.message_file,
        "body_file": paths.body_file,
        "workdir": workdir,
        "job_id": job_id,
        "agent_id": agent_id,
    }
