"""The structured stdout protocol: how a script's output becomes state, events and messages.

Only a stdout that is *entirely* one JSON object with at least one protocol key counts;
anything else (plain text, a JSON list, a JSON object without protocol keys such as the
prime worker's result) is opaque and only travels in ``sandbox.stdout``. Malformed
entries are dropped one by one, as the original does, instead of failing the run.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from .. import _json

PROTOCOL_KEYS = ("emit_messages", "events", "next_state", "complete_job", "complete_job?")
#: emit_messages fields passed on as emit options (``class`` becomes ``cls``).
EMIT_OPTIONS = {
    "class": "cls",
    "correlation_id": "correlation_id",
    "causation_id": "causation_id",
    "content_type": "content_type",
    "content_encoding": "content_encoding",
    "headers": "headers",
    "artifacts": "artifacts",
    "stream": "stream",
}
_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "headers": dict,
    "artifacts": list,
    "stream": dict,
}


@dataclass(frozen=True, slots=True)
class Emit:
    """One ``emit_messages`` entry: direct to ``to`` when set, else along matching edges."""

    type: str
    body: Any
    to: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """What a structured stdout asks for, in the order the executor applies it."""

    has_next_state: bool = False
    next_state: Any = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    emits: list[Emit] = field(default_factory=list)
    #: ``"value"`` completes with :attr:`completion`, ``"output"`` with the default payload.
    complete: str | None = None
    completion: Any = None


def parse_structured(stdout: str) -> StructuredOutput | None:
    """Parse ``stdout`` if it is a protocol object, else ``None`` (opaque output)."""
    text = stdout.strip()
    if not text.startswith("{") or not text.endswith("}"):
        return None
    try:
        doc = _json.loads(text)
    except _json.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not any(key in doc for key in PROTOCOL_KEYS):
        return None
    complete: str | None = None
    if doc.get("complete_job") is not None:
        complete = "value"
    elif doc.get("complete_job?"):
        complete = "output"
    return StructuredOutput(
        has_next_state="next_state" in doc,
        next_state=doc.get("next_state"),
        events=_events(doc.get("events")),
        emits=_emits(doc.get("emit_messages")),
        complete=complete,
        completion=doc.get("complete_job"),
    )


def _events(items: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not item["type"]:
            continue
        payload = item.get("payload", {})
        if payload is None:
            payload = {}
        if isinstance(payload, dict):
            out.append((item["type"], payload))
    return out


def _emits(items: Any) -> list[Emit]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        emit = _emit(item)
        if emit is not None:
            out.append(emit)
    return out


def _emit(item: Any) -> Emit | None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not item["type"]:
        return None
    if item.get("body_base64") is not None:
        try:
            body: Any = base64.b64decode(str(item["body_base64"]), validate=True)
        except (binascii.Error, ValueError):
            return None
    elif "body" in item:
        body = item["body"]
    elif "payload" in item:
        body = item["payload"]
    else:
        body = {}
    to = item.get("to")
    options: dict[str, Any] = {}
    for key, option in EMIT_OPTIONS.items():
        value = item.get(key)
        if value is None:
            continue
        expected = _OPTION_TYPES.get(key, str)
        if isinstance(value, expected):
            options[option] = value
    return Emit(item["type"], body, to if isinstance(to, str) and to else None, options)
