"""The monitor on a server (``mn monitor --server URL``): the same screens over the REST API
and the event stream of a real ``mn serve`` (uvicorn in a thread)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from textual.widgets import DataTable

from mirror_neuron.monitor import RemoteSource
from mirror_neuron.monitor.tui import JobsScreen, MonitorApp
from server.conftest import collect, serve

from .conftest import SIZE, job_screen, on, row, shown, until


@pytest.mark.slow  # ~2-3.5 s: a server starts and stops
async def test_a_servers_job_is_listed_followed_and_paused(tmp_path: Path) -> None:
    with serve(tmp_path, heartbeat=0.2) as server:
        async with httpx.AsyncClient(base_url=server.url + "/api/v1", timeout=30) as api:
            job_id = (await api.post("/jobs", json=collect(3))).json()["job_id"]
            source = RemoteSource(server.url)
            app = MonitorApp(source)
            try:
                async with app.run_test(size=SIZE) as pilot:
                    jobs = await on(pilot, JobsScreen)
                    await until(pilot, lambda: job_id in jobs.records, "the job listed")
                    assert row(jobs.query_one("#jobs", DataTable), job_id)[1:4] == [
                        "running",
                        "test_graph",
                        "2",
                    ]
                    assert server.url in str(app.sub_title)

                    await pilot.press("enter")
                    screen = await job_screen(pilot)
                    table = screen.query_one("#agents", DataTable)
                    await until(pilot, lambda: row(table, "sink")[4] == "1", "the sink's message counted")

                    await pilot.press("p")
                    await until(pilot, lambda: screen.view and screen.view.status == "paused", "paused")
                    assert (await api.get(f"/jobs/{job_id}")).json()["status"] == "paused"
                    await until(pilot, lambda: row(table, "sink")[2] == "paused", "the agents paused")

                    await pilot.press("c", "y")
                    await until(pilot, lambda: screen.view and screen.view.ended, "the end of the stream")
                    assert (await api.get(f"/jobs/{job_id}")).json()["status"] == "cancelled"
                    assert "cancelled" in shown(screen, "#summary")
            finally:
                await source.close()
