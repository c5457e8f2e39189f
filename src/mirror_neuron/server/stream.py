"""Server-sent events: a job's event log, live, resumable after any event.

Each event goes out as ``id: <seq>`` / ``event: <type>`` / ``data: <json>``. A client
that reconnects sends ``Last-Event-ID`` (browsers do it by themselves) and gets exactly
the events after that one: :meth:`Runtime.follow` never skips or repeats. The stream
ends after the job's terminal event. While nothing happens a comment line goes out
every ``heartbeat`` seconds, so proxies and load balancers keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .. import _json
from ..runtime import Runtime

#: Events buffered per stream before the follower waits for a slow client.
BUFFER = 1024
#: Tells EventSource clients how soon to reconnect (milliseconds).
RETRY_MS = 1000
HEARTBEAT = b": keep-alive\n\n"
_END = object()


def format_event(event: dict[str, Any]) -> bytes:
    """One SSE frame. The type goes on one line, so line breaks in it are flattened."""
    kind = str(event.get("type", "message")).replace("\r", " ").replace("\n", " ")
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event["seq"], kind.encode(), _json.dumps(event))


async def _pump(runtime: Runtime, job_id: str, after: int, queue: asyncio.Queue[Any]) -> None:
    try:
        async for event in runtime.follow(job_id, after=after):
            await queue.put(event)
        await queue.put(_END)
    except Exception as exc:  # tell the client instead of cutting the stream silently
        await queue.put(exc)


async def event_stream(runtime: Runtime, job_id: str, after: int, heartbeat: float) -> AsyncIterator[bytes]:
    """The response body. A separate task follows the job, so waiting for the next
    event can time out (for a heartbeat) without disturbing the follower."""
    queue: asyncio.Queue[Any] = asyncio.Queue(BUFFER)
    follower = asyncio.create_task(_pump(runtime, job_id, after, queue), name=f"sse-{job_id}")
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                yield b"event: error\ndata: %s\n\n" % _json.dumps({"error": str(item)})
                return
            yield format_event(item)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
