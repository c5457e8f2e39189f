"""``GET /api/v1/jobs``: job summaries, filtered by status, paged by an opaque cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mirror_neuron.server.client import ServerClient
from mirror_neuron.server.records import SUMMARY_KEYS
from mirror_neuron.store.base import JOB_STATUSES

from .conftest import ServerThread, collect, serve

STATUSES = ["pending", "running", "paused", "completed", "failed", "cancelled"]


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server whose store holds 66 jobs, 11 of each status, with large results."""
    with serve(tmp_path_factory.mktemp("job_list")) as srv:
        store = srv.app.state.runtime.store
        for index in range(66):
            store.create_job(
                {
                    "job_id": f"job{index:03d}",
                    "graph_id": "graph",
                    "job_name": f"job {index}",
                    "status": STATUSES[index % 6],
                    "submitted_at": "2024-01-01T00:00:00.000Z",
                    # Ties (three jobs per timestamp): the order must still be total.
                    "updated_at": f"2024-01-01T00:{index // 3:02d}:00.000Z",
                    "result": {"output": "x" * 10_000},
                    "manifest_ref": {"job_path": "/private/path"},
                    "control": "/private/socket",
                    "node": "node-a",
                    "agent_count": 2,
                    "daemon": False,
                }
            )
        yield srv


@pytest.fixture
def api(listed: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=listed.url + "/api/v1", timeout=30) as client:
        yield client


def every_page(api: httpx.Client, params: dict[str, Any], between: Any = None) -> list[str]:
    seen: list[str] = []
    params = dict(params)
    for _ in range(200):
        response = api.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "next_cursor"}
        seen += [job["job_id"] for job in body["data"]]
        if body["next_cursor"] is None:
            return seen
        assert body["data"], "a page with a cursor has jobs"
        params["cursor"] = body["next_cursor"]
        if between is not None:
            between()
    raise AssertionError("the cursors never ended")


def newest_first(listed: ServerThread, **filters: Any) -> list[str]:
    return [job["job_id"] for job in listed.app.state.runtime.store.list_jobs(**filters)]


def test_the_list_is_of_summaries_without_large_or_private_fields(api: httpx.Client) -> None:
    body = api.get("/jobs", params={"limit": 5}).json()
    assert len(body["data"]) == 5
    for job in body["data"]:
        assert set(job) <= set(SUMMARY_KEYS)
        assert {"job_id", "status", "graph_id", "job_name", "updated_at", "node", "agent_count"} <= set(job)
        assert "result" not in job and "manifest_ref" not in job and "control" not in job
    full = api.get("/jobs/job000").json()
    assert full["result"] == {"output": "x" * 10_000}  # the whole record is still one GET away


def test_the_list_pages_by_default_and_caps_limit(api: httpx.Client, listed: ServerThread) -> None:
    body = api.get("/jobs").json()
    assert len(body["data"]) == 50 and isinstance(body["next_cursor"], str)
    assert len(api.get("/jobs", params={"limit": 500}).json()["data"]) == len(newest_first(listed)) >= 66
    for limit in (0, 501, -1):
        assert api.get("/jobs", params={"limit": limit}).status_code == 422


@pytest.mark.parametrize("size", [1, 7, 11, 66])
def test_following_cursors_gives_every_job_once_in_order(
    api: httpx.Client, listed: ServerThread, size: int
) -> None:
    assert every_page(api, {"limit": size}) == newest_first(listed)


def test_status_filter_one_or_several(api: httpx.Client, listed: ServerThread) -> None:
    running = every_page(api, {"status": "running", "limit": 4})
    assert running == newest_first(listed, status="running") and len(running) == 11
    statuses = {job["status"] for job in api.get("/jobs", params={"status": "running"}).json()["data"]}
    assert statuses == {"running"}
    several = every_page(api, {"status": "paused,failed", "limit": 5})
    assert several == newest_first(listed, status=["paused", "failed"]) and len(several) == 22
    repeated = [("status", "paused"), ("status", "failed"), ("limit", "500")]
    assert [j["job_id"] for j in api.get("/jobs", params=repeated).json()["data"]] == several
    live = every_page(api, {"status": "running,completed", "include_terminal": "false"})
    assert live == running


@pytest.mark.parametrize("status", ["bogus", "running,bogus", "", "RUNNING", "running,"])
def test_unknown_status_is_422_naming_the_allowed_ones(api: httpx.Client, status: str) -> None:
    response = api.get("/jobs", params={"status": status})
    assert response.status_code == 422
    message = response.json()["error"]
    assert "status" in message
    for allowed in JOB_STATUSES:
        assert allowed in message


@pytest.mark.parametrize("cursor", ["garbage", "W10", "x" * 2000])
def test_a_cursor_the_server_did_not_give_is_422(api: httpx.Client, cursor: str) -> None:
    response = api.get("/jobs", params={"cursor": cursor})
    assert response.status_code == 422 and "cursor" in response.json()["error"]


def test_jobs_submitted_while_paging_do_not_shift_the_pages(api: httpx.Client, listed: ServerThread) -> None:
    """Real jobs submitted between pages: each job there before paging comes exactly once."""
    before = newest_first(listed)
    submitted: list[str] = []

    def submit() -> None:
        response = api.post("/jobs", json=collect(1))
        assert response.status_code == 201
        submitted.append(response.json()["job_id"])

    seen = every_page(api, {"limit": 9}, between=submit)
    assert len(seen) == len(set(seen))
    assert [job_id for job_id in seen if job_id in before] == before
    assert len(submitted) >= 7
    for job_id in submitted:  # they end, so the other tests see the statuses they expect
        assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()["status"] == "completed"


def test_the_client_follows_the_cursors(listed: ServerThread) -> None:
    with ServerClient(listed.url) as client:
        assert [j["job_id"] for j in client.jobs(page_size=7)] == newest_first(listed)
        failed = client.jobs(status=["failed"], page_size=3)
        assert [j["job_id"] for j in failed] == newest_first(listed, status="failed")
        assert all(set(job) <= set(SUMMARY_KEYS) for job in failed)
        assert client.jobs(status="cancelled", include_terminal=False) == []
