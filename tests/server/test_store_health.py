"""Over HTTP: deep bodies get a 422 and the server keeps storing; a store that takes no writes is a 503.

Before, a 300-level message body was acknowledged (202) and then silently stopped every
write of the server, while /health kept saying ok.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirror_neuron.errors import StoreError
from waiting import eventually

from .conftest import ServerThread, collect, serve

#: Bounds every wait on the server (a real one, in another thread).
WAIT = 30.0


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"marker": "deep"}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerThread]:
    """A server of the test's own: its store is made to fail."""
    with serve(tmp_path) as srv:
        yield srv


@pytest.fixture
def own_api(own_server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_server.url + "/api/v1", timeout=WAIT) as client:
        yield client


def wait_health(api: httpx.Client, status: int) -> httpx.Response:
    """Poll /health (the server's writer retries on its own timer) until it answers ``status``."""

    def answered() -> httpx.Response | None:
        response = api.get("/health")
        return response if response.status_code == status else None

    return eventually(answered, timeout=WAIT, interval=0.05, what=f"/health to answer {status}")


def test_a_300_level_message_body_is_a_422_and_jobs_are_still_stored(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json=collect(2)).json()["job_id"]
    refused = api.post(f"/jobs/{job_id}/agents/sink/messages", json={"body": nested(300)})
    assert refused.status_code == 422
    assert "more than 64 levels deep" in refused.json()["error"]
    assert api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": 1}).status_code == 202
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": WAIT}).json()["status"] == "completed"
    types = [e["type"] for e in api.get(f"/jobs/{job_id}/events").json()["data"]]
    assert types[0] == "job_pending" and types[-1] == "job_completed"  # stored, not only in memory
    assert api.get("/health").json() == {"status": "ok"}


def test_a_manifest_with_300_level_initial_inputs_is_a_422(api: httpx.Client) -> None:
    data = collect(2)
    data["initial_inputs"] = {"entry": [nested(300)]}
    refused = api.post("/jobs", json=data)
    assert refused.status_code == 422
    assert "levels deep" in refused.json()["error"]


def test_health_is_503_with_the_reason_while_the_store_takes_no_writes(
    own_server: ServerThread, own_api: httpx.Client
) -> None:
    assert own_api.get("/health").json() == {"status": "ok"}
    job_id = own_api.post("/jobs", json=collect(5)).json()["job_id"]
    assert own_api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": 1}).status_code == 202
    store = own_server.app.state.runtime.store

    def refuse(batch: Any) -> None:
        raise StoreError(f"SQLite store {store.path}: writing a batch failed: database or disk is full")

    store.write_batch = refuse  # the next write fails, as on a full disk
    try:
        lost = own_api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": 2})
        assert lost.status_code == 503 and "disk is full" in lost.json()["error"]  # not a 202
        health = own_api.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded" and "disk is full" in body["reason"] and body["since"]
    finally:
        del store.write_batch
    assert wait_health(own_api, 200).json() == {"status": "ok"}
    record = own_api.get(f"/jobs/{job_id}").json()
    assert record["status"] == "failed" and "the store failed" in record["result"]["error"]
