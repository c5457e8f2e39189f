"""Every /api/v1 route against a real uvicorn server, with the error mapping."""

from __future__ import annotations

import httpx
import pytest

from builders import manifest, router

from .conftest import collect, wait_for


def submit(api: httpx.Client, data: dict) -> str:
    response = api.post("/jobs", json=data)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "running"
    return response.json()["job_id"]


def test_health_and_summary(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    job_id = submit(api, collect(2))
    summary = api.get("/system/summary").json()
    assert summary["jobs"]["running"] >= 1 and summary["hosted"] >= 1
    assert summary["executor_pools"]["default"]["capacity"] == 4 and summary["node"]
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()


def test_pause_send_resume_complete_over_http(api: httpx.Client) -> None:
    job_id = submit(api, collect(4))
    wait_for(api, job_id, lambda a: a["sink"]["processed_messages"] == 1)
    paused = api.post(f"/jobs/{job_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["agents"] == 2
    assert api.get(f"/jobs/{job_id}").json()["status"] == "paused"
    for n in (1, 2, 3):
        sent = api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": n})
        assert sent.status_code == 202 and sent.json()["status"] == "enqueued"
    agents = {a["agent_id"]: a for a in api.get(f"/jobs/{job_id}/agents").json()["data"]}
    assert agents["sink"]["mailbox_depth"] == 3 and agents["sink"]["status"] == "paused"
    assert api.post(f"/jobs/{job_id}/resume").json()["backlog"] == 3
    record = api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()
    assert record["status"] == "completed"
    assert record["result"]["output"]["messages"] == [{}, {"n": 1}, {"n": 2}, {"n": 3}]
    types = [e["type"] for e in api.get(f"/jobs/{job_id}/events").json()["data"]]
    assert types.index("job_paused") < types.index("job_resumed") < types.index("job_completed")


def test_list_and_events_paging(api: httpx.Client) -> None:
    job_id = submit(api, collect(1))
    api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).raise_for_status()
    listed = api.get("/jobs", params={"limit": 500}).json()["data"]
    assert job_id in {j["job_id"] for j in listed}
    live = api.get("/jobs", params={"include_terminal": "false"}).json()["data"]
    assert job_id not in {j["job_id"] for j in live}
    every = api.get(f"/jobs/{job_id}/events").json()["data"]
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))
    page = api.get(f"/jobs/{job_id}/events", params={"after": 2, "limit": 3}).json()["data"]
    assert page == every[2:5]


def test_wait_gives_408_while_the_job_runs(api: httpx.Client) -> None:
    job_id = submit(api, collect(5))
    response = api.get(f"/jobs/{job_id}/wait", params={"timeout": 0.05})
    assert response.status_code == 408 and "timed out waiting for job" in response.json()["error"]
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert api.get(f"/jobs/{job_id}/wait").json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/jobs/ghost", None),
        ("GET", "/jobs/ghost/agents", None),
        ("GET", "/jobs/ghost/events", None),
        ("GET", "/jobs/ghost/stream", None),
        ("GET", "/jobs/ghost/wait", None),
        ("GET", "/jobs/ghost/dead-letters", None),
        ("POST", "/jobs/ghost/pause", None),
        ("POST", "/jobs/ghost/cancel", None),
        ("POST", "/jobs/ghost/agents/a/messages", {"x": 1}),
        ("POST", "/jobs/ghost/dead-letters/1/redrive", None),
        ("GET", "/no/such/route", None),
    ],
)
def test_unknown_things_are_404_with_an_error_body(
    api: httpx.Client, method: str, path: str, body: dict
) -> None:
    response = api.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json()["error"]


def test_unknown_agent_and_dead_letter_are_404(api: httpx.Client) -> None:
    job_id = submit(api, collect(3))
    response = api.post(f"/jobs/{job_id}/agents/nobody/messages", json={})
    assert response.status_code == 404
    assert response.json() == {"error": f"agent nobody is not part of job {job_id}"}
    response = api.post(f"/jobs/{job_id}/dead-letters/7/redrive")
    assert response.status_code == 404 and response.json() == {"error": f"job {job_id} has no dead letter 7"}
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()


def test_wrong_state_is_409(api: httpx.Client) -> None:
    job_id = submit(api, collect(3))
    response = api.post(f"/jobs/{job_id}/resume")
    assert response.status_code == 409 and "is not paused" in response.json()["error"]
    api.post(f"/jobs/{job_id}/pause").raise_for_status()
    assert api.post(f"/jobs/{job_id}/pause").status_code == 409
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409 and "already in a terminal state" in response.json()["error"]
    assert api.post(f"/jobs/{job_id}/agents/sink/messages", json={}).status_code == 409


def test_a_full_mailbox_is_429_with_retry_after(api: httpx.Client) -> None:
    job_id = submit(api, collect(100, max_queue_size=2))
    wait_for(api, job_id, lambda a: a["sink"]["processed_messages"] == 1)
    api.post(f"/jobs/{job_id}/pause").raise_for_status()
    for n in (1, 2):
        assert api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": n}).status_code == 202
    response = api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": 3})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert "is full (2/2 messages)" in response.json()["error"]
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()


def test_bad_input_is_422_never_500(api: httpx.Client) -> None:
    bad = {
        "manifest_version": "1.0",
        "nodes": [{"node_id": "a", "agent_type": "router"}],
        "edges": [{"edge_id": "e1", "from_node": "a", "to_node": "ghost", "message_type": "x"}],
    }
    response = api.post("/jobs", json=bad)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        "graph_id is required",
        "edge e1 references missing to_node ghost",
        "manifest must define at least one entrypoint or one node with role root/root_coordinator",
    ]
    for body in (b"[1, 2]", b"{not json", b""):
        response = api.post("/jobs", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, body
        assert response.json()["error"].startswith("invalid request")
    job_id = submit(api, collect(3))
    response = api.post(f"/jobs/{job_id}/agents/sink/messages", json={"envelope": "nope"})
    assert response.status_code == 422 and "envelope must be a JSON object" in response.json()["error"]
    assert api.post(f"/jobs/{job_id}/agents/sink/messages", json=[1]).status_code == 422
    for params in ({"after": -1}, {"limit": 0}, {"after": "x"}, {"after": 2**60}):
        assert api.get(f"/jobs/{job_id}/events", params=params).status_code == 422, params
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": "nan"}).status_code == 422
    assert api.post(f"/jobs/{job_id}/dead-letters/abc/redrive").status_code == 422
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()


def test_cleanup_deletes_ended_jobs_only(api: httpx.Client) -> None:
    done = submit(api, manifest([router("a")]))
    api.post(f"/jobs/{done}/cancel")
    live = submit(api, collect(3))
    result = api.post("/jobs/cleanup").json()
    assert done in result["deleted_jobs"] and live not in result["deleted_jobs"]
    assert result["deleted_count"] == len(result["deleted_jobs"])
    assert api.get(f"/jobs/{done}").status_code == 404
    assert api.post("/jobs/cleanup", params={"all": "true"}).json()["deleted_count"] >= 0
    assert api.get(f"/jobs/{live}").status_code == 200  # hosted jobs are never deleted
    api.post(f"/jobs/{live}/cancel").raise_for_status()


def test_openapi_documents_typed_routes(api: httpx.Client, server: object) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()  # type: ignore[attr-defined]
    paths = schema["paths"]
    assert "/api/v1/jobs/{job_id}/agents/{agent_id}/messages" in paths
    assert paths["/api/v1/jobs"]["post"]["responses"]["201"]
    assert "Delivery" in schema["components"]["schemas"]
    assert httpx.get(f"{server.url}/docs").status_code == 200  # type: ignore[attr-defined]


def test_an_unexpected_failure_is_a_json_500_without_details(
    api: httpx.Client, server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(job_id: str) -> dict:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server.app.state.runtime, "inspect_job", broken)  # type: ignore[attr-defined]
    response = api.get("/jobs/anything")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError"}
