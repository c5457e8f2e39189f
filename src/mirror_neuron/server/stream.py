"""Server-sent events: a job's event log, live, resumable after any event.

Made for a plain browser ``EventSource`` as much as for scripts:

- each job event is an unnamed frame (``id: <seq>`` / ``data: <json>``, the type is in
  the JSON), so ``onmessage`` receives every one;
- with ``agents=true``, ``event: agent_status`` frames (``data: {"agents": [...]}``)
  carry the agents whose status changed: state, mailbox depth, processed messages, last
  error; the first one has every agent, then at most one entry per agent every ~250 ms;
- after the job's terminal event an ``event: end`` frame (``data: {"status": ...}``)
  and the stream closes. A client that reconnects sends ``Last-Event-ID`` (browsers do it
  by themselves) and gets exactly the events after that one (:meth:`Runtime.follow` never
  skips or repeats); once nothing follows an ended job's last event the answer is ``204``,
  which tells a browser to stop reconnecting;
- a failure of the stream itself is an ``event: stream_error`` frame (not ``error``, which is
  the name of ``EventSource``'s own connection-error event), then the stream closes.

While nothing happens a comment line goes out every ``heartbeat`` seconds, so proxies and
load balancers keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .. import _json
from ..runtime import Runtime, Update
from ..store.base import TERMINAL_STATUSES

#: Tells EventSource clients how soon to reconnect (milliseconds).
RETRY_MS = 1000
HEARTBEAT = b": keep-alive\n\n"


def format_event(event: dict[str, Any]) -> bytes:
    """One unnamed SSE frame: ``onmessage`` gets it; the event's type is in its data."""
    return b"id: %d\ndata: %s\n\n" % (event["seq"], _json.dumps(event))


def format_named(name: bytes, data: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name, _json.dumps(data))


async def event_stream(
    runtime: Runtime, job_id: str, after: int, heartbeat: float, *, agents: bool = False
) -> AsyncIterator[bytes]:
    """The response body: :meth:`Runtime.updates` as frames, and a heartbeat whenever the next
    update takes longer than ``heartbeat`` seconds (waited for in a task, never cancelled:
    cancelling the stream's ``anext`` would close it)."""
    updates = runtime.updates(job_id, after=after, agents=agents)
    pending: asyncio.Future[Update] | None = None
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield HEARTBEAT
                continue
            finished, pending = pending, None
            try:
                kind, data = finished.result()
            except StopAsyncIteration:
                return
            except Exception as exc:  # tell the client instead of cutting the stream silently
                yield format_named(b"stream_error", {"error": str(exc)})
                return
            if kind == "event":
                yield format_event(data)
            elif kind == "agents":
                yield format_named(b"agent_status", {"agents": data})
            else:
                yield format_named(b"end", data)
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await updates.aclose()


async def ended_at(runtime: Runtime, job_id: str, after: int) -> bool:
    """True when the job has ended and no event follows ``after``: nothing more will come."""
    record = await runtime.inspect_job(job_id)  # a 404 now, not an error frame in a 200 stream
    if record.get("status") not in TERMINAL_STATUSES:
        return False
    return not await runtime.events(job_id, after=after, limit=1)
