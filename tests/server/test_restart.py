"""A server restart suspends its jobs and the next server on the same store resumes them."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from mirror_neuron.store import open_store
from security.conftest import MnServer

from .conftest import collect, serve, wait_for


def test_jobs_survive_a_server_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as first, httpx.Client(base_url=first.url + "/api/v1", timeout=30) as api:
        quiet = api.post("/jobs", json=collect(2)).json()["job_id"]
        wait_for(api, quiet, lambda a: a["sink"]["processed_messages"] == 1)
        done = api.post("/jobs", json=collect(1)).json()["job_id"]
        assert api.get(f"/jobs/{done}/wait", params={"timeout": 10}).json()["status"] == "completed"
    # The server stopped: the quiet job was suspended, not failed.
    with serve(tmp_path) as second, httpx.Client(base_url=second.url + "/api/v1", timeout=30) as api:
        job = api.get(f"/jobs/{quiet}").json()
        assert job["status"] == "running"  # suspended by the first server, resumed by this one
        agents = {a["agent_id"]: a for a in api.get(f"/jobs/{quiet}/agents").json()["data"]}
        assert agents["sink"]["current_state"]["count"] == 1  # restored, not restarted from scratch
        sent = api.post(f"/jobs/{quiet}/agents/sink/messages", json={"resumed": True})
        assert sent.status_code == 202, sent.text
        final = api.get(f"/jobs/{quiet}/wait", params={"timeout": 10}).json()
        assert final["status"] == "completed"
        assert final["result"]["output"]["messages"] == [{}, {"resumed": True}]
        events = api.get(f"/jobs/{quiet}/events").json()["data"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert sum(e["type"] == "job_recovery_started" for e in events) == 1
        assert api.get(f"/jobs/{done}").json()["status"] == "completed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_mn_serve_suspends_its_jobs_with_an_event(tmp_path: Path, sig: signal.Signals) -> None:
    server = MnServer(tmp_path).start()
    try:
        with server.client() as api:
            quiet = api.post("/jobs", json=collect(2)).json()["job_id"]
            wait_for(api, quiet, lambda a: a["sink"]["processed_messages"] == 1)
    finally:
        server.stop(sig)
    # uvicorn shuts down gracefully, then may re-raise the signal (exit by that signal, as is usual).
    assert server.proc is not None and server.proc.returncode in (0, -sig), "".join(server.stderr)
    assert "Application shutdown complete" in "".join(server.stderr)
    assert "Traceback" not in "".join(server.stderr)
    store = open_store(server.data_dir)
    try:
        record = store.get_job(quiet)
        events = [e["type"] for e in store.read_events(quiet)]
    finally:
        store.close()
    assert record is not None and record["status"] == "suspended"
    assert record["suspended_from"] == "running"
    assert events.count("job_suspended") == 1
