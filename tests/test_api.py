"""The module-level Python API: synchronous functions and their asyncio twins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mirror_neuron as mn
from builders import EXAMPLES, aggregator, manifest, router
from mirror_neuron import aio
from waiting import eventually


@pytest.fixture
def api(data_dir: Path) -> Iterator[Path]:
    """The default runtime over a fresh data dir, shut down afterwards."""
    yield data_dir
    mn.shutdown()


def test_validate_manifest_returns_the_bundle_and_starts_nothing(api: Path) -> None:
    bundle = mn.validate_manifest(str(EXAMPLES / "research_flow"))
    assert bundle.manifest.graph_id == "research_flow_v1"
    assert bundle.root_path == EXAMPLES / "research_flow"
    assert bundle.manifest_path == EXAMPLES / "research_flow" / "manifest.json"
    assert not (api / "mirror_neuron.db").exists()


def test_validate_manifest_raises_with_every_error(api: Path) -> None:
    with pytest.raises(mn.ManifestError) as err:
        mn.validate_manifest({"nodes": [{"node_id": "a", "agent_type": "nope"}], "edges": []})
    assert err.value.errors[:2] == ["manifest_version is required", "graph_id is required"]
    assert 'unsupported agent_type "nope" for node a' in err.value.errors


def test_run_manifest_with_wait_returns_id_and_terminal_record(api: Path) -> None:
    job_id, job = mn.run_manifest(str(EXAMPLES / "research_flow"), wait=True, timeout=10)
    assert job["job_id"] == job_id and job["status"] == "completed"
    assert mn.inspect_job(job_id)["status"] == "completed"
    assert [a["agent_id"] for a in mn.inspect_agents(job_id)] == ["ingress", "retriever", "reviewer"]
    assert mn.events(job_id)[-1]["type"] == "job_completed"
    assert job_id in [j["job_id"] for j in mn.list_jobs()]


def test_run_manifest_without_wait_returns_the_id_and_the_job_goes_on(api: Path) -> None:
    job_id = mn.run_manifest(str(EXAMPLES / "fan_out_fan_in"))
    assert isinstance(job_id, str)
    job = mn.wait_for_job(job_id, timeout=10)
    assert job["status"] == "completed" and job["result"]["output"]["count"] == 4


def test_run_manifest_accepts_a_prevalidated_bundle(api: Path) -> None:
    bundle = mn.validate_manifest(str(EXAMPLES / "research_flow"))
    _, job = mn.run_manifest(None, job_bundle=bundle, wait=True, timeout=10)
    assert job["result"]["agent_id"] == "reviewer"


def test_wait_for_job_on_an_unknown_id_raises_at_once(api: Path) -> None:
    with pytest.raises(mn.JobNotFound):
        mn.wait_for_job("no-such-job")


def test_wait_for_job_times_out_in_seconds(api: Path) -> None:
    quiet = manifest([router("a"), aggregator("sink", complete_after=3)], [("a", "sink", "init")])
    job_id = mn.run_manifest(quiet)
    with pytest.raises(mn.JobTimeout):
        mn.wait_for_job(job_id, timeout=0.05)


def test_raise_on_failure_turns_a_failed_job_into_an_exception(api: Path) -> None:
    bad = manifest([{"node_id": "m", "agent_type": "module", "config": {"module": "x"}}])
    with pytest.raises(mn.JobFailed, match="module agents"):
        mn.run_manifest(bad, wait=True, timeout=10, raise_on_failure=True)


def test_a_second_process_sees_jobs_run_by_the_first(api: Path) -> None:
    job_id, _ = mn.run_manifest(str(EXAMPLES / "research_flow"), wait=True, timeout=10)
    code = (
        "import mirror_neuron as mn, json, sys; "
        f"print(json.dumps([mn.inspect_job({job_id!r})['status'], len(mn.events({job_id!r})), "
        f"[a['agent_id'] for a in mn.inspect_agents({job_id!r})], mn.wait_for_job({job_id!r})['status']]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert (
        out.stdout.strip()
        == f'["completed", {len(mn.events(job_id))}, ["ingress", "retriever", "reviewer"], "completed"]'
    )


async def test_the_asyncio_api_mirrors_the_synchronous_one(data_dir: Path) -> None:
    try:
        bundle = await aio.validate_manifest(str(EXAMPLES / "research_flow"))
        job_id, job = await aio.run_manifest(None, job_bundle=bundle, wait=True, timeout=10)
        assert job["status"] == "completed"
        assert (await aio.inspect_job(job_id))["status"] == "completed"
        assert len(await aio.inspect_agents(job_id)) == 3
        assert (await aio.events(job_id))[0]["type"] == "job_pending"
        assert (await aio.list_jobs(limit=1))[0]["job_id"] == job_id
        other = await aio.run_manifest(str(EXAMPLES / "batch_alarm"))
        assert (await aio.wait_for_job(other, timeout=10))["result"]["agent_id"] == "alarm"
        with pytest.raises(mn.JobNotFound):
            await aio.wait_for_job("missing")
    finally:
        await aio.shutdown()


def test_public_names_are_pinned() -> None:
    assert set(mn.__all__) == {
        "AgentNotFound", "Bundle", "Config", "Edge", "ExecutionError", "JobFailed", "JobNotFound",
        "JobOrphaned", "JobStalled", "JobStateError", "JobTimeout", "MailboxFull", "Manifest",
        "ManifestError", "Message", "MessageError", "MirrorNeuronError", "Node", "NotFound", "Runtime",
        "StoreError", "__version__", "agent_logs", "cancel", "cleanup_jobs", "dead_letters", "events",
        "inspect_agents", "inspect_job", "inspect_nodes", "job_graph", "list_jobs", "load_bundle", "pause",
        "recover_job", "redrive", "resume", "run_manifest", "send_message", "shutdown", "validate_manifest",
        "wait_for_job",
    }  # fmt: skip
    for name in mn.__all__:
        assert getattr(mn, name) is not None


def test_inspect_nodes_shows_this_runtime_and_its_pools(api: Path) -> None:
    nodes = mn.inspect_nodes()
    mine = nodes[0]
    assert mine["pid"] == os.getpid()
    assert mine["executor_pools"]["default"] == {
        "capacity": 4,
        "in_use": 0,
        "available": 4,
        "queued": 0,
        "active": 0,
        "jobs": 0,
    }


def test_the_control_functions_steer_a_job_run_by_another_process(api: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text(
        json.dumps(manifest([router("a"), aggregator("sink", complete_after=3)], [("a", "sink", "init")]))
    )
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(api)}
    other = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "run", "--json", str(bundle)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = _first_job_id()
        assert mn.pause(job_id)["status"] == "paused"
        assert mn.inspect_job(job_id)["status"] == "paused"
        assert mn.send_message(job_id, "sink", {"n": 1})["status"] == "enqueued"
        with pytest.raises(mn.AgentNotFound):
            mn.send_message(job_id, "ghost", {})
        assert mn.resume(job_id)["status"] == "running"
        mn.send_message(job_id, "sink", {"n": 2})
        assert mn.wait_for_job(job_id, timeout=30)["result"]["output"]["messages"] == [{}, {"n": 1}, {"n": 2}]
        with pytest.raises(mn.JobStateError):
            mn.cancel(job_id)
        out, _ = other.communicate(timeout=30)
        assert json.loads(out)["status"] == "completed"
    finally:
        if other.poll() is None:
            other.kill()
            other.communicate()


def _first_job_id() -> str:
    """The job the other process runs (polling its store: there is no event to await here)."""

    def running() -> str | None:
        jobs = mn.list_jobs()
        return jobs[0]["job_id"] if jobs and jobs[0]["status"] == "running" else None

    return eventually(running, what="the other process to start its job")
