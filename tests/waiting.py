"""Waiting in tests for something that has no event to await: one bounded poll, in one place.

Use these only when the thing waited for happens elsewhere — another process, another thread's
server, a file a background task removes. Inside one event loop, await the event itself.

    from waiting import eventually, eventually_async

    letters = eventually(lambda: api.get(url).json()["data"], what="a dead letter appears")
    await eventually_async(lambda: pid_file.exists(), what="the script started")

``predicate`` is called until it returns something truthy, which is then returned. On timeout
an ``AssertionError`` names ``what`` (and the last value seen). An exception of a type in
``ignoring`` counts as "not yet"; any other exception, an ``AssertionError`` included (e.g. "the
server process exited"), ends the wait at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["eventually", "eventually_async"]

T = TypeVar("T")

#: Generous: a wait that succeeds returns as soon as it can; only a failing test waits it out.
TIMEOUT = 30.0
INTERVAL = 0.02


def eventually(
    predicate: Callable[[], T],
    *,
    what: str,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); ``AssertionError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        last: Any
        try:
            last = predicate()
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, last))
        time.sleep(interval)


async def eventually_async(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """:func:`eventually` for a running event loop: ``predicate`` may be a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last: Any
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
        except ignoring as exc:
            last = exc
        else:
            if last:
                return last
        if loop.time() >= deadline:
            raise AssertionError(_timed_out(what, timeout, last))
        await asyncio.sleep(interval)


def _timed_out(what: str, timeout: float, last: Any) -> str:
    seen = "" if last is None or isinstance(last, bool) else f" (last: {last!r})"
    return f"timed out after {timeout:g}s waiting for: {what}{seen}"
