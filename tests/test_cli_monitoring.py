"""``mn validate --graph``, ``mn job graph``, ``mn job logs`` and ``mn job watch`` from a shell."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from builders import EXAMPLES, aggregator, manifest, router
from test_cli import mn, write_bundle
from test_cli_jobs import env_for


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


SCRIPT = """
import sys
print('squared', file=sys.stderr)
print('{"n": 4}')
"""


def executor_bundle(root: Path, script: str = SCRIPT, sink_after: int = 1) -> Path:
    data = manifest(
        [
            router("entry", emit_type="go"),
            {
                "node_id": "work",
                "agent_type": "executor",
                "config": {
                    "upload_path": "w.py",
                    "command": ["python3", "w.py"],
                    "output_message_type": "done",
                },
            },
            aggregator("sink", complete_after=sink_after),
        ],
        [("entry", "work", "go"), ("work", "sink", "done")],
    )
    bundle = write_bundle(root, data)
    (bundle / "payloads" / "w.py").write_text(script)
    return bundle


def test_validate_prints_the_graph_in_each_format(data: Path) -> None:
    bundle = str(EXAMPLES / "research_flow")
    graph = json.loads(mn("validate", "--graph", "json", bundle, data_dir=data).stdout)
    assert [n["id"] for n in graph["nodes"]] == ["ingress", "retriever", "reviewer"]
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {
        ("ingress", "retriever"),
        ("retriever", "reviewer"),
    }
    dot = mn("validate", "--graph", "dot", bundle, data_dir=data).stdout
    assert dot.startswith('digraph "research_flow_v1" {') and '"ingress" -> "retriever"' in dot
    mermaid = mn("job", "graph", bundle, "--format", "mermaid", data_dir=data).stdout
    assert mermaid.startswith("flowchart LR") and "-->|" in mermaid
    wrong = mn("validate", "--graph", "svg", bundle, data_dir=data)
    assert wrong.returncode == 2 and "'svg' is not one of" in wrong.stderr


def test_the_graph_of_a_job_that_ran(data: Path) -> None:
    assert mn("run", str(EXAMPLES / "research_flow"), data_dir=data).returncode == 0
    job_id = json.loads(mn("job", "list", "--json", data_dir=data).stdout)[0]["job_id"]
    graph = json.loads(mn("job", "graph", job_id[:14], data_dir=data).stdout)
    assert graph["job_id"] == job_id and len(graph["nodes"]) == 3
    missing = mn("job", "graph", "ghost-job", data_dir=data)
    assert missing.returncode == 1 and "ghost-job" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_logs_show_each_executor_runs_output(tmp_path: Path, data: Path) -> None:
    out = mn("run", "--json", str(executor_bundle(tmp_path / "b")), data_dir=data)
    job_id = json.loads(out.stdout)["job_id"]
    text = mn("job", "logs", job_id, data_dir=data).stdout
    assert "== work run #1 (exit 0" in text and "squared" in text and '{"n": 4}' in text
    [run] = [
        json.loads(line)
        for line in mn("job", "logs", job_id, "work", "--json", data_dir=data).stdout.splitlines()
    ]
    assert run["stderr"] == "squared\n" and run["ok"] is True
    ghost = mn("job", "logs", job_id, "ghost", data_dir=data)
    assert ghost.returncode == 1 and "ghost" in ghost.stderr and "Traceback" not in ghost.stderr


@pytest.mark.slow
def test_watch_follows_a_job_run_by_another_process_to_its_end(tmp_path: Path, data: Path) -> None:
    bundle = executor_bundle(tmp_path / "b", sink_after=2)  # the job waits for one more message
    job_id = mn("run", "--no-wait", str(bundle), data_dir=data).stdout.strip()
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "mirror_neuron", "job", *args],
            env=env_for(data),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (["watch", job_id[:16]], ["logs", job_id, "--follow", "--json"])
    ]
    watch, follow = started
    try:
        # The job cannot end before this message: neither may they.
        assert watch.poll() is None and follow.poll() is None
        sent = mn("job", "send", job_id, "work", json.dumps({"type": "go", "payload": {}}), data_dir=data)
        assert sent.returncode == 0, sent.stderr
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "status: completed" in out
        logs, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        runs = [json.loads(line) for line in logs.splitlines()]
        assert [r["invocation"] for r in runs] == [1, 2]  # each run once, whenever it started
    finally:
        for process in started:  # never leave a process (or its pipes) behind
            if process.poll() is None:
                process.kill()
            process.communicate()


def test_watch_of_an_ended_job_exits_at_once_with_its_status(data: Path) -> None:
    assert mn("run", str(EXAMPLES / "research_flow"), data_dir=data).returncode == 0
    job_id = json.loads(mn("job", "list", "--json", data_dir=data).stdout)[0]["job_id"]
    out = mn("job", "watch", job_id, data_dir=data)
    assert out.returncode == 0 and "status: completed" in out.stdout


def test_ctrl_c_stops_watching_not_the_job(tmp_path: Path, data: Path) -> None:
    bundle = write_bundle(
        tmp_path / "waits",
        manifest([router("entry"), aggregator("sink", complete_after=2)], [("entry", "sink", "init")]),
    )
    job_id = mn("run", "--no-wait", str(bundle), data_dir=data).stdout.strip()
    master, slave = pty.openpty()  # on a terminal: the live view draws at once
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    watch = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "job", "watch", job_id],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env_for(data, COLUMNS="160", TERM="xterm"),
    )
    os.close(slave)
    shown = b""
    try:
        while b"status" not in shown:  # the view is up: it is following the job
            shown += os.read(master, 65536)
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == 130
        with contextlib.suppress(OSError):  # EIO once the child closed the terminal
            while chunk := os.read(master, 65536):
                shown += chunk
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        os.close(master)
    assert b"interrupted: stopped reading; the job goes on" in shown and b"Traceback" not in shown
    status = json.loads(mn("job", "inspect", job_id, "--json", data_dir=data).stdout)["status"]
    assert status == "running"
    cancelled = mn("job", "cancel", "--yes", job_id, data_dir=data)  # its `mn run` process ends with it
    assert cancelled.returncode == 0, cancelled.stderr
