"""The monitor over real jobs: a runtime hosts them, the app reads the same store through a
:class:`LocalSource` (as ``mn monitor`` in another terminal would); and a fake source with
fixed data, for snapshots."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from mirror_neuron import Config, Runtime
from mirror_neuron.monitor import LocalSource

#: Generous: a wait that succeeds returns as soon as it can; only a failing test waits it out.
TIMEOUT = 20.0
SIZE = (120, 36)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.from_env({"MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}, temp_dir=tmp_path / "tmp")


@pytest.fixture
async def host(config: Config) -> AsyncIterator[Runtime]:
    """The runtime hosting the test's jobs (``mn run`` in another terminal)."""
    async with Runtime(config) as rt:
        yield rt


@pytest.fixture
async def source(config: Config, host: Runtime) -> AsyncIterator[LocalSource]:
    """What the app reads the store through (closed after the app)."""
    src = LocalSource(config)
    yield src
    await src.close()


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Let the app run until ``predicate()`` is truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.01)  # the screen's pending messages handled, then a short wait
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")


async def on(pilot: Pilot[Any], kind: type[Any]) -> Any:
    """The app's screen, once it is a ``kind``."""
    return await until(pilot, lambda: isinstance(pilot.app.screen, kind) and pilot.app.screen, kind.__name__)


async def job_screen(pilot: Pilot[Any], job_id: str | None = None) -> Any:
    """The job screen (of ``job_id``), once it has read its job."""
    from mirror_neuron.monitor.tui import JobScreen

    def ready() -> Any:
        screen = pilot.app.screen
        ok = isinstance(screen, JobScreen) and screen.view is not None
        return ok and (job_id is None or screen.job_id == job_id) and screen

    return await until(pilot, ready, f"the screen of job {job_id or '?'}")


def plain(value: Any) -> str:
    """What a cell or a Static shows, as text (a Rich renderable rendered, 200 columns wide)."""
    content = getattr(value, "content", value)
    if hasattr(content, "plain"):
        return str(content.plain)
    if isinstance(content, str):
        return content
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def row(table: Any, key: str) -> list[str]:
    """The cells of a DataTable's row, as text."""
    return [plain(cell) for cell in table.get_row(key)]


def shown(screen: Any, selector: str) -> str:
    """The text of a Static on ``screen``."""
    from textual.widgets import Static

    return plain(screen.query_one(selector, Static))


def log_lines(screen: Any) -> list[str]:
    """The lines of the job screen's event log."""
    from textual.widgets import RichLog

    return [line.text.rstrip() for line in screen.query_one("#events", RichLog).lines]


def recording(app: Any) -> list[str]:
    """Every notification of ``app`` from now on (their texts, in order)."""
    said: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        said.append(str(message))
        notify(message, **kwargs)

    app.notify = record
    return said
