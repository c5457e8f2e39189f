"""``mn monitor``: a terminal UI of the jobs of a store or server (Textual).

The jobs screen lists every job, refreshed every second; enter opens one on the job
screen: its header (status, elapsed, agents by state, traffic, why it failed), its
agents, the selected agent's details (in-flight message, dead letters, executor runs)
and the live event log, with keys to pause, resume, cancel, send a message and redrive
dead letters. Everything goes through a :class:`~.source.Source`, so the same app
watches the local store or an ``mn serve``.

Only this module and its ``tui_*`` parts import Textual; the CLI imports it inside the
``monitor`` command, so ``mn --help`` never loads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding

from .source import Source
from .tui_format import clean, later, title
from .tui_job import JobScreen
from .tui_jobs import JobsScreen

__all__ = ["JobScreen", "JobsScreen", "MonitorApp", "run_monitor"]


class MonitorApp(App[None]):
    """The monitor over ``source``; with ``job_id`` (a whole id or a unique prefix) it opens
    on that job. ``clock`` gives "now" in epoch seconds (ages and elapsed times)."""

    TITLE = "mn monitor"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self, source: Source, job_id: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.source = source
        self.job_id = job_id
        self.clock = clock
        self.sub_title = title(source.where, limit=80)

    def on_mount(self) -> None:
        self.push_screen(JobsScreen(self.source, self.clock, self.open_job))
        if self.job_id is not None:
            self.run_worker(later(self._open_first, self.job_id), group="open", exit_on_error=False)

    async def _open_first(self, text: str) -> None:
        try:
            job_id = await self.source.resolve(text)
        except Exception as exc:
            self.notify(f"no job {clean(text)}: {clean(exc, limit=300)}", severity="error", markup=False)
            return
        self.open_job(job_id)

    def open_job(self, job_id: str) -> None:
        """Show ``job_id`` on a job screen (over the job list: escape comes back to it)."""
        self.push_screen(JobScreen(self.source, job_id, self.clock))


def run_monitor(source: Source, job_id: str | None = None) -> None:
    """Run the app until the user quits (q / Ctrl-C); closes the source at the end."""

    async def main() -> None:
        try:
            await MonitorApp(source, job_id).run_async()
        finally:
            await source.close()

    asyncio.run(main())
