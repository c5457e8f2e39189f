"""``mn`` inputs: numbers, job id prefixes, pipes that close early, terminals, confirmations, ports."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from builders import EXAMPLES, aggregator, manifest, router
from test_cli import mn, write_bundle
from waiting import eventually

STALE = "2020-01-01T00:00:00.000Z"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def env_for(data: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(data), **extra}
    env.pop("MIRROR_NEURON_STORE_URL", None)
    env.pop("MIRROR_NEURON_REDIS_URL", None)
    return env


def seed(data: Path, *job_ids: str, **fields: Any) -> list[dict[str, Any]]:
    """Job records written straight into the data dir's store (as another process would have)."""
    from mirror_neuron.store import SQLiteStore

    records = [
        {
            "job_id": job_id,
            "graph_id": "g",
            "status": "completed",
            "submitted_at": STALE,
            "updated_at": STALE,
            "result": None,
            **fields,
        }
        for job_id in job_ids
    ]
    with SQLiteStore(data / "mirror_neuron.db") as store:
        for record in records:
            store.create_job(record)
    return records


def on_terminal(args: list[str], data: Path, *, stdin: str = "", columns: int = 200) -> tuple[int, str]:
    """Run ``mn`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide; its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = env_for(data, COLUMNS=str(columns), TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    if stdin:
        os.write(master, stdin.encode())
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=30)
    text = b"".join(chunks).decode(errors="replace")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without colours


# -- numeric options are checked by click: usage errors, exit 2 --------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--timeout", "-1", str(EXAMPLES / "research_flow")],
        ["run", "--timeout", "0", str(EXAMPLES / "research_flow")],
        ["job", "recover", "--timeout", "-1", "some-job"],
        ["serve", "--port", "99999"],
        ["serve", "--port", "-1"],
        ["serve", "--max-run-seconds", "-5"],
        ["job", "list", "--limit", "-1"],
        ["job", "events", "some-job", "--after", "-1"],
        ["job", "events", "some-job", "--limit", "0"],
        ["job", "dead-letters", "some-job", "--redrive", "0"],
    ],
    ids=" ".join,
)
def test_out_of_range_numbers_are_usage_errors(data: Path, args: list[str]) -> None:
    out = mn(*args, data_dir=data)
    assert out.returncode == 2, out.stderr
    assert "Invalid value for" in out.stderr and "internal error" not in out.stderr
    assert not data.exists()


def test_an_out_of_range_port_from_the_environment_is_a_usage_error(data: Path) -> None:
    out = mn("serve", data_dir=data, env={"MIRROR_NEURON_API_PORT": "99999"})
    assert out.returncode == 2 and "Invalid value for '--port'" in out.stderr


# -- stdout's reader may go away early -------------------------------------------------------


@pytest.mark.parametrize("json_flag", [["--json"], []], ids=["json", "plain"])
@pytest.mark.parametrize("completes", [True, False], ids=["completed", "failed"])
def test_a_reader_that_goes_away_early_does_not_change_the_exit_status(
    tmp_path: Path, data: Path, json_flag: list[str], completes: bool
) -> None:
    """``mn run … | head -c 1``: the pipe closes before mn writes; exit 0 iff the job completed."""
    args = [str(EXAMPLES / "research_flow")]
    if not completes:  # a job that waits for mail that never comes, failed by --timeout
        nodes = [router("a"), aggregator("s", complete_after=2)]
        args = [
            "--timeout",
            "0.3",
            str(write_bundle(tmp_path / "quiet", manifest(nodes, [("a", "s", "init")]))),
        ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "run", *json_flag, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(data),
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the job ends
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # no-op once it exited; a hung run must not outlive the test
    assert proc.returncode == (0 if completes else 1), err
    assert b"BrokenPipe" not in err and b"Exception ignored" not in err and b"error" not in err


def test_a_shell_pipeline_into_head_exits_zero(data: Path) -> None:
    bundle = EXAMPLES / "research_flow"
    command = f"set -o pipefail; {sys.executable} -m mirror_neuron run --json {bundle} | head -c 1"
    out = subprocess.run(
        ["bash", "-c", command], capture_output=True, env=env_for(data), timeout=60, stdin=subprocess.DEVNULL
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, b"{", b"")


# -- job lists keep whole ids --------------------------------------------------------------


def test_job_list_never_shortens_ids(data: Path) -> None:
    long_id = "a_rather_long_graph_name_for_testing_v1-1700000000000-0123456789abcdef0123456789"
    seed(data, long_id)
    piped = mn("job", "list", data_dir=data)
    assert piped.stdout.split("\t")[0] == long_id
    for columns in (60, 100, 200):  # a table on a terminal: the id may fold, but it is never cut
        code, shown = on_terminal(["job", "list"], data, columns=columns)
        rows = [line.split("│")[1].strip() for line in shown.splitlines() if line.startswith("│")]
        assert code == 0 and "".join(rows) == long_id, shown
    assert long_id in on_terminal(["job", "list"], data, columns=200)[1]  # wide enough: one line


# -- a job id may be a unique prefix ---------------------------------------------------------


def test_job_commands_take_a_unique_prefix_of_a_job_id(data: Path) -> None:
    seed(data, "alpha-1", "alpha-2", "beta-1", "ab", "abc")
    for sub in ("inspect", "agents", "events"):
        out = mn("job", sub, "bet", "--json", data_dir=data)
        assert out.returncode == 0, out.stderr
    assert json.loads(mn("job", "inspect", "bet", "--json", data_dir=data).stdout)["job_id"] == "beta-1"
    # An exact id wins over the longer ids it is a prefix of.
    assert json.loads(mn("job", "inspect", "ab", "--json", data_dir=data).stdout)["job_id"] == "ab"
    assert json.loads(mn("job", "dead-letters", "bet", "--json", data_dir=data).stdout) == []


JOB_COMMANDS = [
    ["inspect"],
    ["agents"],
    ["events"],
    ["events", "-f"],
    ["pause"],
    ["resume"],
    ["cancel", "--yes"],
    ["dead-letters"],
    ["dead-letters", "--redrive", "1"],
    ["recover"],
]


@pytest.mark.parametrize("command", JOB_COMMANDS, ids=" ".join)
def test_an_ambiguous_or_unknown_prefix_is_an_error_in_every_job_command(
    data: Path, command: list[str]
) -> None:
    seed(data, "alpha-1", "alpha-2", "beta-1")
    ambiguous = mn("job", *command, "alph", data_dir=data)
    assert ambiguous.returncode == 1
    assert ambiguous.stderr == "error: job id prefix alph is ambiguous; it matches alpha-1, alpha-2\n"
    unknown = mn("job", *command, "gamma", data_dir=data)
    assert (unknown.returncode, unknown.stderr) == (1, "error: job gamma was not found\n")


@pytest.mark.parametrize("command", [*JOB_COMMANDS, ["send", "--json"]], ids=lambda c: " ".join(c))
def test_every_job_command_resolves_the_prefix_to_the_job(data: Path, command: list[str]) -> None:
    seed(data, "alpha-1", "beta-1")
    args = ["job", *command, "bet"]
    if command[0] == "send":
        args += ["agent", '{"type": "note", "payload": {}}']
    out = mn(*args, data_dir=data)
    # Whatever the command makes of an ended job, it is about beta-1, never "bet".
    assert "job bet " not in out.stderr and "bet was not found" not in out.stderr
    assert out.returncode == 0 or "beta-1" in out.stderr, out.stderr


def test_the_prefix_candidates_are_listed_up_to_ten(data: Path) -> None:
    seed(data, *(f"job-{n:02d}" for n in range(12)))
    out = mn("job", "inspect", "job-", data_dir=data)
    candidates = ", ".join(f"job-{n:02d}" for n in range(10))
    assert out.stderr == f"error: job id prefix job- is ambiguous; it matches {candidates}, …\n"


# -- destructive commands ask on a terminal ----------------------------------------------------


def test_cleanup_asks_on_a_terminal_and_no_keeps_the_jobs(data: Path) -> None:
    seed(data, "done-1")
    code, shown = on_terminal(["job", "cleanup"], data, stdin="n\n")
    assert code == 1 and "Delete every ended job" in shown and "aborted" in shown
    assert json.loads(mn("job", "list", "--json", data_dir=data).stdout)[0]["job_id"] == "done-1"
    code, shown = on_terminal(["job", "cleanup"], data, stdin="y\n")
    assert code == 0 and "deleted_count=1" in shown, shown
    assert json.loads(mn("job", "list", "--json", data_dir=data).stdout) == []


def test_yes_skips_the_question_and_scripts_are_never_asked(data: Path) -> None:
    seed(data, "done-1", "done-2")
    code, shown = on_terminal(["job", "cleanup", "-y", "--json"], data)  # nothing typed: no question
    assert code == 0 and "Delete" not in shown and "done-1" in shown, shown
    seed(data, "done-3")
    out = mn("job", "cleanup", "--json", data_dir=data)  # stdin is not a terminal
    assert out.returncode == 0 and json.loads(out.stdout)["deleted_jobs"] == ["done-3"]


def test_cancel_asks_on_a_terminal(tmp_path: Path, data: Path) -> None:
    waits = write_bundle(
        tmp_path / "waits", manifest([router("a"), aggregator("s", complete_after=2)], [("a", "s", "init")])
    )
    started = mn("run", "--no-wait", "--json", str(waits), data_dir=data)
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    code, shown = on_terminal(["job", "cancel", job_id[:-4]], data, stdin="n\n")
    assert code == 1 and f"Cancel job {job_id}?" in shown and "aborted" in shown, shown
    assert json.loads(mn("job", "inspect", job_id, "--json", data_dir=data).stdout)["status"] == "running"
    code, shown = on_terminal(["job", "cancel", job_id[:-4]], data, stdin="y\n")
    assert code == 0, shown
    eventually(
        lambda: (
            json.loads(mn("job", "inspect", job_id, "--json", data_dir=data).stdout)["status"] == "cancelled"
        ),
        what="the background job is cancelled",
    )


# -- mn serve on a port in use -------------------------------------------------------------


def test_serve_on_a_port_in_use_fails_before_touching_any_job(tmp_path: Path, data: Path) -> None:
    """The orphaned job stays as it was: the server that cannot listen must not recover it."""
    from mirror_neuron.store import SQLiteStore

    [record] = seed(
        data,
        "orphan-1",
        graph_id="research_flow_v1",
        status="running",
        heartbeat_at=STALE,
        control=str(tmp_path / "dead-runtime.sock"),
        manifest_ref={"graph_id": "research_flow_v1", "job_path": str(EXAMPLES / "research_flow")},
        root_agent_ids=["ingress"],
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = mn("serve", "--port", str(port), data_dir=data, timeout=60)
    assert out.returncode == 1
    assert out.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    with SQLiteStore(data / "mirror_neuron.db") as store:
        assert store.get_job("orphan-1") == record
        assert store.count_events("orphan-1") == 0
