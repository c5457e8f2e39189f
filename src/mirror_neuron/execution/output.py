"""The structured stdout protocol: how a script's output becomes state, events and messages.

Only a stdout that is *entirely* one JSON object with at least one protocol key counts;
anything else (plain text, a JSON list, a JSON object without protocol keys such as the
prime worker's result) is opaque and only travels in ``sandbox.stdout``. Malformed
entries are dropped one by one, as the original does, instead of failing the run.

Two things the original got wrong are refused here. A stdout that was *meant* as
structured output but cannot be read (cut off at ``max_output_bytes``, invalid JSON such
as a lone surrogate) is :class:`InvalidOutput`, so the run fails with the reason instead
of the job silently waiting for a completion that never comes. And a script may not
emit the runtime's own events (``job_completed``, ``dead_letter``, …): forged ones would
mislead every monitor and the dead-letter list (:func:`is_reserved_event`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from .. import _json
from ..bounds import check_bounds
from ..errors import MirrorNeuronError

PROTOCOL_KEYS = ("emit_messages", "events", "next_state", "complete_job", "complete_job?")
#: A protocol key used as a JSON object key: stdout meant as structured output.
_PROTOCOL_KEY = re.compile(r'"(?:emit_messages|events|next_state|complete_job\??)"\s*:')
#: Event names (and name prefixes) the runtime emits; scripts may not use them.
RESERVED_EVENT_PREFIXES = (
    "job_",
    "agent_",
    "agents_",
    "executor_",
    "sandbox_",
    "aggregator_",
    "collector_",
    "router_",
    "sensor_",
)
RESERVED_EVENTS = frozenset({"dead_letter", "mailbox_cleared", "backpressure", "queue_overflow"})


def is_reserved_event(name: str) -> bool:
    """Whether ``name`` is (or could become) one of the runtime's own event types."""
    return name in RESERVED_EVENTS or name.startswith(RESERVED_EVENT_PREFIXES)


@dataclass(frozen=True, slots=True)
class InvalidOutput:
    """Stdout meant as structured output that cannot be read; the run fails with ``reason``."""

    reason: str


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


def read_structured(stdout: str, *, truncated: bool = False) -> StructuredOutput | InvalidOutput | None:
    """The protocol object in ``stdout``, ``None`` for opaque output, or why it cannot be read.

    ``truncated``: the runner cut stdout off at its cap, so a JSON object in it is incomplete.
    """
    text = stdout.strip()
    if not text.startswith("{"):
        return None
    if truncated:
        return InvalidOutput(
            "stdout exceeded max_output_bytes and was cut off, so its structured output cannot be read"
        )
    try:
        doc = _json.loads(text)
    except _json.JSONDecodeError as exc:
        if _PROTOCOL_KEY.search(text):
            return InvalidOutput(f"stdout looks like structured output but is not valid JSON: {exc}")
        return None
    found = _structured(doc)
    if found is not None:
        try:  # what it emits, records and keeps must be storable like any other message
            check_bounds(doc, what="structured stdout")
        except MirrorNeuronError as exc:
            return InvalidOutput(str(exc))
    return found


def parse_structured(stdout: str) -> StructuredOutput | None:
    """Parse ``stdout`` if it is a readable protocol object, else ``None`` (opaque output)."""
    found = read_structured(stdout)
    return found if isinstance(found, StructuredOutput) else None


def _structured(doc: Any) -> StructuredOutput | None:
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
