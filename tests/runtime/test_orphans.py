"""Jobs whose runtime is gone: every reader says so and names the way out, none waits forever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router
from mirror_neuron import Config, JobOrphaned, Runtime
from mirror_neuron.store import SQLiteStore

OLD = "2026-01-01T00:00:00.000Z"


def stranded(store: SQLiteStore, job_id: str, **fields: Any) -> None:
    """A live job record whose runtime (on another machine) stopped beating long ago."""
    store.create_job(
        {
            "job_id": job_id,
            "graph_id": "g",
            "status": "running",
            "submitted_at": OLD,
            "updated_at": OLD,
            "heartbeat_at": OLD,
            "node": "elsewhere:4242",
            "control": None,
            **fields,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "jobs.db")


async def test_waiting_for_a_job_whose_runtime_died_fails_with_the_way_out(store: SQLiteStore) -> None:
    stranded(store, "lost-1")
    async with Runtime(Config(store_url=store.url, control=False), store=store) as rt:
        with pytest.raises(JobOrphaned, match=r"is gone; run `mn job recover lost-1`"):
            await rt.wait("lost-1", timeout=60)
        with pytest.raises(JobOrphaned):
            async for _ in rt.follow("lost-1"):
                pass
        assert "is gone" in (await rt.inspect_job("lost-1"))["orphaned"]
        listed = {j["job_id"]: j for j in await rt.list_jobs()}
        assert "is gone" in listed["lost-1"]["orphaned"]


async def test_a_suspended_job_is_reported_at_once(store: SQLiteStore) -> None:
    now = "2100-01-01T00:00:00.000Z"  # a fresh heartbeat does not make a suspended job live
    stranded(store, "paused-1", status="suspended", heartbeat_at=now)
    async with Runtime(Config(store_url=store.url, control=False), store=store) as rt:
        with pytest.raises(JobOrphaned, match="was suspended"):
            await rt.wait("paused-1", timeout=60)


def test_mn_job_events_follow_stops_with_the_way_out(store: SQLiteStore) -> None:
    stranded(store, "lost-2")
    follow = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "--store", store.url, "job", "events", "lost-2", "--follow"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert follow.returncode == 1
    assert "mn job recover lost-2" in follow.stderr
    assert "Traceback" not in follow.stderr


async def test_cleanup_never_deletes_a_live_job(store: SQLiteStore, tmp_path: Path) -> None:
    stranded(store, "suspended-1", status="suspended")
    async with Runtime(Config(store_url=store.url), store=store) as host:
        running = await host.submit(
            manifest([router("a"), aggregator("sink", complete_after=2)], [("a", "sink", "init")])
        )
        ended, _ = await host.run(
            manifest(
                [router("a"), aggregator("sink", complete_after=1)],
                [("a", "sink", "init")],
                initial_inputs={"a": [{"n": 1}]},
            ),
            timeout=30,
        )
        other = SQLiteStore(tmp_path / "jobs.db")
        async with Runtime(Config(store_url=other.url, control=False), store=other) as operator:
            result = await operator.control.cleanup(all=True)
        assert result["deleted_jobs"] == [ended]
        assert {j["job_id"]: j["status"] for j in result["skipped_jobs"]} == {
            running: "running",
            "suspended-1": "suspended",
        }
        # The running job lost nothing: it goes on and completes.
        await host.control.send_message(running, "sink", {"type": "init", "body": {"n": 2}})
        assert (await host.wait(running, timeout=30))["status"] == "completed"
