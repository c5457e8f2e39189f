"""The payload contract as pure functions: names, files, quoting, placeholders, workdir."""

from __future__ import annotations

import gzip
import json
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror_neuron.execution import contract
from mirror_neuron.execution.errors import StagingError
from mirror_neuron.execution.settings import ExecutorSettings, env_value
from mirror_neuron.messages import normalize
from mirror_neuron.policy import Limits

PATHS = contract.RuntimePaths("/sandbox/job")
VALUES = contract.placeholder_values(PATHS, "/sandbox/job/app", "job-1", "worker")


def test_list_command_quotes_every_element_and_substitutes() -> None:
    cmd = contract.build_command(["python3", "it's here.py", "{job_id}", "{{agent_id}}", "$HOME"], VALUES)
    assert cmd == "'python3' 'it'\\''s here.py' 'job-1' 'worker' '$HOME'"
    assert shlex.split(cmd) == ["python3", "it's here.py", "job-1", "worker", "$HOME"]


def test_string_command_accepts_single_and_double_brace_placeholders() -> None:
    cmd = contract.build_command("cat {input_file} {{ context_file }} {{body_file}} {message_file}", VALUES)
    assert cmd == (
        "cat /sandbox/job/mirror_neuron_input.json /sandbox/job/mirror_neuron_context.json "
        "/sandbox/job/mirror_neuron_body.bin /sandbox/job/mirror_neuron_message.json"
    )


def test_unknown_braces_are_left_alone() -> None:
    assert contract.build_command("python3 -c 'print({1: 2}, \"{other}\")'", VALUES).endswith('"{other}")\'')


@pytest.mark.parametrize("command", [None, "", []])
def test_missing_command_prints_no_command_configured(command: object) -> None:
    assert "No command configured" in contract.build_command(command, VALUES)  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_shell_quote_round_trips_any_text(text: str) -> None:
    assert shlex.split(contract.shell_quote(text)) == [text]


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, "/root/stage"),
        ("/sandbox/job", "/root/stage"),
        ("/sandbox/job/app", "/root/stage/app"),
        ("/sandbox/job/a/b/", "/root/stage/a/b"),
        ("rel/dir", "/root/stage/rel/dir"),
        ("/opt/elsewhere", "/opt/elsewhere"),
    ],
)
def test_workdir_maps_sandbox_paths_onto_the_staging_root(configured: str | None, expected: str) -> None:
    assert contract.resolve_workdir(configured, "/sandbox/job", "/root/stage") == expected


def test_workdir_with_dotdot_is_rejected() -> None:
    with pytest.raises(StagingError, match="climbs out"):
        contract.resolve_workdir("/sandbox/job/../etc", "/sandbox/job", "/sandbox/job")


def test_workdir_honours_sandbox_upload_path() -> None:
    assert contract.resolve_workdir("/mn/job/app", "/mn/job", "/x") == "/x/app"


def test_contract_env_sets_both_prefixes_with_identical_values() -> None:
    msg = normalize({"body": {"a": 1}, "content_type": "application/x-ndjson", "content_encoding": "gzip"})
    env = contract.contract_env(
        PATHS,
        message=msg,
        agent_type="sandbox_worker",
        template_type="reduce",
        job_id="job-1",
        agent_id="worker",
        workdir="/sandbox/job/app",
        workflow={"run_id": "r1", "attempt": 2},
    )
    names = [
        "INPUT_FILE",
        "CONTEXT_FILE",
        "MESSAGE_FILE",
        "BODY_FILE",
        "BODY_CONTENT_TYPE",
        "BODY_CONTENT_ENCODING",
        "AGENT_TYPE",
        "AGENT_TEMPLATE",
        "JOB_ID",
        "AGENT_ID",
        "WORKDIR",
    ]
    for name in names:
        assert env[f"MIRROR_NEURON_{name}"] == env[f"MN_{name}"]
    assert env["MN_INPUT_FILE"] == "/sandbox/job/mirror_neuron_input.json"
    assert env["MN_AGENT_TYPE"] == "sandbox_worker"
    assert env["MN_AGENT_TEMPLATE"] == "reduce"
    assert env["MN_BODY_CONTENT_TYPE"] == "application/x-ndjson"
    assert env["MN_BODY_CONTENT_ENCODING"] == "gzip"
    assert env["MN_WORKFLOW_RUN_ID"] == "r1"
    assert env["MN_WORKFLOW_ATTEMPT"] == "2"


def test_runtime_files_follow_the_contract(tmp_path: Path) -> None:
    msg = normalize(
        {"body": {"checked": 10, "items": [1]}, "headers": {"mn.workflow.step_id": "s1"}},
        job_id="job-1",
        to="worker",
    )
    ctx = contract.context_document(
        job_id="job-1",
        agent_id="worker",
        agent_type="sandbox_worker",
        template_type=None,
        agent_state={"seen": 3},
        workflow=contract.workflow_from_headers(msg.headers),
    )
    contract.write_runtime_files(tmp_path, msg, contract.message_document(msg, "job-1", "worker"), ctx)
    text = (tmp_path / contract.INPUT_FILE).read_text()
    assert text == '{\n  "checked": 10,\n  "items": [\n    1\n  ]\n}'
    message = json.loads((tmp_path / contract.MESSAGE_FILE).read_text())
    assert set(message) == {"envelope", "headers", "body", "artifacts", "stream"}
    assert message["envelope"]["spec_version"] == "mn-msg/1"
    assert message["envelope"]["job_id"] == "job-1"
    assert (tmp_path / contract.BODY_FILE).read_bytes() == b'{"checked":10,"items":[1]}'
    meta = json.loads((tmp_path / contract.BODY_META_FILE).read_text())
    assert meta == {"content_type": "application/json", "content_encoding": "identity"}
    context = json.loads((tmp_path / contract.CONTEXT_FILE).read_text())
    assert set(context) == {
        "job_id",
        "agent_id",
        "agent_type",
        "template_type",
        "agent_state",
        "timestamp",
        "workflow",
    }
    assert context["agent_type"] == "sandbox_worker"
    assert context["template_type"] == "generic"
    assert context["agent_state"] == {"seen": 3}
    assert context["workflow"] == {"step_id": "s1"}


def test_body_file_applies_ndjson_and_gzip(tmp_path: Path) -> None:
    msg = normalize(
        {"body": [{"a": 1}, {"b": 2}], "content_type": "application/x-ndjson", "content_encoding": "gzip"}
    )
    contract.write_runtime_files(tmp_path, msg, msg.to_dict(), {})
    assert gzip.decompress((tmp_path / contract.BODY_FILE).read_bytes()) == b'{"a":1}\n{"b":2}\n'


def test_environment_values_are_stringified_like_the_original() -> None:
    assert [env_value(v) for v in (True, False, None, 3, 1.5, "x", {"a": [1]})] == [
        "true",
        "false",
        "",
        "3",
        "1.5",
        "x",
        '{"a":[1]}',
    ]
    settings = ExecutorSettings.from_config({"environment": {"N": 4, "FLAG": True}})
    assert settings.environment == {"N": "4", "FLAG": "true"}


def test_settings_defaults_match_the_original() -> None:
    s = ExecutorSettings.from_config({})
    assert (s.runner, s.pool, s.pool_slots, s.max_attempts, s.retry_backoff_ms) == (
        "sandbox",
        "default",
        1,
        1,
        500,
    )
    assert s.output_message_type == "executor_result"
    assert ExecutorSettings.from_config({"output_message_type": None}).output_message_type is None
    assert ExecutorSettings.from_config({"max_attempts": -2, "pool_slots": 0}).max_attempts == 1
    assert (
        ExecutorSettings.from_config({"runner_module": "MirrorNeuron.Runner.HostLocal"}).runner
        == "host_local"
    )
    assert (
        ExecutorSettings.from_config({"runner_module": "MirrorNeuron.Sandbox.OpenShell"}).runner == "sandbox"
    )
    assert ExecutorSettings.from_config({"runner": "openshell"}).runner == "openshell"


def test_limits_render_as_one_ulimit_line() -> None:
    limits = Limits(cpu_seconds=5, memory_mb=256, file_size_mb=1, open_files=64, processes=32)
    assert limits.ulimit_command() == "ulimit -S -H -t 5 -v 262144 -f 1024 -n 64 -u 32"
    assert Limits().ulimit_command() == ""
