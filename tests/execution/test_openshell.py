"""The OpenShell runner, against a fake ``openshell`` that records its argv and runs locally."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mirror_neuron.execution.errors import RunnerError

from .conftest import exists, read, run_config, write

FAKE = f"""#!{sys.executable}
import json, os, subprocess, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_OPENSHELL_LOG"], "a") as log:
    log.write(json.dumps({{"argv": argv, "no_color": os.environ.get("NO_COLOR")}}) + "\\n")
source, remote = argv[argv.index("--upload") + 1].rsplit(":", 1)
shell, flag, wrapper = argv[argv.index("--") + 1 :]
assert (shell, flag) == ("bash", "-lc"), (shell, flag)
# The "remote" sandbox is the uploaded directory itself.
wrapper = wrapper.replace(remote, source)
proc = subprocess.run(["bash", "-c", wrapper], cwd=source)
print("openshell: sandbox deleted", file=sys.stderr)
sys.exit(proc.returncode)
"""


@pytest.fixture
def fake_openshell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = write(tmp_path / "bin" / "openshell", FAKE)
    fake.chmod(0o755)
    log = tmp_path / "openshell.log"
    monkeypatch.setenv("FAKE_OPENSHELL_LOG", str(log))
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return log


async def test_openshell_one_shot_runs_the_wrapper_and_keeps_streams_apart(
    fake_openshell: Path, payloads: Path, temp_root: Path
) -> None:
    write(
        payloads / "app" / "main.sh",
        'echo "out:$(cat $MN_INPUT_FILE | tr -d " \\n")"; echo oops >&2; exit 0\n',
    )
    config = {
        "runner": "openshell",
        "upload_path": "app",
        "workdir": "/sandbox/job/app",
        "command": ["bash", "main.sh"],
        "policy": "policy.yaml",
        "providers": ["openai"],
        "gpu": True,
    }
    outcome = await run_config(config, payloads, temp_root, body={"k": 1})
    assert outcome.ok, (outcome.error, outcome.result)
    assert outcome.result["stdout"] == 'out:{"k":1}\n'
    assert outcome.result["stderr"] == "oops\n"
    assert outcome.result["runner"] == "openshell"
    assert outcome.result["remote_dir"] == "/sandbox/job"
    assert outcome.result["openshell_exit_code"] == 0
    assert "openshell: sandbox deleted" in outcome.result["logs"]
    assert "__MIRROR_NEURON_RESULT_START__" in outcome.result["raw_output"]
    record = json.loads(read(fake_openshell).splitlines()[0])
    argv = record["argv"]
    assert record["no_color"] == "1"
    assert argv[:4] == ["sandbox", "create", "--name", outcome.result["sandbox_name"]]
    assert argv[argv.index("--upload") + 1].endswith(":/sandbox/job")
    for flag in ("--no-git-ignore", "--no-keep", "--no-auto-providers", "--gpu", "--no-tty"):
        assert flag in argv
    assert argv[argv.index("--policy") + 1] == str(payloads / "policy.yaml")
    assert argv[argv.index("--provider") + 1] == "openai"
    wrapper = argv[-1]
    assert "export MN_INPUT_FILE='/sandbox/job/mirror_neuron_input.json'" in wrapper
    assert "export MIRROR_NEURON_INPUT_FILE='/sandbox/job/mirror_neuron_input.json'" in wrapper


async def test_openshell_failure_carries_the_command_status(
    fake_openshell: Path, payloads: Path, temp_root: Path
) -> None:
    outcome = await run_config(
        {"runner": "openshell", "command": "echo bad >&2; exit 4"}, payloads, temp_root
    )
    assert not outcome.ok
    assert outcome.error == "command exited with status 4: bad"
    assert outcome.result["openshell_exit_code"] == 4


async def test_openshell_without_the_cli_is_a_clear_error(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("MIRROR_NEURON_OPENSHELL_BIN", raising=False)
    with pytest.raises(RunnerError, match="openshell CLI"):
        await run_config({"runner": "openshell", "command": "true"}, payloads, temp_root)


async def test_runner_module_openshell_means_the_local_sandbox(
    fake_openshell: Path, payloads: Path, temp_root: Path, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("sandbox")
    outcome = await run_config(
        {"runner_module": "MirrorNeuron.Sandbox.OpenShell", "command": "id -u"}, payloads, temp_root
    )
    assert outcome.result["runner"] == "bwrap"
    assert not exists(fake_openshell)
