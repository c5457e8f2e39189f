"""What a client may submit: manifest bytes and counts, checked before anything is built from them.

Normalising, validating and starting a job cost time and memory in proportion to its
nodes, edges and seeded messages, all numbers the client picks. These checks run on the
decoded JSON (and the byte check before decoding), each a count compared with a cap, so
an oversized manifest is refused in milliseconds instead of stalling the server. They
are meant to run in a worker thread: decoding a large body is itself heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError

from .. import _json
from ..bounds import MAX_MESSAGE_BYTES
from ..bundle.model import ALL_ENTRYPOINTS, ROOT_ROLES
from ..errors import ManifestError
from .errors import ManifestOverLimit, ManifestTooLarge, MessageTooLarge
from .settings import ManifestLimits

_UTF8_BOM = b"\xef\xbb\xbf"


def check_size(size: int, limits: ManifestLimits, what: str = "manifest") -> None:
    """:class:`ManifestTooLarge` (413) for a manifest over the byte cap."""
    if size > limits.max_bytes:
        raise ManifestTooLarge(
            f"{what} is {size} bytes, more than this server's limit of {limits.max_bytes} bytes"
        )


def _entrypoints(raw: dict[str, Any]) -> list[Any]:
    """The entrypoints as the normaliser will see them (absent: the root-role nodes)."""
    value = raw.get("entrypoints")
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    if value is not None:
        return []
    nodes = raw.get("nodes")
    if not isinstance(nodes, list):
        return []
    return [n.get("node_id") for n in nodes if isinstance(n, dict) and n.get("role") in ROOT_ROLES]


def initial_input_count(raw: dict[str, Any]) -> int:
    """Every initial message the job would hold: those seeded into each entrypoint (a list,
    or the ``__entrypoints__`` key, once per entrypoint; an entrypoint without inputs gets
    one empty message) plus those kept for nodes that are not entrypoints."""
    inputs = raw.get("initial_inputs")
    sizes: dict[str, int] = {}
    if isinstance(inputs, dict):
        sizes = {str(k): len(v) if isinstance(v, list) else 1 for k, v in inputs.items()}
    elif isinstance(inputs, list):
        sizes = {ALL_ENTRYPOINTS: len(inputs)}
    default = sizes.get(ALL_ENTRYPOINTS, 1)
    entrypoints = _entrypoints(raw)
    seeded = sum(sizes.get(e, default) for e in entrypoints if isinstance(e, str))
    named = {e for e in entrypoints if isinstance(e, str)}
    kept = sum(n for k, n in sizes.items() if k != ALL_ENTRYPOINTS and k not in named)
    return seeded + kept


def count_problems(raw: dict[str, Any], limits: ManifestLimits) -> list[str]:
    """One sentence per count over its cap, naming the count and the cap."""
    problems: list[str] = []
    for key, cap in (("nodes", limits.max_nodes), ("edges", limits.max_edges)):
        value = raw.get(key)
        if isinstance(value, list) and len(value) > cap:
            problems.append(f"manifest has {len(value)} {key}, more than this server's limit of {cap}")
    if not problems:  # counting inputs walks the nodes: only once they are known to be few
        inputs = initial_input_count(raw)
        if inputs > limits.max_initial_inputs:
            problems.append(
                f"manifest has {inputs} initial inputs (a list counts once per entrypoint), "
                f"more than this server's limit of {limits.max_initial_inputs}"
            )
    return problems


def check_counts(raw: Any, limits: ManifestLimits) -> None:
    """:class:`ManifestOverLimit` (422) listing every count over its cap; non-objects pass
    (validation reports them)."""
    if isinstance(raw, dict):
        problems = count_problems(raw, limits)
        if problems:
            raise ManifestOverLimit(problems)


def _decode(data: bytes) -> Any:
    return _json.loads(data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data)


def _json_problem(exc: _json.JSONDecodeError, where: str = "") -> str:
    return f"invalid JSON{where} at line {exc.lineno}, column {exc.colno}: {exc.msg}"


def decode_body(body: bytes, limits: ManifestLimits) -> dict[str, Any]:
    """The manifest of a ``POST /jobs`` body: size, JSON, object and counts checked.

    Bad JSON or a non-object is a 422 ``invalid request``, as FastAPI's own body parsing
    answered before this ran off the event loop.
    """
    check_size(len(body), limits)
    raw = _json_object(body, "manifest")
    check_counts(raw, limits)
    return raw


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    """A request body that must be one JSON object: otherwise a 422 ``invalid request``."""
    try:
        raw = _decode(body)
    except _json.JSONDecodeError as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": _json_problem(exc)}]) from None
    if not isinstance(raw, dict):
        raise RequestValidationError([{"loc": ("body",), "msg": f"the {what} must be a JSON object"}])
    return raw


#: Room for the envelope around a message of the largest size allowed.
MESSAGE_SLACK = 64 * 1024


def decode_message(body: bytes, what: str) -> dict[str, Any]:
    """A ``POST …/messages`` body: refused by its length before parsing, then parsed.

    Runs in a worker thread: parsing megabytes must not stall the server. Depth and exact
    size are checked where every message enters the runtime (``control.check_message``),
    on what the length check leaves: at most a few megabytes.
    """
    if len(body) > MAX_MESSAGE_BYTES + MESSAGE_SLACK:
        raise MessageTooLarge(
            f"{what} is {len(body)} bytes, more than the limit of {MAX_MESSAGE_BYTES} bytes"
        )
    return _json_object(body, "message")


def check_manifest_file(path: Path, limits: ManifestLimits) -> None:
    """Check an unpacked ``manifest.json``: its size before reading it, then its counts."""
    check_size(path.stat().st_size, limits, "manifest.json")
    try:
        raw = _decode(path.read_bytes())
    except _json.JSONDecodeError as exc:
        raise ManifestError(_json_problem(exc, " in manifest.json")) from None
    check_counts(raw, limits)
