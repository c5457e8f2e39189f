"""The execution policy: what a bundle may ask of the host, and limits that only go down."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror_neuron.config import Config
from mirror_neuron.errors import ConfigError
from mirror_neuron.execution import Executor, ExecutorSettings, Invocation, check_executor_node
from mirror_neuron.execution.runners import runner_for
from mirror_neuron.execution.runners.openshell import OpenShellRunner, find_cli
from mirror_neuron.messages import normalize
from mirror_neuron.policy import (
    MAX_OUTPUT_BYTES,
    SANDBOX_LIMITS,
    ExecutionPolicy,
    Limits,
    limit_problems,
    parse_limits_text,
)

from .conftest import executor_node

SERVER = Config(policy=ExecutionPolicy.submitted())


def problems(config: dict, runtime: Config = SERVER, payloads: Path | None = None) -> str:
    return "\n".join(check_executor_node(executor_node(config, node_id="w"), payloads, runtime))


def test_bundle_limits_only_lower_the_caps() -> None:
    caps = Limits(cpu_seconds=10, memory_mb=100, processes=None)
    lowered = caps.lowered({"cpu_seconds": 5, "memory_mb": 1000, "processes": 7, "open_files": None})
    assert lowered == Limits(cpu_seconds=5, memory_mb=100, processes=7)
    assert caps.lowered({"memory_mb": None, "cpu_seconds": 0, "address_space_mb": 50}).memory_mb == 50
    assert caps.lowered("nonsense") is caps


def test_limit_problems_name_the_key_and_the_cap() -> None:
    found = limit_problems({"processes": None, "memory_mb": 10**6, "cpu": 1, "tmp_mb": -1}, SANDBOX_LIMITS)
    assert "limits.processes is null, which would lift the limit" in found[0]
    assert f"limits.memory_mb 1000000 is above this runtime's cap of {SANDBOX_LIMITS.memory_mb}" in found[1]
    assert "limits.cpu is not a known limit" in found[2]
    assert "limits.tmp_mb must be a positive integer" in found[3]
    assert limit_problems({"processes": 3}, SANDBOX_LIMITS) == []


def test_operator_caps_come_from_text_and_may_be_raised() -> None:
    caps = parse_limits_text("memory_mb=8192, processes=none")
    assert (
        caps.memory_mb == 8192 and caps.processes is None and caps.cpu_seconds == SANDBOX_LIMITS.cpu_seconds
    )
    with pytest.raises(ValueError, match="unknown sandbox limit"):
        parse_limits_text("mem=1")
    with pytest.raises(ConfigError, match="MIRROR_NEURON_SANDBOX_LIMITS"):
        Config.from_env({"MIRROR_NEURON_SANDBOX_LIMITS": "processes=-1"})
    config = Config.from_env({"MIRROR_NEURON_SANDBOX_LIMITS": "processes=9", "MIRROR_NEURON_DATA_DIR": "/x"})
    assert config.policy.limits.processes == 9


def test_settings_clamp_to_the_policy_whatever_the_bundle_says() -> None:
    policy = ExecutionPolicy(limits=Limits(memory_mb=256, processes=16), max_output_bytes=1000)
    settings = ExecutorSettings.from_config(
        {"limits": {"memory_mb": None, "processes": 10**6}, "max_output_bytes": 10**9}, policy
    )
    assert settings.limits == Limits(memory_mb=256, processes=16)
    assert settings.max_output_bytes == 1000
    host = ExecutorSettings.from_config({"runner": "host_local", "limits": {"cpu_seconds": 3}}, policy)
    assert host.limits == Limits(cpu_seconds=3)  # trusted code: only what the node asks


def test_a_server_refuses_what_a_local_run_allows() -> None:
    risky = {
        "network": True,
        "pass_env": ["HOME", "DB_PASSWORD"],
        "limits": {"processes": None},
        "max_output_bytes": MAX_OUTPUT_BYTES + 1,
    }
    text = problems(risky)
    assert "asks for network: true" in text
    assert "pass_env names HOME, DB_PASSWORD, which this runtime does not pass" in text
    assert "would lift the limit" in text
    assert "max_output_bytes" in text and "bundles may only lower it" in text
    local = problems({"network": True, "pass_env": ["HOME"]}, Config())
    assert local == ""
    allowed = Config(policy=ExecutionPolicy.submitted(allow_network=True, pass_env=["HOME"]))
    assert problems({"network": True, "pass_env": ["HOME"]}, allowed) == ""


def test_runners_outside_the_sandbox_are_refused_for_submitted_bundles() -> None:
    assert "host_local runner (no sandbox)" in problems({"runner": "host_local"})
    text = problems({"runner": "openshell", "sandbox_cli": "/tmp/evil.sh", "policy": "/etc/shadow"})
    assert "openshell runner, which hands the command to a program on this host" in text
    assert "sandbox_cli names a program on this host" in text
    assert "policy replaces the operator's OpenShell policy" in text
    opened = Config(policy=ExecutionPolicy.submitted(allow_openshell=True))
    keys = {"sandbox_cli": "x", "ssh_key": "k", "from": "./img", "providers": ["openai"], "remote": "gw"}
    text = problems({"runner": "openshell", **keys, "no_auto_providers": False}, opened)
    assert "openshell runner" not in text and "sandbox_cli names a program" in text
    for fragment in (
        "ssh_key names a key file",
        "from './img' names a path",
        "providers hands the operator",
        "remote sends the command",
        "no_auto_providers: false",
    ):
        assert fragment in text, fragment
    assert problems({"runner": "openshell", "from": "python:3.11", "gpu": True}, opened) == ""
    # The original's OpenShell runner_module runs in our sandbox: its OpenShell-only keys are inert.
    assert problems({"runner_module": "MirrorNeuron.Sandbox.OpenShell", "sandbox_cli": "x"}) == ""


def test_sandbox_paths_stay_inside_the_sandbox() -> None:
    assert "sandbox_upload_path must be a folder under /sandbox" in problems({"sandbox_upload_path": "/usr"})
    assert "sandbox_upload_path must be a folder under /sandbox" in problems({"sandbox_upload_path": "/"})
    assert "workdir /etc is outside /sandbox/job" in problems({"workdir": "/etc"})
    assert "climbs out" in problems({"workdir": "../../etc"})
    assert problems({"workdir": "/sandbox/job/app", "sandbox_upload_path": "/sandbox/job"}) == ""
    assert problems({"runner": "host_local", "workdir": "/srv/app"}, Config()) == ""


def test_the_openshell_cli_comes_from_the_operator(tmp_path: Path) -> None:
    tool = tmp_path / "operator-openshell"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    evil = tmp_path / "evil"
    evil.write_text("#!/bin/sh\n")
    evil.chmod(0o755)
    options = {"sandbox_cli": str(evil)}
    assert find_cli(options, {"PATH": "/usr/bin"}, configured=str(tool)) == str(tool)
    assert find_cli(options, {"PATH": "/usr/bin"}, configured=str(tool), bundle_cli=True) == str(evil)
    server = runner_for("openshell", ExecutionPolicy.submitted(allow_openshell=True, openshell_bin=str(tool)))
    assert isinstance(server, OpenShellRunner) and server.cli == str(tool) and not server.bundle_cli


def test_pass_env_copies_only_allowed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ExecutorSettings.from_config({"pass_env": ["OK_TOKEN", "SERVER_PASSWORD"]})
    executor = Executor(settings, policy=ExecutionPolicy.submitted(pass_env=["OK_TOKEN"]))
    environ = {"OK_TOKEN": "fine-value", "SERVER_PASSWORD": "never-this"}
    inv = Invocation("j", "w", normalize({"body": {}}, job_id="j"), environ=environ)
    assert executor._passed_env(inv) == {"OK_TOKEN": "fine-value"}
    assert executor.secrets(inv) == ("fine-value",)
