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
from ..runtime import Runtime
from ..store.base import TERMINAL_STATUSES

#: Events buffered per stream before the follower waits for a slow client.
BUFFER = 1024
#: Tells EventSource clients how soon to reconnect (milliseconds).
RETRY_MS = 1000
HEARTBEAT = b": keep-alive\n\n"
#: Longest wait after the terminal event for the agents' final statuses (seconds).
FINAL_STATUS_WAIT = 2.0
_END = object()


class _Statuses(list[dict[str, Any]]):
    """One ``agent_status`` frame's worth of changed agents."""


def format_event(event: dict[str, Any]) -> bytes:
    """One unnamed SSE frame: ``onmessage`` gets it; the event's type is in its data."""
    return b"id: %d\ndata: %s\n\n" % (event["seq"], _json.dumps(event))


def format_named(name: bytes, data: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name, _json.dumps(data))


async def _pump(source: AsyncIterator[Any], queue: asyncio.Queue[Any], end: bool) -> None:
    try:
        async for item in source:
            await queue.put(item)
        if end:
            await queue.put(_END)
    except Exception as exc:  # tell the client instead of cutting the stream silently
        await queue.put(exc)


async def _statuses(runtime: Runtime, job_id: str) -> AsyncIterator[_Statuses]:
    async for changed in runtime.agent_statuses(job_id):
        yield _Statuses(changed)


async def event_stream(
    runtime: Runtime, job_id: str, after: int, heartbeat: float, *, agents: bool = False
) -> AsyncIterator[bytes]:
    """The response body. Separate tasks follow the job (and its agents), so waiting for the
    next item can time out (for a heartbeat) without disturbing them."""
    queue: asyncio.Queue[Any] = asyncio.Queue(BUFFER)
    events = _pump(runtime.follow(job_id, after=after), queue, True)
    pumps = [asyncio.create_task(events, name=f"sse-{job_id}")]
    if agents:
        pumps.append(asyncio.create_task(_pump(_statuses(runtime, job_id), queue, False)))
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if item is _END:
                async for frame in _last_statuses(pumps[1:], queue):
                    yield frame
                record = await runtime.inspect_job(job_id)
                yield format_named(b"end", {"status": record.get("status")})
                return
            if isinstance(item, _Statuses):
                yield format_named(b"agent_status", {"agents": item})
            elif isinstance(item, Exception):
                yield format_named(b"stream_error", {"error": str(item)})
                return
            else:
                yield format_event(item)
    finally:
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump


async def _last_statuses(pumps: list[asyncio.Task[None]], queue: asyncio.Queue[Any]) -> AsyncIterator[bytes]:
    """The agents' final statuses, which follow the terminal event by up to one interval."""
    if pumps:
        await asyncio.wait(pumps, timeout=FINAL_STATUS_WAIT)
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, _Statuses):
            yield format_named(b"agent_status", {"agents": item})


async def ended_at(runtime: Runtime, job_id: str, after: int) -> bool:
    """True when the job has ended and no event follows ``after``: nothing more will come."""
    record = await runtime.inspect_job(job_id)  # a 404 now, not an error frame in a 200 stream
    if record.get("status") not in TERMINAL_STATUSES:
        return False
    return not await runtime.events(job_id, after=after, limit=1)
