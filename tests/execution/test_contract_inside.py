"""The contract as a script sees it, from inside the sandbox (and on the host runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_neuron.execution.errors import StagingError
from mirror_neuron.messages import normalize

from .conftest import PY, exists, run_config, staged_leftovers, write

pytestmark = pytest.mark.usefixtures("sandbox")

REPORT = """
import json, os, sys
names = ["INPUT_FILE", "CONTEXT_FILE", "MESSAGE_FILE", "BODY_FILE", "BODY_CONTENT_TYPE",
         "BODY_CONTENT_ENCODING", "AGENT_TYPE", "AGENT_TEMPLATE", "JOB_ID", "AGENT_ID", "WORKDIR"]
env = {p + n: os.environ.get(p + n) for p in ("MIRROR_NEURON_", "MN_") for n in names}
files = {}
for key in ("INPUT_FILE", "CONTEXT_FILE", "MESSAGE_FILE"):
    with open(os.environ["MIRROR_NEURON_" + key]) as f:
        files[key] = json.load(f)
with open(os.environ["MN_BODY_FILE"], "rb") as f:
    files["BODY"] = f.read().decode()
print(json.dumps({"env": env, "files": files, "cwd": os.getcwd(), "argv": sys.argv[1:],
                  "extra": {k: os.environ.get(k) for k in ("GREETING", "COUNT", "PASSED")}}))
"""


async def test_script_sees_contract_files_and_both_env_families_inside_the_sandbox(
    payloads: Path, temp_root: Path
) -> None:
    write(payloads / "app" / "report.py", REPORT)
    config = {
        "upload_path": "app",
        "workdir": "/sandbox/job/app",
        "command": ["python3", "report.py", "two words", "{job_id}"],
        "environment": {"GREETING": "hi", "COUNT": 3},
    }
    outcome = await run_config(
        config, payloads, temp_root, body={"text": "hello"}, agent_type="sandbox_worker"
    )
    assert outcome.ok, outcome.error
    seen = json.loads(outcome.result["stdout"])
    env = seen["env"]
    for name, value in env.items():
        if name.startswith("MN_"):
            assert value == env["MIRROR_NEURON_" + name[3:]], name
    assert env["MN_INPUT_FILE"] == "/sandbox/job/mirror_neuron_input.json"
    assert env["MN_CONTEXT_FILE"] == "/sandbox/job/mirror_neuron_context.json"
    assert env["MN_MESSAGE_FILE"] == "/sandbox/job/mirror_neuron_message.json"
    assert env["MN_BODY_FILE"] == "/sandbox/job/mirror_neuron_body.bin"
    assert env["MN_WORKDIR"] == "/sandbox/job/app"
    assert env["MN_JOB_ID"] == "job-1"
    assert env["MN_AGENT_ID"] == "worker"
    assert env["MN_AGENT_TYPE"] == "sandbox_worker"
    assert env["MN_BODY_CONTENT_TYPE"] == "application/json"
    assert seen["cwd"] == "/sandbox/job/app"
    assert seen["argv"] == ["two words", "job-1"]
    assert seen["files"]["INPUT_FILE"] == {"text": "hello"}
    assert seen["files"]["MESSAGE_FILE"]["body"] == {"text": "hello"}
    assert seen["files"]["CONTEXT_FILE"]["agent_state"] == {}
    assert seen["files"]["CONTEXT_FILE"]["workflow"] == {}
    assert seen["files"]["BODY"] == '{"text":"hello"}'
    assert seen["extra"] == {"GREETING": "hi", "COUNT": "3", "PASSED": None}
    assert outcome.result["remote_dir"] == "/sandbox/job"
    assert outcome.result["runner"] == "bwrap"


async def test_host_runner_gives_the_same_contract_with_host_paths(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASSED", "from-runtime")
    write(payloads / "app" / "report.py", REPORT)
    config = {
        "runner_module": "MirrorNeuron.Runner.HostLocal",
        "upload_path": "app",
        "workdir": "/sandbox/job/app",
        "command": [PY, "report.py"],
        "pass_env": ["PASSED", "NOT_SET_ANYWHERE"],
    }
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.ok, outcome.error
    seen = json.loads(outcome.result["stdout"])
    root = outcome.result["remote_dir"]
    assert root.startswith(str(temp_root))
    assert seen["env"]["MN_INPUT_FILE"] == f"{root}/mirror_neuron_input.json"
    assert seen["env"]["MIRROR_NEURON_INPUT_FILE"] == f"{root}/mirror_neuron_input.json"
    assert seen["cwd"] == f"{root}/app"
    assert seen["extra"]["PASSED"] == "from-runtime"
    assert outcome.result["runner"] == "host_local"
    assert not exists(root), "the staging directory is removed after the run"


async def test_string_command_runs_in_bash_with_placeholders(payloads: Path, temp_root: Path) -> None:
    config = {"command": "cat {{input_file}} && echo && echo {job_id}:{agent_id} in {workdir} $((6*7))"}
    outcome = await run_config(config, payloads, temp_root, body={"x": 1})
    assert outcome.ok, outcome.error
    assert outcome.result["stdout"] == '{\n  "x": 1\n}\njob-1:worker in /sandbox/job 42\n'


async def test_missing_command_prints_a_stub_and_succeeds(payloads: Path, temp_root: Path) -> None:
    outcome = await run_config({}, payloads, temp_root)
    assert outcome.ok
    assert "No command configured" in outcome.result["stdout"]


async def test_stdout_and_stderr_are_captured_separately(payloads: Path, temp_root: Path) -> None:
    outcome = await run_config({"command": "echo out; echo err >&2; echo out2"}, payloads, temp_root)
    assert outcome.result["stdout"] == "out\nout2\n"
    assert outcome.result["stderr"] == "err\n"
    assert set(outcome.result) == {
        "sandbox_name",
        "remote_dir",
        "exit_code",
        "runner_exit_code",
        "stdout",
        "stderr",
        "logs",
        "raw_output",
        "runner",
        "node_name",
    }
    assert outcome.result["raw_output"].startswith("__MIRROR_NEURON_RESULT_START__\n")


async def test_string_body_is_written_as_a_json_string(payloads: Path, temp_root: Path) -> None:
    msg = normalize({"body": "a\nb\n", "content_type": "application/x-ndjson"}, job_id="job-1")
    outcome = await run_config(
        {"command": "cat $MN_INPUT_FILE; echo; cat $MN_BODY_FILE"}, payloads, temp_root, message=msg
    )
    assert outcome.result["stdout"] == '"a\\nb\\n"\na\nb\n'


async def test_sandbox_upload_path_moves_the_root(payloads: Path, temp_root: Path) -> None:
    write(payloads / "x.txt", "data")
    config = {
        "sandbox_upload_path": "/mn/job",
        "upload_path": "x.txt",
        "workdir": "/mn/job",
        "command": "pwd; cat x.txt; echo; echo $MN_INPUT_FILE",
    }
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert outcome.result["stdout"] == "/mn/job\ndata\n/mn/job/mirror_neuron_input.json\n"


async def test_missing_workdir_is_a_clear_error(payloads: Path, temp_root: Path) -> None:
    with pytest.raises(StagingError, match="workdir /sandbox/job/nowhere does not exist"):
        await run_config({"workdir": "/sandbox/job/nowhere", "command": "true"}, payloads, temp_root)
    assert staged_leftovers(temp_root) == []


async def test_workdir_outside_the_sandbox_is_rejected(payloads: Path, temp_root: Path) -> None:
    with pytest.raises(StagingError, match="outside /sandbox/job"):
        await run_config({"workdir": "/usr", "command": "true"}, payloads, temp_root)


async def test_agent_state_reaches_the_next_context_file(payloads: Path, temp_root: Path) -> None:
    command = (
        'python3 -c \'import json,os; print(json.load(open(os.environ["MN_CONTEXT_FILE"]))["agent_state"])\''
    )
    outcome = await run_config({"command": command}, payloads, temp_root, agent_state={"count": 2})
    assert outcome.result["stdout"] == "{'count': 2}\n"
