"""Uploads (all three forms), their confinement to payloads/, and validation of executor nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_neuron.config import Config
from mirror_neuron.execution import check_executor_node
from mirror_neuron.execution.errors import StagingError
from mirror_neuron.execution.staging import plan_uploads, resolve_source, stage_uploads

from .conftest import executor_node, run_config, staged_leftovers, write

LIST_TREE = """python3 - <<'EOF'
import json, os
out = {}
for d, _, files in os.walk("/sandbox/job"):
    for f in files:
        p = os.path.join(d, f)
        if not f.startswith("mirror_neuron_"):
            out[os.path.relpath(p, "/sandbox/job")] = open(p).read()
print(json.dumps(out, sort_keys=True))
EOF"""


@pytest.mark.usefixtures("sandbox")
async def test_all_three_upload_forms_land_in_the_staging_dir(payloads: Path, temp_root: Path) -> None:
    write(payloads / "lib" / "util.py", "u")
    write(payloads / "lib" / "sub" / "deep.txt", "d")
    write(payloads / "data" / "in.txt", "i")
    write(payloads / "cfg.json", "{}")
    config = {
        "upload_paths": [{"source": "lib"}, {"source": "data/in.txt", "target": "inputs/in.txt"}],
        "uploads": [{"source": "cfg.json", "target": "/sandbox/job/config/cfg.json"}],
        "command": LIST_TREE,
    }
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert json.loads(outcome.result["stdout"]) == {
        "lib/util.py": "u",
        "lib/sub/deep.txt": "d",
        "inputs/in.txt": "i",
        "config/cfg.json": "{}",
    }


@pytest.mark.usefixtures("sandbox")
async def test_upload_path_and_upload_as(payloads: Path, temp_root: Path) -> None:
    write(payloads / "worker" / "main.py", "m")
    config = {
        "upload_path": "worker",
        "upload_as": "bundle",
        "workdir": "/sandbox/job/bundle",
        "command": "cat main.py",
    }
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.result["stdout"] == "m"


def test_upload_paths_take_precedence_over_upload_path() -> None:
    plan = plan_uploads({"upload_paths": [{"source": "a"}], "upload_path": "b"}, "/sandbox/job")
    assert [(u.source, u.target) for u in plan] == [("a", "a")]
    plan = plan_uploads({"upload_paths": [], "upload_path": "dir/b.py"}, "/sandbox/job")
    assert [(u.source, u.target) for u in plan] == [("dir/b.py", "b.py")]


def test_missing_upload_source_uses_the_original_wording(payloads: Path, tmp_path: Path) -> None:
    plan = plan_uploads({"upload_path": "nope.py"}, "/sandbox/job")
    with pytest.raises(StagingError, match=r"^upload source does not exist: payloads/nope\.py$"):
        stage_uploads(plan, payloads, tmp_path)


@pytest.mark.parametrize("source", ["../secret.txt", "a/../../secret.txt"])
def test_upload_sources_cannot_climb_out_of_payloads(payloads: Path, source: str) -> None:
    write(payloads.parent / "secret.txt", "s")
    with pytest.raises(StagingError, match=r"climbs out of payloads"):
        resolve_source(source, payloads)


def test_absolute_upload_source_outside_payloads_is_rejected(payloads: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.txt", "x")
    with pytest.raises(StagingError, match="resolves outside payloads"):
        resolve_source(str(outside), payloads)


def test_symlink_escaping_payloads_is_rejected(payloads: Path, tmp_path: Path) -> None:
    write(tmp_path / "host-secret", "s")
    (payloads / "link").symlink_to(tmp_path / "host-secret")
    with pytest.raises(StagingError, match="resolves outside payloads"):
        resolve_source("link", payloads)
    write(payloads / "dir" / "ok.txt", "fine")
    (payloads / "dir" / "sneaky").symlink_to("/etc")
    with pytest.raises(StagingError, match="symlink pointing outside payloads"):
        resolve_source("dir", payloads)


def test_symlinks_within_payloads_are_allowed(payloads: Path, tmp_path: Path) -> None:
    write(payloads / "real.txt", "r")
    (payloads / "alias.txt").symlink_to(payloads / "real.txt")
    stage_uploads(plan_uploads({"upload_path": "alias.txt"}, "/sandbox/job"), payloads, tmp_path)
    assert (tmp_path / "alias.txt").read_text() == "r"


@pytest.mark.parametrize("target", ["../out.txt", "/etc/out.txt", "a/../../out.txt", "/sandbox/job"])
def test_upload_targets_must_stay_inside_the_staging_dir(target: str) -> None:
    with pytest.raises(StagingError):
        plan_uploads({"upload_paths": [{"source": "x", "target": target}]}, "/sandbox/job")


@pytest.mark.usefixtures("sandbox")
async def test_upload_cannot_overwrite_the_runtime_files(payloads: Path, temp_root: Path) -> None:
    write(payloads / "fake_input.json", '"forged"')
    config = {
        "upload_paths": [{"source": "fake_input.json", "target": "mirror_neuron_input.json"}],
        "command": "cat $MN_INPUT_FILE",
    }
    outcome = await run_config(config, payloads, temp_root, body={"real": True})
    assert json.loads(outcome.result["stdout"]) == {"real": True}


@pytest.mark.usefixtures("sandbox")
async def test_staging_dirs_are_fresh_per_run_and_removed(payloads: Path, temp_root: Path) -> None:
    config = {"command": "ls /sandbox/job; echo left-behind > /sandbox/job/state.txt"}
    first = await run_config(config, payloads, temp_root)
    second = await run_config(config, payloads, temp_root)
    assert "state.txt" not in first.result["stdout"]
    assert "state.txt" not in second.result["stdout"]
    assert staged_leftovers(temp_root) == []


# -- validation --------------------------------------------------------------------


def test_validation_names_the_node_and_the_missing_upload(payloads: Path) -> None:
    node = executor_node({"upload_path": "x.py", "command": ["python3", "x.py"]}, node_id="prime_worker")
    assert check_executor_node(node, payloads) == [
        "executor node prime_worker: upload source payloads/x.py does not exist"
    ]


def test_validation_accepts_a_good_node(payloads: Path) -> None:
    write(payloads / "app" / "main.py", "")
    config = {
        "upload_paths": [{"source": "app"}],
        "command": ["python3", "main.py"],
        "timeout_seconds": 5,
        "max_attempts": 3,
        "max_output_bytes": 1000,
        "pool": "default",
        "limits": {"processes": 10, "memory_mb": 512},
    }
    assert check_executor_node(executor_node(config), payloads, Config()) == []


def test_validation_reports_every_problem(payloads: Path, tmp_path: Path) -> None:
    (payloads / "escape").symlink_to(tmp_path)
    config = {
        "upload_paths": [{"source": "../x"}, {"source": "escape"}],
        "command": ["python3", 3],
        "timeout_seconds": 0,
        "max_attempts": "2",
        "max_output_bytes": -1,
        "pool": "memory-heavy",
        "limits": {"cpu": 1},
        "runner_module": "MirrorNeuron.Runner.DockerWorker",
    }
    problems = check_executor_node(executor_node(config, node_id="w"), payloads, Config())
    text = "\n".join(problems)
    assert all(p.startswith("executor node w: ") for p in problems)
    for fragment in (
        "climbs out of payloads",
        "resolves outside payloads",
        "command must be a string or a list of strings",
        "timeout_seconds must be a positive number",
        "max_attempts must be a positive number",
        "max_output_bytes must be a positive number",
        'pool "memory-heavy" is not a configured executor pool',
        "limits.cpu is not a known limit",
        "MirrorNeuron.Runner.DockerWorker",
    ):
        assert fragment in text, fragment


def test_validation_checks_slots_against_the_pool_capacity(payloads: Path) -> None:
    config = Config(pool_capacities={"gpu": 2})
    node = executor_node({"pool": "gpu", "pool_slots": 3})
    assert check_executor_node(node, payloads, config) == [
        'executor node worker: pool_slots 3 exceeds the capacity 2 of pool "gpu"'
    ]
    assert check_executor_node(node, payloads) == []  # pools unknown without a config


def test_validation_ignores_other_agent_types(payloads: Path) -> None:
    node = executor_node({"upload_path": "missing"})
    router = type(node)(
        node_id="r", agent_type="router", kind="router", type="generic", config={"upload_path": "x"}
    )
    assert check_executor_node(router, payloads) == []
