"""Identifier generation.

Message ids are a random per-process prefix plus a counter: unique across processes
(48 random bits) and far cheaper than ``os.urandom`` per message. On the hot path a
message keeps only the counter (an ``int``); :func:`fmt` turns it into the string id
when the message or an event leaves the process.
"""

from __future__ import annotations

import itertools
import secrets
import time

PREFIX = secrets.token_urlsafe(6)
next_id = itertools.count(1).__next__


#: A message id as the hot path keeps it: a counter, a string, or ``(agent, invocation, index)``.
MessageId = int | str | tuple[str, int, int]


def fmt(mid: MessageId | None) -> str | None:
    """The public string form of an id kept as an int or a tuple on the hot path.

    Emitted messages get deterministic ids ``(agent, invocation, index)`` → ``"agent:7:0"``,
    so an emit replayed after recovery carries the id it had the first time.
    """
    kind = type(mid)
    if kind is int:
        return f"{PREFIX}{mid:x}"
    if kind in (tuple, list):  # a list once it went through JSON
        return f"{mid[0]}:{mid[1]}:{mid[2]}"  # type: ignore[index]
    return mid  # type: ignore[return-value]


def job_id(graph_id: str) -> str:
    """``<graph_id>-<unix_ms>-<12 lowercase hex>``, the original's job id format."""
    return f"{graph_id}-{int(time.time() * 1000)}-{secrets.token_hex(6)}"


def lease_id() -> str:
    return secrets.token_urlsafe(8)
