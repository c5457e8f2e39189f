"""Shaping a run into the contract's result dict, redacting secrets, and readable failures.

Secrets: values of ``environment``/``pass_env`` variables whose *names* contain TOKEN,
SECRET, KEY, PASSWORD or COOKIE never reach results, events or job records, even when
a script prints them. Very short values are left alone: masking every "1" is noise.

Masking the raw text is not enough: JSON output can spell a secret with ``\\uXXXX``
escapes, which every reader decodes. So output that parses as JSON is redacted on its
decoded values too (:func:`redact_text`), and so is everything the runtime takes from
structured stdout. It remains best effort against a script that *wants* to leak (it can
encode a secret any way it likes); the real control is which variables a bundle may
read at all (``pass_env`` allowlist of ``mn serve``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _json
from ..bounds import MAX_DEPTH, nesting_depth
from .runners.base import RESULT_START, RunResult, marker_block

SECRET_NAME_MARKERS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "COOKIE")
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
TAIL_LINES = 10
TAIL_CHARS = 2000


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_NAME_MARKERS)


def secret_values(*envs: Mapping[str, str]) -> tuple[str, ...]:
    """Values to redact, longest first (so a secret containing another is masked whole)."""
    values = {v for env in envs for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


#: How many layers of JSON-inside-JSON-strings are decoded looking for a hidden secret.
MAX_JSON_LAYERS = 4


def redact_value(value: Any, secrets: tuple[str, ...], _layer: int = 0) -> Any:
    """Redact every string (keys included) inside a JSON-like value; bytes are checked as text."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact_text(value, secrets, _layer)
    if isinstance(value, dict):
        return {redact_value(k, secrets, _layer): redact_value(v, secrets, _layer) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, secrets, _layer) for v in value]
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="surrogateescape")
        masked = redact_text(text, secrets, _layer)
        return value if masked == text else masked.encode("utf-8", errors="surrogateescape")
    return value


def redact_text(text: str, secrets: tuple[str, ...], _layer: int = 0) -> str:
    """Mask secrets in ``text``, and in its decoded values when it is JSON (whole or per line)."""
    if not secrets or not text:
        return text
    text = redact(text, secrets)
    if "\\" not in text or _layer >= MAX_JSON_LAYERS:
        return text  # no escape sequence: nothing a JSON reader could decode into a secret
    whole = _redact_json(text, secrets, _layer)
    if whole is not None:
        return whole
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        masked = _redact_json(line, secrets, _layer)
        if masked is not None:
            lines[i], changed = masked, True
    return "\n".join(lines) if changed else text


def _redact_json(text: str, secrets: tuple[str, ...], layer: int) -> str | None:
    """``text`` re-encoded with secrets masked if it is JSON hiding one in its escapes, else ``None``."""
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["':
        return None
    try:
        doc = _json.loads(stripped)
    except _json.JSONDecodeError:
        return None
    if nesting_depth(doc, MAX_DEPTH) > MAX_DEPTH:  # too deep to check (or to encode again): mask it all
        return REDACTED
    masked = redact_value(doc, secrets, layer + 1)
    return _json.dumps_str(masked) if masked != doc else None


def redact_run(run: RunResult, secrets: tuple[str, ...]) -> RunResult:
    """The same result with secrets masked in every captured text (in place, returned).

    ``raw_output`` embeds stdout and stderr JSON-encoded, so it is rebuilt from the masked
    texts rather than masked itself (a second decoding would reveal what the first hid).
    """
    if secrets:
        run.stdout = redact_text(run.stdout, secrets)
        run.stderr = redact_text(run.stderr, secrets)
        run.logs = redact_text(run.logs, secrets)
        raw = redact_text(run.raw_output, secrets)
        start = raw.find(RESULT_START)
        head = raw[:start].rstrip() if start >= 0 else ""
        block = marker_block(run.exit_code, run.stdout, run.stderr)
        run.raw_output = f"{head}\n{block}" if head else block
    return run


def result_dict(run: RunResult, *, sandbox_name: str, remote_dir: str, node_name: str) -> dict[str, Any]:
    """The contract's ``sandbox`` result (the executor adds ``attempts`` and ``lease``)."""
    result: dict[str, Any] = {
        "sandbox_name": sandbox_name,
        "remote_dir": remote_dir,
        "exit_code": run.exit_code,
        "runner_exit_code": run.runner_exit_code,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "logs": run.logs,
        "raw_output": run.raw_output,
        "runner": run.extra.get("runner", "bwrap"),
        "node_name": node_name,
    }
    for key in ("openshell_exit_code", "warning"):
        if key in run.extra:
            result[key] = run.extra[key]
    return result


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last few lines of ``text``, what a person needs to see why a script failed."""
    last = "\n".join(text.strip().splitlines()[-lines:])
    return last if len(last) <= chars else "…" + last[-chars:]


def failure_message(run: RunResult) -> str:
    """``command exited with status 3: <last lines of stderr>`` (or the runner's own error)."""
    head = run.error or f"command exited with status {run.exit_code}{_signal_note(run.exit_code)}"
    detail = tail(run.stderr) or tail(run.stdout, lines=3, chars=500)
    return f"{head}: {detail}" if detail else head


def _signal_note(code: int) -> str:
    """`` (SIGKILL)`` for 137: shells report death by signal N as 128+N."""
    try:
        return f" ({signal.Signals(code - 128).name})" if code > 128 else ""
    except ValueError:
        return ""
