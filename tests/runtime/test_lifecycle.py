"""A job whose process stops: a script exiting, Ctrl-C, SIGTERM. It is suspended, never stranded.

Each test runs a real process with a bundle whose executor tells the test, through a FIFO,
that it has started (so the stop lands while a script runs), then checks the invariant: one
line saying how to resume, no traceback, the job ``suspended`` with a ``job_suspended`` event,
no staging folder left, and ``mn job recover`` finishing it with the right result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router
from mirror_neuron.store import open_store

#: The executor's script: the first run signals the test and then works (sleeps) until
#: stopped; a run after recovery finds the marker and answers at once.
SLOW = """
import json, os, time
marker = os.environ["MARKER"]
first = not os.path.exists(marker)
if first:
    open(marker, "w").close()
    with open(os.environ["FIFO"], "w") as fifo:
        fifo.write("started")
    time.sleep(120)
print(json.dumps({"done": True, "first": first}))
"""


def slow_bundle(root: Path) -> Path:
    (root / "payloads" / "work").mkdir(parents=True)
    (root / "payloads" / "work" / "slow.py").write_text(SLOW)
    fifo, marker = root / "started.fifo", root / "marker"
    os.mkfifo(fifo)
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {
            "runner": "host_local",
            "upload_path": "work",
            "workdir": "/sandbox/job/work",
            "command": [sys.executable, "slow.py"],
            "environment": {"FIFO": str(fifo), "MARKER": str(marker)},
        },
    }
    data = manifest(
        [router("entry"), worker, aggregator("sink", complete_after=1)],
        [("entry", "worker", "init"), ("worker", "sink", "executor_result")],
        initial_inputs={"entry": [{"go": 1}]},
    )
    (root / "manifest.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRROR_NEURON_", "MN_"))}
    env["MIRROR_NEURON_DATA_DIR"] = str(tmp_path / "data")
    env["MIRROR_NEURON_TEMP_DIR"] = str(tmp_path / "tmp")
    return env


def wait_started(bundle: Path) -> None:
    """Block until the executor's script runs (it opens the FIFO for writing)."""
    with open(bundle / "started.fifo") as fifo:
        assert fifo.read() == "started"


def stored(env: dict[str, str]) -> tuple[list[dict[str, Any]], Any]:
    store = open_store(Path(env["MIRROR_NEURON_DATA_DIR"]))
    try:
        jobs = store.list_jobs()
        assert len(jobs) == 1, jobs
        return jobs, store.read_events(jobs[0]["job_id"])
    finally:
        store.close()


def assert_suspended(env: dict[str, str], stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    (job,), events = stored(env)
    job_id = job["job_id"]
    assert job["status"] == "suspended"
    assert [e["type"] for e in events].count("job_suspended") == 1
    assert f"mn job recover {job_id}" in stderr
    staged = list(Path(env["MIRROR_NEURON_TEMP_DIR"]).glob("**/run-*"))
    assert staged == [], f"staging left behind: {staged}"
    return str(job_id)


def recover(env: dict[str, str], job_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "job", "recover", job_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    assert record["status"] == "completed"
    return record


def test_a_script_that_exits_with_a_job_running_suspends_it_for_recovery(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bundle = slow_bundle(tmp_path / "bundle")
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\nimport mirror_neuron as mn\n"
        f"job_id = mn.run_manifest({str(bundle)!r})\n"
        f"open({str(bundle / 'started.fifo')!r}).read()\n"
        "print(job_id)\n"
    )
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    job_id = assert_suspended(env, done.stderr)
    assert done.stdout.strip() == job_id
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    result = recover(env, job_id)["result"]["output"]
    assert result["count"] == 1
    rerun = json.loads(result["last_message"]["sandbox"]["stdout"])
    assert rerun == {"done": True, "first": False}  # the run the exit stopped counted for nothing


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_mn_run_suspends_the_job_at_a_message_boundary(
    tmp_path: Path, env: dict[str, str], sig: signal.Signals, code: int
) -> None:
    bundle = slow_bundle(tmp_path / "bundle")
    run = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "run", str(bundle)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_started(bundle)
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == code, stderr
    job_id = assert_suspended(env, stderr)
    assert recover(env, job_id)["result"]["output"]["count"] == 1


def test_a_second_ctrl_c_exits_at_once_and_the_job_stays_recoverable(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bundle = slow_bundle(tmp_path / "bundle")
    run = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "run", str(bundle)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_started(bundle)
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    (job,), _ = stored(env)
    assert job["status"] in ("suspended", "running")  # forced: maybe before the suspension was stored
    assert recover(env, job["job_id"])["result"]["output"]["count"] == 1
