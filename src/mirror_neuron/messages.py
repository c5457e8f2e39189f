"""The ``mn-msg/1`` message model.

A :class:`Message` is what travels between agents. It is a slotted object rather than a
dict because millions of them are created per second on the hot path; the canonical
JSON shape (``{envelope, headers, body, artifacts, stream}``) is produced only when a
message leaves the process (:meth:`Message.to_dict`).

Two input forms are accepted (:func:`normalize`): the *spec* form with an ``envelope``
key, and the *flat* (legacy) form used by ``initial_inputs``, ``send_message`` and the
executor stdout protocol.
"""

from __future__ import annotations

from typing import Any

from . import _json
from ._time import iso, now
from .codec import JSON_TYPES, NDJSON_TYPES, OCTET_STREAM, apply_encoding, decode_body, encode_body
from .errors import MessageError
from .ids import MessageId, fmt, next_id

SPEC_VERSION = "mn-msg/1"

ENVELOPE_KEYS = (
    "spec_version",
    "message_id",
    "job_id",
    "from",
    "to",
    "type",
    "class",
    "timestamp",
    "correlation_id",
    "causation_id",
    "attempt",
    "priority",
    "ttl_ms",
    "content_type",
    "content_encoding",
)

#: Keys of a flat input that are envelope or structure, never part of the body.
RESERVED_KEYS = frozenset(
    (*ENVELOPE_KEYS[1:], "headers", "artifacts", "stream", "payload", "body", "envelope")
)

ENCODINGS = ("identity", "gzip")


class Meta:
    """The fields a message usually shares with the message that caused it.

    Kept apart so that an emitted message can inherit all of them with one reference
    instead of ten attribute copies; never mutated once built.
    """

    __slots__ = (
        "artifacts",
        "attempt",
        "cls",
        "content_encoding",
        "content_type",
        "correlation_id",
        "fresh",
        "headers",
        "priority",
        "stream",
        "ttl_ms",
    )

    def __init__(
        self,
        cls: str,
        correlation_id: int | str,
        content_type: str,
        content_encoding: str,
        headers: dict[str, Any],
        artifacts: list[Any],
        stream: dict[str, Any] | None,
        attempt: int = 1,
        priority: int = 100,
        ttl_ms: int | None = None,
    ) -> None:
        self.cls = cls
        self.correlation_id = correlation_id
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.headers = headers
        self.artifacts = artifacts
        self.stream = stream
        self.attempt = attempt
        self.priority = priority
        self.ttl_ms = ttl_ms
        #: attempt/priority/ttl already have the values an emitted message resets to.
        self.fresh = attempt == 1 and priority == 100 and ttl_ms is None

    def replace(self, **changes: Any) -> Meta:
        values = {k: getattr(self, k) for k in self.__slots__ if k != "fresh"}
        values.update(changes)
        return Meta(**values)


class Message:
    """One ``mn-msg/1`` message. Immutable once built; derive new ones with :meth:`child`/:meth:`derive`."""

    __slots__ = ("_cause", "_mid", "body", "job_id", "meta", "sender", "timestamp", "to", "type")

    def __init__(
        self,
        type: str,
        body: Any,
        *,
        job_id: str | None = None,
        sender: str = "runtime",
        to: str | None = None,
        cls: str = "event",
        message_id: MessageId | None = None,
        timestamp: float | str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        attempt: int = 1,
        priority: int = 100,
        ttl_ms: int | None = None,
        content_type: str = "application/json",
        content_encoding: str = "identity",
        headers: dict[str, Any] | None = None,
        artifacts: list[Any] | None = None,
        stream: dict[str, Any] | None = None,
    ) -> None:
        self.type = type
        self.body = body
        self.job_id = job_id
        self.sender = sender
        self.to = to
        self._mid: MessageId = message_id or next_id()
        self.timestamp = now() if timestamp is None else timestamp
        self._cause: MessageId | None = causation_id
        self.meta = Meta(
            cls,
            correlation_id or next_id(),
            content_type,
            content_encoding,
            {} if headers is None else headers,
            [] if artifacts is None else artifacts,
            stream,
            attempt,
            priority,
            ttl_ms,
        )

    # Read-only views of the shared fields.
    message_id = property(lambda self: fmt(self._mid), doc="The envelope's message id.")
    causation_id = property(lambda self: fmt(self._cause), doc="Id of the message that caused this one.")
    correlation_id = property(lambda self: fmt(self.meta.correlation_id))
    cls = property(lambda self: self.meta.cls, doc="The envelope ``class``.")
    content_type = property(lambda self: self.meta.content_type)
    content_encoding = property(lambda self: self.meta.content_encoding)
    headers = property(lambda self: self.meta.headers)
    artifacts = property(lambda self: self.meta.artifacts)
    stream = property(lambda self: self.meta.stream)
    attempt = property(lambda self: self.meta.attempt)
    priority = property(lambda self: self.meta.priority)
    ttl_ms = property(lambda self: self.meta.ttl_ms)

    def child(
        self, sender: str, to: str, type: str, body: Any, message_id: MessageId | None = None
    ) -> Message:
        """An emitted message that inherits what the original inherits (§3.4).

        Class, correlation, content type/encoding, headers, artifacts and stream carry
        over; ``causation_id`` is this message's id; attempt/priority/ttl are reset.
        """
        m = _new(Message)
        m.type = type
        m.body = body
        m.job_id = self.job_id
        m.sender = sender
        m.to = to
        m._mid = message_id or next_id()
        m.timestamp = now()
        m._cause = self._mid
        meta = self.meta
        m.meta = meta if meta.fresh else meta.replace(attempt=1, priority=100, ttl_ms=None)
        return m

    def derive(
        self,
        sender: str,
        to: str,
        type: str,
        body: Any,
        *,
        cls: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        content_type: str | None = None,
        content_encoding: str | None = None,
        headers: dict[str, Any] | None = None,
        artifacts: list[Any] | None = None,
        stream: dict[str, Any] | None = None,
        message_id: MessageId | None = None,
    ) -> Message:
        """Like :meth:`child` with overrides; given headers are merged over the incoming ones."""
        m = self.child(sender, to, type, body, message_id)
        changes: dict[str, Any] = {}
        if cls is not None:
            changes["cls"] = cls
        if correlation_id is not None:
            changes["correlation_id"] = correlation_id
        if content_type is not None:
            changes["content_type"] = content_type
        if content_encoding is not None:
            changes["content_encoding"] = content_encoding
        if headers:
            changes["headers"] = {**self.meta.headers, **headers}
        if artifacts is not None:
            changes["artifacts"] = artifacts
        if stream is not None:
            changes["stream"] = stream
        if changes:
            m.meta = m.meta.replace(**changes)
        if causation_id is not None:
            m._cause = causation_id
        return m

    def envelope(self) -> dict[str, Any]:
        meta = self.meta
        env = {
            "spec_version": SPEC_VERSION,
            "message_id": fmt(self._mid),
            "job_id": self.job_id,
            "from": self.sender,
            "to": self.to,
            "type": self.type,
            "class": meta.cls,
            "timestamp": iso(self.timestamp),
            "correlation_id": fmt(meta.correlation_id),
            "causation_id": fmt(self._cause),
            "attempt": meta.attempt,
            "priority": meta.priority,
            "ttl_ms": meta.ttl_ms,
            "content_type": meta.content_type,
            "content_encoding": meta.content_encoding,
        }
        return {k: v for k, v in env.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The canonical ``{envelope, headers, body, artifacts, stream}`` form."""
        meta = self.meta
        return {
            "envelope": self.envelope(),
            "headers": meta.headers,
            "body": self.body,
            "artifacts": meta.artifacts,
            "stream": meta.stream,
        }

    def summary(self) -> dict[str, Any]:
        """The short form used in ``agent_message_received`` events."""
        meta = self.meta
        return {
            "message_id": fmt(self._mid),
            "from": self.sender,
            "to": self.to,
            "type": self.type,
            "class": meta.cls,
            "content_type": meta.content_type,
            "content_encoding": meta.content_encoding,
            "stream": meta.stream,
        }

    def __repr__(self) -> str:
        return f"<Message {self.type!r} {self.sender}->{self.to} id={self.message_id}>"


_new = object.__new__


def normalize(
    data: Any,
    *,
    job_id: str | None = None,
    sender: str = "runtime",
    to: str | None = None,
    type: str = "command",
    cls: str = "event",
) -> Message:
    """Build a :class:`Message` from the spec form or the flat form (§3.2).

    The keyword arguments are defaults: values present in ``data`` win over them, except
    ``job_id`` and ``to`` which the runtime always knows better when it gives them.
    """
    if isinstance(data, Message):
        return data
    if data.__class__ is dict and data.keys().isdisjoint(RESERVED_KEYS):
        # Fast path: a plain payload (how initial inputs usually look) is the body itself.
        m = _new(Message)
        m.type = type
        m.body = dict(data)
        m.job_id = job_id or None  # as the general path: an empty id is no id
        m.sender = sender
        m.to = to or None
        m._mid = next_id()
        m.timestamp = now()
        m._cause = None
        m.meta = Meta(cls, next_id(), "application/json", "identity", {}, [], None)
        return m
    if not isinstance(data, dict):
        raise MessageError(f"message must be a JSON object, got {_kind(data)}")
    if "envelope" in data:
        env = data["envelope"]
        if not isinstance(env, dict):
            raise MessageError(f"message envelope must be a JSON object, got {_kind(env)}")
        body = data.get("body")
        src = env
    else:
        if "body" in data:
            body = data["body"]
        elif "payload" in data:
            body = data["payload"]
        else:
            body = {k: v for k, v in data.items() if k not in RESERVED_KEYS}
        src = data
    get = src.get
    headers = data.get("headers")
    artifacts = data.get("artifacts")
    stream = data.get("stream")
    mtype = get("type") or type
    if not isinstance(mtype, str):
        raise MessageError(f"message type must be a string, got {_kind(mtype)}")
    ctype = get("content_type") or "application/json"
    if not isinstance(ctype, str):
        raise MessageError(f"message content_type must be a string, got {_kind(ctype)}")
    encoding = get("content_encoding") or "identity"
    if encoding not in ENCODINGS:
        raise MessageError(f'unsupported content_encoding "{encoding}"')
    return Message(
        mtype,
        body,
        job_id=job_id or get("job_id"),
        sender=get("from") or sender,
        to=to or get("to"),
        cls=get("class") or cls,
        message_id=_str_or_none(get("message_id")),
        timestamp=_timestamp(get("timestamp")),
        correlation_id=_str_or_none(get("correlation_id")),
        causation_id=_str_or_none(get("causation_id")),
        attempt=_int(get("attempt"), 1),
        priority=_int(get("priority"), 100),
        ttl_ms=_int(get("ttl_ms"), None),
        content_type=ctype,
        content_encoding=encoding,
        headers=headers if isinstance(headers, dict) else {},
        artifacts=artifacts if isinstance(artifacts, list) else [],
        stream=stream if isinstance(stream, dict) else None,
    )


def from_dict(data: dict[str, Any]) -> Message:
    """Rebuild a message from :meth:`Message.to_dict` output (for the store and the wire)."""
    return normalize(data)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


#: Epoch seconds of 10000-01-01: later (or negative) numbers have no ISO-8601 form.
_MAX_EPOCH = 253402300800


def _timestamp(value: Any) -> float | str | None:
    """An input timestamp as kept on a message: text as given, epoch seconds if formattable.

    Anything else (null, objects, lists, booleans, out-of-range numbers) counts as absent
    and gets the default (now), like an invalid ``attempt`` gets 1.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < _MAX_EPOCH:
        return value
    return None


def _int(value: Any, default: int | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# -- whole-message serialisation -----------------------------------------------------


def to_json(message: Message) -> bytes:
    return _json.dumps(message.to_dict())


def from_json(data: bytes | str) -> Message:
    try:
        return from_dict(_json.loads(data))
    except _json.JSONDecodeError as exc:
        raise MessageError(f"message is not valid JSON: {exc}") from exc


def to_ndjson(messages: list[Message]) -> bytes:
    return b"".join(_json.dumps(m.to_dict()) + b"\n" for m in messages)


def from_ndjson(data: bytes | str) -> list[Message]:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return [from_json(line) for line in data.splitlines() if line.strip()]


__all__ = [
    "ENCODINGS",
    "JSON_TYPES",
    "NDJSON_TYPES",
    "OCTET_STREAM",
    "RESERVED_KEYS",
    "SPEC_VERSION",
    "Message",
    "Meta",
    "apply_encoding",
    "decode_body",
    "encode_body",
    "from_dict",
    "from_json",
    "from_ndjson",
    "normalize",
    "to_json",
    "to_ndjson",
]
