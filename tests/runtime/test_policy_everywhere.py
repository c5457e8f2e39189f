"""The execution policy holds however a job gets to run: submitted, recovered, or built by hand."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from builders import manifest, router
from mirror_neuron import Config, Runtime
from mirror_neuron.execution import Executor, ExecutorSettings, RunnerError
from mirror_neuron.policy import ExecutionPolicy
from mirror_neuron.server import ServerSettings
from mirror_neuron.server.app import submitted_policy

WAIT = 30


def host_job(marker: Path) -> dict:
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {"runner": "host_local", "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]},
    }
    return manifest([router("entry"), worker], [("entry", "worker", "init")])


async def test_a_job_recovered_by_a_stricter_runtime_fails_instead_of_running(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    marker = tmp_path / "ran"
    trusting = Runtime(Config(store_url=store, control=False, temp_dir=tmp_path / "tmp"))
    await trusting.start()
    await trusting.control.pause(job_id := await trusting.submit(host_job(marker)))
    await trusting.close(keep_jobs=True)  # suspended, like a server that stopped with the job live
    strict = Config(
        store_url=store, control=False, temp_dir=tmp_path / "tmp", policy=ExecutionPolicy.submitted()
    )
    async with Runtime(strict) as rt:
        assert job_id in await rt.control.recover_orphans()
        record = await rt.wait(job_id, WAIT)
    assert record["status"] == "failed"
    assert "cannot be resumed by this runtime" in record["result"]["error"]
    assert "host_local" in record["result"]["error"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        ({"runner": "host_local"}, 'runner "host_local"'),
        ({"runner": "openshell"}, 'runner "openshell"'),
        ({"network": True}, "network: true"),
    ],
)
def test_an_executor_never_runs_what_its_policy_refuses(config: dict, refused: str) -> None:
    settings = ExecutorSettings.from_config(config)
    with pytest.raises(RunnerError, match=f"does not allow {refused}"):
        Executor(settings, policy=ExecutionPolicy.submitted())
    Executor(settings, policy=ExecutionPolicy())  # the trusting default runs it


def test_the_server_keeps_the_operators_settings_and_closes_the_doors() -> None:
    operator = ExecutionPolicy(
        network_allow=("10.20.0.15/32",), network_deny=("8.8.8.0/24",), openshell_bin="/opt/openshell"
    )
    policy = submitted_policy(operator, ServerSettings(allow_network=True, pass_env=("A_TOKEN",)))
    assert policy.network_allow == ("10.20.0.15/32",) and policy.network_deny == ("8.8.8.0/24",)
    assert policy.openshell_bin == "/opt/openshell" and policy.allow_network
    assert not policy.allow_host_local and not policy.allow_openshell
    assert policy.pass_env == frozenset({"A_TOKEN"}) and policy.max_run_seconds == 3600
    own_cap = submitted_policy(operator.with_(max_run_seconds=60), ServerSettings())
    assert own_cap.max_run_seconds == 60


async def test_no_run_outlasts_the_runtimes_cap(tmp_path: Path) -> None:
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {"runner": "host_local", "command": "sleep 600"},
    }
    config = Config(store_url="memory://", control=False, policy=ExecutionPolicy(max_run_seconds=0.5))
    async with Runtime(config) as rt:
        record = await asyncio.wait_for(
            rt.run(manifest([router("entry"), worker], [("entry", "worker", "init")])), WAIT
        )
    assert record[1]["status"] == "failed"
    assert "timed out after 0.5s" in record[1]["result"]["error"]
