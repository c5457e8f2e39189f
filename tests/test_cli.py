"""The ``mn`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import EXAMPLES, aggregator, manifest, router


def mn(
    *args: str, data_dir: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(data_dir), **extra}
    for name in ("MIRROR_NEURON_STORE_URL", "MIRROR_NEURON_REDIS_URL"):  # they would win over the data dir
        if name not in extra:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", *args],
        stdin=subprocess.DEVNULL,  # not a terminal: nothing asks for confirmation
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def write_bundle(root: Path, data: dict | str) -> Path:
    (root / "payloads").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_validate_accepts_a_good_bundle(data: Path) -> None:
    out = mn("validate", str(EXAMPLES / "research_flow"), data_dir=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: research_flow_v1 is valid (3 nodes, 2 edges")
    out = mn("validate", "--json", str(EXAMPLES / "research_flow"), data_dir=data)
    summary = json.loads(out.stdout)
    assert summary["ok"] is True and summary["entrypoints"] == ["ingress"] and summary["nodes"] == 3


def test_validate_prints_each_error_on_its_own_line(tmp_path: Path, data: Path) -> None:
    bundle = write_bundle(
        tmp_path / "bad",
        {
            "manifest_version": "1.0",
            "nodes": [{"node_id": "a", "agent_type": "router"}],
            "edges": [{"edge_id": "e1", "from_node": "a", "to_node": "ghost", "message_type": "x"}],
        },
    )
    out = mn("validate", str(bundle), data_dir=data)
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert lines == [
        "error: graph_id is required",
        "error: edge e1 references missing to_node ghost",
        "error: manifest must define at least one entrypoint or one node with role root/root_coordinator",
    ]


TYPO = (
    'node aggregator "reviewer" config: unknown key "complete_on_mesage" '
    '(did you mean "complete_on_message"?)'
)


def typo_bundle(root: Path) -> Path:
    """A valid bundle with a misspelled aggregator key (it still completes: complete_after is 1)."""
    nodes = [router("ingress"), aggregator("reviewer", complete_after=1, complete_on_mesage=True)]
    return write_bundle(root, manifest(nodes, [("ingress", "reviewer", "init")]))


def test_validate_warns_about_unknown_keys(tmp_path: Path, data: Path) -> None:
    bundle = typo_bundle(tmp_path / "typo")
    out = mn("validate", str(bundle), data_dir=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: test_graph is valid")
    assert out.stderr.splitlines() == [f"warning: {TYPO}"]
    out = mn("validate", "--json", str(bundle), data_dir=data)
    assert out.returncode == 0
    assert json.loads(out.stdout)["warnings"] == [TYPO]
    clean = mn("validate", "--json", str(EXAMPLES / "research_flow"), data_dir=data)
    assert json.loads(clean.stdout)["warnings"] == [] and clean.stderr == ""


def test_validate_strict_turns_warnings_into_errors(tmp_path: Path, data: Path) -> None:
    bundle = typo_bundle(tmp_path / "typo")
    out = mn("validate", "--strict", str(bundle), data_dir=data)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [f"error: {TYPO}"]
    out = mn("validate", "--strict", "--json", str(bundle), data_dir=data)
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"ok": False, "error": TYPO, "errors": [TYPO]}
    assert mn("validate", "--strict", str(EXAMPLES / "research_flow"), data_dir=data).returncode == 0


def test_run_prints_the_warnings_before_it_starts(tmp_path: Path, data: Path) -> None:
    out = mn("run", "--json", str(typo_bundle(tmp_path / "typo")), data_dir=data)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "completed"
    assert out.stderr.splitlines()[0] == f"warning: {TYPO}"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: p, "job folder does not exist"),
        (lambda p: (p.mkdir(), p)[1], "job folder is missing manifest.json"),
        (lambda p: write_bundle(p, '{\n  "graph_id": "x",\n  oops\n}'), "at line 3, column 3"),
        (
            lambda p: (p.mkdir(), (p / "manifest.json").write_text("{}"), p)[2],
            "job folder is missing payloads/",
        ),
    ],
)
def test_bad_bundles_give_one_clear_error_and_no_traceback(
    tmp_path: Path, data: Path, setup, expected
) -> None:
    path = setup(tmp_path / "bundle")
    for command in ("validate", "run"):
        out = mn(command, str(path), data_dir=data)
        assert out.returncode == 1
        assert expected in out.stderr
        assert "Traceback" not in out.stderr
        assert out.stderr.startswith("error: ")


def test_json_mode_prints_one_json_object_even_for_an_invalid_bundle(tmp_path: Path, data: Path) -> None:
    bundle = write_bundle(tmp_path / "bad", {"manifest_version": "1.0", "nodes": []})
    for command in ("validate", "run"):
        out = mn(command, "--json", str(bundle), data_dir=data)
        assert out.returncode == 1
        report = json.loads(out.stdout)
        assert report["ok"] is False
        assert report["errors"][:2] == ["graph_id is required", "nodes must not be empty"]
        assert "error: graph_id is required" in out.stderr


def test_run_json_prints_exactly_one_terminal_record(data: Path) -> None:
    out = mn("run", "--json", str(EXAMPLES / "research_flow"), data_dir=data)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)  # fails if anything else is on stdout
    assert record["status"] == "completed" and record["ok"] is True
    assert record["result"]["agent_id"] == "reviewer"
    assert record["result"]["output"]["count"] == 1


def test_run_exits_non_zero_when_the_job_fails(tmp_path: Path, data: Path) -> None:
    bundle = write_bundle(
        tmp_path / "mod", manifest([{"node_id": "m", "agent_type": "module", "config": {"module": "x"}}])
    )
    out = mn("run", "--json", str(bundle), data_dir=data)
    assert out.returncode == 1
    record = json.loads(out.stdout)
    assert record["status"] == "failed" and record["ok"] is False
    assert record["result"]["agent_id"] == "m" and "module agents" in record["result"]["error"]


def test_run_timeout_fails_the_job_and_says_why(tmp_path: Path, data: Path) -> None:
    quiet = write_bundle(
        tmp_path / "quiet", manifest([router("a"), aggregator("s", complete_after=2)], [("a", "s", "init")])
    )
    out = mn("run", "--json", "--timeout", "0.3", str(quiet), data_dir=data)
    assert out.returncode == 1
    record = json.loads(out.stdout)
    assert record["status"] == "failed"
    assert record["result"]["error"] == "job did not end within 0.3s (mn run --timeout)"


def test_plain_run_prints_a_readable_summary(data: Path) -> None:
    out = mn("run", str(EXAMPLES / "batch_alarm"), data_dir=data)
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout and '"count":5' in out.stdout


def test_job_commands_read_what_another_process_ran(data: Path) -> None:
    job_id = json.loads(mn("run", "--json", str(EXAMPLES / "research_flow"), data_dir=data).stdout)["job_id"]
    listed = json.loads(mn("job", "list", "--json", data_dir=data).stdout)
    assert [j["job_id"] for j in listed] == [job_id]
    assert mn("job", "list", "--live", "--json", data_dir=data).stdout.strip() == "[]"
    inspected = json.loads(mn("job", "inspect", job_id, "--json", data_dir=data).stdout)
    assert inspected["status"] == "completed"
    agents = json.loads(mn("job", "agents", job_id, "--json", data_dir=data).stdout)
    assert [a["agent_id"] for a in agents] == ["ingress", "retriever", "reviewer"]
    events = json.loads(mn("job", "events", job_id, "--json", data_dir=data).stdout)
    assert events[-1]["type"] == "job_completed"
    tail = json.loads(
        mn("job", "events", job_id, "--json", "--after", str(len(events) - 1), data_dir=data).stdout
    )
    assert [e["type"] for e in tail] == ["job_completed"]
    plain = mn("job", "events", job_id, data_dir=data).stdout.splitlines()
    assert len(plain) == len(events) and "job_completed" in plain[-1]


def test_job_commands_on_an_unknown_job_fail_cleanly(data: Path) -> None:
    for sub in ("inspect", "agents", "events"):
        out = mn("job", sub, "missing-job", data_dir=data)
        assert out.returncode == 1
        assert out.stderr.strip() == "error: job missing-job was not found"


def test_run_no_wait_returns_the_id_while_a_background_process_runs_it(data: Path) -> None:
    out = mn("run", "--no-wait", "--json", str(EXAMPLES / "research_flow"), data_dir=data)
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["job_id"]
    code = f"import mirror_neuron as mn; print(mn.wait_for_job({job_id!r}, timeout=30)['status'])"
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(data)}
    waited = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert waited.stdout.strip() == "completed", waited.stderr


def test_unknown_store_url_is_a_clear_error(data: Path) -> None:
    out = mn("--store", "ftp://x", "job", "list", data_dir=data)
    assert out.returncode == 1 and "ftp://x" in out.stderr and "Traceback" not in out.stderr


def test_doctor_checks_python_store_sandbox_network_and_temp_dir(data: Path, tmp_path: Path) -> None:
    out = mn("doctor", "--json", data_dir=data)
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert set(checks) == {"python", "store", "sandbox", "network", "temp dir"}
    assert checks["python"]["ok"] and checks["store"]["ok"]
    assert out.returncode == (0 if all(c["ok"] for c in checks.values()) else 1)
    broken = mn("--store", "sqlite:////proc/nope/x.db", "doctor", data_dir=data)
    assert broken.returncode == 1
    assert "FAIL store" in broken.stdout and "fix:" in broken.stdout
    shared = tmp_path / "shared-temp"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # writable by anyone: another user could plant links in it
    unsafe = mn("doctor", data_dir=data, env={"MIRROR_NEURON_TEMP_DIR": str(shared)})
    assert (
        unsafe.returncode == 1
        and "FAIL temp dir" in unsafe.stdout
        and "writable by group or others" in unsafe.stdout
    )


def test_job_list_shows_a_job_whose_runtime_is_gone(data: Path) -> None:
    from mirror_neuron.store import SQLiteStore

    store = SQLiteStore(data / "mirror_neuron.db")
    stale = "2020-01-01T00:00:00.000Z"
    store.create_job(
        {
            "job_id": "orphan",
            "graph_id": "g",
            "status": "running",
            "heartbeat_at": stale,
            "updated_at": stale,
            "submitted_at": stale,
        }
    )
    store.close()
    listed = json.loads(mn("job", "list", "--json", data_dir=data).stdout)
    assert [j["job_id"] for j in listed] == ["orphan"]
    assert "is gone" in listed[0]["orphaned"]
    assert "running (runtime gone)" in mn("job", "list", data_dir=data).stdout
    # inspect agrees with list, and says how to go on
    inspected = mn("job", "inspect", "orphan", data_dir=data).stdout
    assert "running (runtime gone)" in inspected and "is gone" in inspected


def test_cleanup_removes_ended_jobs_and_all_their_data(data: Path) -> None:
    done = json.loads(mn("run", "--json", str(EXAMPLES / "research_flow"), data_dir=data).stdout)["job_id"]
    out = json.loads(mn("job", "cleanup", "--json", data_dir=data).stdout)
    assert out == {"deleted_count": 1, "deleted_jobs": [done], "skipped_jobs": []}
    assert mn("job", "inspect", done, data_dir=data).returncode == 1
    assert json.loads(mn("job", "list", "--json", data_dir=data).stdout) == []
