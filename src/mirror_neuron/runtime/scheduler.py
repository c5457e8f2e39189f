"""The run queue: cells with mail wait here for their turn; one driver task runs them.

No task per agent and none per message: a cell is appended when it receives mail while
idle, and the driver pops cells and lets each process a bounded batch, yielding to the
event loop between rounds so control calls, timers and I/O stay responsive.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cell import AgentCell


class Scheduler:
    def __init__(self, batch: int = 64, round_budget: int = 4096) -> None:
        self.batch = batch
        self.round_budget = round_budget
        self.runq: deque[AgentCell] = deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Awaited between rounds when set (the store writer's backpressure).
        self.gate: asyncio.Future[None] | None = None
        self.processed = 0

    def ready(self, cell: AgentCell) -> None:
        self.runq.append(cell)
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
                        cell.scheduled = False
                        cell._after_slice()
                except Exception as exc:  # a runtime bug must fail its job, never the scheduler
                    cell.scheduled = False
                    cell.job.fail(cell.agent_id, f"internal error in agent {cell.agent_id}: {exc!r}")
            self.processed += self.round_budget - budget
            gate = self.gate
            if gate is not None and not gate.done():
                await gate
            else:
                await asyncio.sleep(0)
