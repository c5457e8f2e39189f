"""What monitors read: a job's graph and its executors' logs, over a real server."""

from __future__ import annotations

import sys

import httpx
import pytest

from builders import aggregator, manifest, router
from mirror_neuron.errors import MirrorNeuronError
from mirror_neuron.monitor import JobView, RemoteSource

from .conftest import ServerThread, collect


def test_the_graph_of_a_job_lists_its_agents_and_edges(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json=collect(2)).json()["job_id"]
    graph = api.get(f"/jobs/{job_id}/graph").json()
    assert graph["job_id"] == job_id and graph["entrypoints"] == ["entry"]
    assert [(n["id"], n["kind"]) for n in graph["nodes"]] == [("entry", "router"), ("sink", "aggregator")]
    assert [(e["from"], e["to"], e["message_type"]) for e in graph["edges"]] == [("entry", "sink", "init")]
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert api.get(f"/jobs/{job_id}/graph").json()["nodes"] == graph["nodes"]  # also once ended
    assert api.get("/jobs/ghost/graph").status_code == 404


def test_one_agent_can_be_read_by_its_id(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json=collect(3)).json()["job_id"]
    sink = api.get(f"/jobs/{job_id}/agents/sink").json()
    assert sink["agent_id"] == "sink" and sink["agent_type"] == "aggregator" and sink["status"] == "idle"
    missing = api.get(f"/jobs/{job_id}/agents/ghost")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert api.get(f"/jobs/{job_id}/agents/sink").json()["status"] == "cancelled"  # also from the store


def _logging_job(script: str) -> dict[str, object]:
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {"runner": "host_local", "command": [sys.executable, "-c", script]},
    }
    data = manifest([router("entry"), worker, aggregator("sink", complete_after=1)])
    data["edges"] = [
        {"from_node": "entry", "to_node": "worker", "message_type": "init"},
        {"from_node": "worker", "to_node": "sink", "message_type": "done"},
    ]
    worker["config"]["output_message_type"] = "done"  # type: ignore[index]
    return data


def test_executor_logs_keep_each_runs_output(api: httpx.Client) -> None:
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    job_id = api.post("/jobs", json=_logging_job(script)).json()["job_id"]
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 30}).json()["status"] == "completed"
    [run] = api.get(f"/jobs/{job_id}/agents/worker/logs").json()["data"]
    assert run["agent_id"] == "worker" and run["invocation"] == 1 and run["ok"] is True
    assert run["stdout"] == "to stdout\n" and run["stderr"] == "to stderr\n" and run["exit_code"] == 0
    assert api.get(f"/jobs/{job_id}/agents/worker/logs", params={"after": 1}).json()["data"] == []
    assert api.get(f"/jobs/{job_id}/agents/sink/logs").json()["data"] == []  # no executor: no runs
    missing = api.get(f"/jobs/{job_id}/agents/ghost/logs")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]


def test_a_failed_runs_log_says_why_and_keeps_the_end_of_a_long_output(api: httpx.Client) -> None:
    script = "import sys; print('x' * 100_000); print('the real reason', file=sys.stderr); sys.exit(3)"
    job_id = api.post("/jobs", json=_logging_job(script)).json()["job_id"]
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 30}).json()["status"] == "failed"
    [run] = api.get(f"/jobs/{job_id}/agents/worker/logs").json()["data"]
    assert run["ok"] is False and run["exit_code"] == 3 and "status 3" in run["error"]
    assert run["stderr"] == "the real reason\n"
    assert run["stdout_truncated"] is True and len(run["stdout"]) <= 64 * 1024


async def test_a_remote_source_follows_and_controls_a_job(server: ServerThread) -> None:
    source = RemoteSource(server.url)
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v1") as api:
            job_id = (await api.post("/jobs", json=collect(2))).json()["job_id"]
        assert await source.resolve(job_id) == job_id
        view = JobView.start(
            await source.job(job_id), await source.graph(job_id), await source.agents(job_id)
        )
        assert (await source.control("pause", job_id))["status"] == "paused"
        await source.send(job_id, "sink", {"type": "init", "payload": {"n": 1}})
        assert (await source.control("resume", job_id))["status"] == "running"
        async for kind, data in source.updates(job_id):
            view.apply(kind, data)
        assert view.ended and view.status == "completed"
        assert view.agents["sink"].status == "completed" and view.agents["sink"].processed == 2
        assert {"job_paused", "job_resumed", "job_completed"} <= {e["type"] for e in view.events}
        assert [kind async for kind, _ in source.updates(job_id, after=view.last_seq)] == ["end"]
        with pytest.raises(MirrorNeuronError, match="ghost"):
            await source.job("ghost")
    finally:
        await source.close()


async def test_a_remote_source_quotes_ids_that_look_like_url_syntax(server: ServerThread) -> None:
    odd = "s?k#1%2F x"  # (a slash is refused by validation)
    data = manifest([router("entry"), aggregator(odd, complete_after=2)], [("entry", odd, "init")])
    source = RemoteSource(server.url)
    try:
        async with httpx.AsyncClient(base_url=server.url + "/api/v1") as api:
            job_id = (await api.post("/jobs", json=data)).json()["job_id"]
        assert (await source.agent(job_id, odd))["agent_id"] == odd
        assert await source.logs(job_id, odd) == []
        await source.send(job_id, odd, {"type": "init", "payload": {}})
        kinds = [kind async for kind, _ in source.updates(job_id, agents=False)]
        assert kinds[-1] == "end" and "agents" not in kinds
        assert (await source.job(job_id))["status"] == "completed"
    finally:
        await source.close()
