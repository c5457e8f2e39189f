"""What the screens look like, from fixed data (a fake source and a fixed clock) at 120x36.

Regenerate after a deliberate change with ``pytest --snapshot-update tests/monitor``, then look
at the SVGs in ``__snapshots__/``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from mirror_neuron.monitor.tui import JobScreen, MonitorApp

from .conftest import SIZE, on, until
from .fake import FAILED, RUNNING, FakeSource, clock


def app(job_id: str | None = None) -> MonitorApp:
    return MonitorApp(FakeSource(), job_id, clock=clock)


async def listed(pilot: Pilot[Any]) -> None:
    await until(pilot, lambda: getattr(pilot.app.screen, "refreshes", 0) > 0, "the job list")


async def on_the_executor(pilot: Pilot[Any]) -> None:
    """The running job, its executor ``scorer`` selected and its details read."""
    screen = await on(pilot, JobScreen)
    await until(pilot, lambda: screen.view is not None, "the job's view")
    await pilot.press("down", "down", "down", "down")
    await until(pilot, lambda: screen._detail[0] == "scorer" and screen._detail[3], "scorer's runs")


async def on_the_failed_job(pilot: Pilot[Any]) -> None:
    screen = await on(pilot, JobScreen)
    await until(
        pilot,
        lambda: screen._detail[0] == "load" and screen._detail[3] is not None,
        "the failed agent's details",
    )


def test_jobs_screen(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=listed)


def test_job_screen(snap_compare: Any) -> None:
    assert snap_compare(app(RUNNING[:8]), terminal_size=SIZE, run_before=on_the_executor)


def test_failed_job_screen(snap_compare: Any) -> None:
    assert snap_compare(app(FAILED), terminal_size=SIZE, run_before=on_the_failed_job)
