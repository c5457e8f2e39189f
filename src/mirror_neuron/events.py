"""Job events: the append-only, ordered record of what happened in a job (§6).

An :class:`Event` keeps raw values (a float timestamp, a reference to a payload) and
turns into the original's JSON shape only when read, so emitting one on the hot path
costs an allocation and nothing else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._time import iso
from .ids import fmt

#: Field names of a message summary, which the runtime records as a bare tuple.
SUMMARY_KEYS = ("message_id", "from", "to", "type", "class", "content_type", "content_encoding", "stream")


class Event(NamedTuple):
    """One job event. ``seq`` is its 1-based position in the job's event log.

    A tuple so the hot path can build it with ``tuple.__new__`` (see :func:`make`) and
    the garbage collector can untrack it.
    """

    seq: int
    type: str
    job_id: str
    timestamp: float
    agent_id: str | None = None
    payload: Any = None
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        seq, type_, job_id, timestamp, agent_id, payload, extra = self
        data: dict[str, Any] = {"type": type_, "job_id": job_id, "timestamp": iso(timestamp)}
        if agent_id is not None:
            data["agent_id"] = agent_id
        if payload is not None:
            if payload.__class__ is tuple:  # a message summary (the hottest event): spelled out
                mid, sender, to, mtype, cls, ctype, encoding, stream = payload
                payload = {
                    "message_id": fmt(mid),
                    "from": sender,
                    "to": to,
                    "type": mtype,
                    "class": cls,
                    "content_type": ctype,
                    "content_encoding": encoding,
                    "stream": stream,
                }
            data["payload"] = payload
        if extra:
            data.update(extra)
        data["seq"] = seq
        return data

    def __repr__(self) -> str:
        return f"<Event #{self.seq} {self.type} {self.agent_id or ''}>"


_tuple_new = tuple.__new__


def make(
    seq: int, type: str, job_id: str, timestamp: float, agent_id: str | None, payload: Any, extra: Any
) -> Event:
    """Build an :class:`Event` without the NamedTuple constructor's overhead."""
    return _tuple_new(Event, (seq, type, job_id, timestamp, agent_id, payload, extra))
