"""The live progress display of ``mn run`` on a terminal (Rich)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import render

if TYPE_CHECKING:
    from ..runtime import JobRun

REFRESH = 0.1


class LiveProgress:
    """Redraws status, elapsed time, events and collected results while a job runs."""

    def __init__(self, job: JobRun) -> None:
        from rich.console import Console
        from rich.live import Live

        self.job = job
        self.started = time.monotonic()
        self.live = Live(self._render(), console=Console(stderr=False), refresh_per_second=10, transient=True)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.live.start()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.live.stop()

    async def _loop(self) -> None:
        while True:
            self.live.update(self._render())
            await asyncio.sleep(REFRESH)

    def _collected(self) -> tuple[int, int | None]:
        collected, expected = 0, None
        for cell in self.job.cells.values():
            if cell.node.kind == "aggregator" and cell.agent is not None:
                agent: Any = cell.agent
                collected += len(agent.messages)
                if expected is None:
                    expected = agent.complete_after or (1 if agent.complete_on_message else None)
        return collected, expected

    def _render(self) -> Any:
        from rich.table import Table

        job = self.job
        elapsed = time.monotonic() - self.started
        processed = sum(c.processed for c in job.cells.values())
        busy = sum(1 for c in job.cells.values() if c.scheduled)
        collected, expected = self._collected()
        last = job.last_event
        table = Table.grid(padding=(0, 2))
        table.add_row("[bold]job[/]", render.cell(job.job_id))
        table.add_row("[bold]status[/]", render.cell(job.status, "cyan"))
        stall = job.stall.info
        if stall is not None:  # nothing queued, nothing running: say what is missing
            table.add_row("[bold]stalled[/]", render.cell(stall["reason"], "yellow"))
        table.add_row("[bold]elapsed[/]", f"{int(elapsed // 60):02d}:{elapsed % 60:05.2f}")
        table.add_row("[bold]events[/]", str(job.seq))
        table.add_row("[bold]messages[/]", f"{processed} processed, {busy} agent(s) busy")
        table.add_row("[bold]results[/]", f"{collected}/{expected if expected is not None else '?'}")
        executors = [c for c in job.cells.values() if c.node.kind == "executor"]
        if executors:
            runs = sum(c.processed for c in executors)
            leases = job.host.services["leases"].stats()
            running = sum(p["in_use"] for p in leases.values())
            waiting = sum(p["queued"] for p in leases.values())
            table.add_row("[bold]sandboxes[/]", f"{runs} run(s) by {len(executors)} executor(s)")
            table.add_row("[bold]leases[/]", f"run={running} wait={waiting}")
        if last is not None:  # written by the job's scripts: a Text, cleaned, never markup
            table.add_row(
                "[bold]last[/]", render.cell(f"{last.type}({last.agent_id})" if last.agent_id else last.type)
            )
        return table
