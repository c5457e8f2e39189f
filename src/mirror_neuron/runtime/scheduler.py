"""The run queue: cells with mail wait here for their turn; one driver task runs them.

No task per agent and none per message: a cell is appended when it receives mail while
idle, and the driver pops cells and lets each process a bounded batch, yielding to the
event loop between rounds so control calls, timers and I/O stay responsive.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Runnable(Protocol):
    """An agent cell as the run queue sees it."""

    agent_id: str
    scheduled: bool

    @property
    def runnable(self) -> bool: ...

    def run_slice(self, limit: int) -> int: ...

    def after_slice(self) -> None: ...

    def crashed_runtime(self, error: str) -> None: ...


class Scheduler:
    def __init__(self, batch: int = 64, round_budget: int = 4096) -> None:
        self.batch = batch
        self.round_budget = round_budget
        self.runq: deque[Runnable] = deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Awaited between rounds when set (the store writer's backpressure).
        self.gate: asyncio.Future[None] | None = None
        self.processed = 0
        #: Called whenever the run queue runs dry (the runtime looks for stalled jobs then).
        self.on_idle: Callable[[], None] | None = None

    def ready(self, cell: Runnable) -> None:
        self.runq.append(cell)
        self._wake()

    def forget(self, which: Callable[[Runnable], bool]) -> None:
        """Drop the queued cells ``which`` selects (their job was suspended); they keep their mail."""
        kept = [cell for cell in self.runq if not which(cell)]
        for cell in self.runq:
            if which(cell):
                cell.scheduled = False
        self.runq.clear()
        self.runq.extend(kept)

    def nudge(self) -> None:
        """Something outside the run queue changed (a handler task ended): look again."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def run(self) -> None:
        runq = self.runq
        loop = asyncio.get_running_loop()
        batch = self.batch
        while True:
            if not runq:
                if self.on_idle is not None:
                    self.on_idle()
                    if runq:
                        continue
                self._waiter = loop.create_future()
                await self._waiter
                continue
            budget = self.round_budget
            while runq and budget > 0:
                cell = runq.popleft()
                try:
                    if cell.runnable:
                        budget -= cell.run_slice(batch) or 1
                    else:
                        cell.after_slice()
                except Exception as exc:  # a runtime bug must fail its job, never the scheduler
                    cell.crashed_runtime(f"internal error in agent {cell.agent_id}: {exc!r}")
            self.processed += self.round_budget - budget
            gate = self.gate
            if gate is not None and not gate.done():
                await gate
            else:
                await asyncio.sleep(0)
