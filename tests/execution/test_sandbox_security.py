"""What a script inside the sandbox cannot do: read, write, connect, see the runtime, exhaust the host."""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from mirror_neuron.execution import Executor, ExecutorSettings, Invocation
from mirror_neuron.execution.runners import BwrapRunner, RunSpec
from mirror_neuron.execution.runners.bwrap import build_argv
from mirror_neuron.execution.runners.cgroups import cgroup_support
from mirror_neuron.messages import normalize
from mirror_neuron.policy import SANDBOX_LIMITS

from .conftest import exists, processes_with, run_config, until_running, wait_gone, write

pytestmark = pytest.mark.usefixtures("sandbox")

PROBE = """
import json, os, sys
results = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            results[path] = "read:" + f.read()
    except OSError as e:
        results[path] = type(e).__name__
print(json.dumps(results))
"""
WRITE_PROBE = """
import json, sys
results = {}
for path in sys.argv[1:]:
    try:
        with open(path, "w") as f:
            f.write("x")
        results[path] = "wrote"
    except OSError as e:
        results[path] = type(e).__name__
print(json.dumps(results))
"""


async def probe(payloads: Path, temp_root: Path, script: str, *args: str, **config: object) -> dict:
    write(payloads / "probe.py", script)
    cfg = {"upload_path": "probe.py", "command": ["python3", "probe.py", *args], **config}
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.ok, outcome.error
    return json.loads(outcome.result["stdout"])


async def test_script_cannot_read_files_outside_its_workdir(
    payloads: Path, temp_root: Path, tmp_path: Path
) -> None:
    planted = write(tmp_path / "planted-secret.txt", "host secret")
    root_file = write(Path("/root/.mn-sandbox-test-planted"), "root secret")
    sibling = write(temp_root / "sibling-staging" / "other-job.txt", "other job")
    try:
        seen = await probe(
            payloads,
            temp_root,
            PROBE,
            str(planted),
            str(root_file),
            str(sibling),
            str(payloads / "probe.py"),
            "/etc/shadow",
            "/etc/hostname",
        )
    finally:
        os.unlink(root_file)
    assert seen[str(planted)] == "FileNotFoundError"
    assert seen[str(root_file)] == "FileNotFoundError"
    assert seen[str(sibling)] == "FileNotFoundError"
    assert seen[str(payloads / "probe.py")] == "FileNotFoundError"
    assert seen["/etc/shadow"] == "FileNotFoundError"
    assert seen["/etc/hostname"] == "read:mirror-neuron\n"


async def test_script_cannot_write_outside_its_workdir(
    payloads: Path, temp_root: Path, tmp_path: Path
) -> None:
    name = f"mn-escape-{random.randint(0, 10**9)}"
    targets = [f"/{name}", f"/usr/{name}", f"/etc/{name}", f"/sandbox/{name}", str(tmp_path / name)]
    seen = await probe(payloads, temp_root, WRITE_PROBE, *targets, f"/tmp/{name}", f"/sandbox/job/{name}")
    for target in targets:
        assert seen[target] in ("OSError", "PermissionError", "FileNotFoundError"), target
        assert not exists(target)
    assert seen[f"/tmp/{name}"] == "wrote"  # a private /tmp ...
    assert not exists(f"/tmp/{name}")  # ... that is not the host's
    assert seen[f"/sandbox/job/{name}"] == "wrote"


async def test_script_runs_unprivileged_without_capabilities(payloads: Path, temp_root: Path) -> None:
    nested_userns = (
        "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        "print('userns-refused' if libc.unshare(0x10000000) != 0 else 'userns-created')"
    )
    command = (
        "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
        f'python3 -c "{nested_userns}"'
    )
    outcome = await run_config({"command": command}, payloads, temp_root)
    lines = outcome.result["stdout"].splitlines()
    assert lines[:2] == ["65534", "65534"]
    assert "CapEff:\t0000000000000000" in lines
    assert "CapBnd:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    assert lines[-1] == "userns-refused"


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from host\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    server.close()
    await server.wait_closed()


CONNECT = """
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        print("connected:" + s.recv(100).decode().strip())
except OSError as e:
    print("blocked:" + type(e).__name__)
"""


async def test_script_cannot_reach_a_host_listener(payloads: Path, temp_root: Path, listener: int) -> None:
    write(payloads / "connect.py", CONNECT)
    cfg = {"upload_path": "connect.py", "command": ["python3", "connect.py", str(listener)]}
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.result["stdout"].startswith("blocked:"), outcome.result
    # With network: true the sandbox has a network of its own, which never reaches the host's loopback.
    outcome = await run_config({**cfg, "network": True}, payloads, temp_root)
    assert outcome.result["stdout"] == "blocked:ConnectionRefusedError\n", outcome.result
    # The listener really works: the host itself connects.
    reader, writer = await asyncio.open_connection("127.0.0.1", listener)
    assert await reader.readline() == b"hello from host\n"
    writer.close()


async def test_script_cannot_see_the_runtime_environment(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MN_TEST_RUNTIME_ONLY", "do-not-leak")
    monkeypatch.setenv("MN_TEST_PASSED", "passed-on-purpose")
    cfg = {
        "command": "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'",
        "environment": {"MINE": "1"},
        "pass_env": ["MN_TEST_PASSED"],
    }
    outcome = await run_config(cfg, payloads, temp_root)
    env = json.loads(outcome.result["stdout"])
    assert "MN_TEST_RUNTIME_ONLY" not in env
    assert env["MN_TEST_PASSED"] == "passed-on-purpose"
    assert env["MINE"] == "1"
    allowed = {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "USER",
        "LOGNAME",
        "MINE",
        "MN_TEST_PASSED",
        "PWD",
        "SHLVL",
        "_",
    }
    extra = {k for k in env if not k.startswith(("MN_", "MIRROR_NEURON_"))} - allowed
    assert extra == set()


async def test_fork_bomb_is_stopped_by_the_process_limit(payloads: Path, temp_root: Path) -> None:
    mark = f"{random.randint(10**8, 10**9)}"
    bomb = f": {mark}; bomb() {{ bomb | bomb & }}; bomb; sleep 30"
    outcome = await run_config(
        {"command": bomb, "limits": {"processes": 64}, "timeout_seconds": 1}, payloads, temp_root
    )
    assert not outcome.ok
    assert wait_gone(mark) == []


BOUNDED_FORKS = """
import os, time
n = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n, type(e).__name__)
"""


async def test_forks_beyond_the_limit_are_refused(payloads: Path, temp_root: Path) -> None:
    write(payloads / "forks.py", BOUNDED_FORKS)
    cfg = {"upload_path": "forks.py", "command": ["python3", "forks.py"], "limits": {"processes": 32}}
    outcome = await run_config(cfg, payloads, temp_root)
    words = outcome.result["stdout"].split()
    assert words[:3] == ["fork", "refused", "after"], outcome.result
    assert int(words[3]) < 32
    assert processes_with("forks.py") == []


async def test_memory_hog_is_stopped_by_the_address_space_limit(payloads: Path, temp_root: Path) -> None:
    hog = "python3 -c 'x = [bytearray(50 * 2**20) for _ in range(100)]; print(len(x))'"
    outcome = await run_config({"command": hog, "limits": {"memory_mb": 256}}, payloads, temp_root)
    assert not outcome.ok
    assert "MemoryError" in outcome.result["stderr"]


async def test_cpu_file_size_and_open_file_limits_apply(payloads: Path, temp_root: Path) -> None:
    big_file = 'python3 -c \'open("/sandbox/job/big", "wb").write(b"x" * 3 * 2**20)\''
    outcome = await run_config({"command": big_file, "limits": {"file_size_mb": 1}}, payloads, temp_root)
    assert not outcome.ok and "File too large" in outcome.result["stderr"]
    many = "python3 -c 'fs = [open(\"/dev/null\") for _ in range(100)]'"
    outcome = await run_config({"command": many, "limits": {"open_files": 32}}, payloads, temp_root)
    assert not outcome.ok and "Too many open files" in outcome.result["stderr"]
    outcome = await run_config(
        {"command": "while :; do :; done", "limits": {"cpu_seconds": 1}}, payloads, temp_root
    )
    assert not outcome.ok and outcome.result["exit_code"] in (128 + 24, 128 + 9)  # SIGXCPU, or KILL at hard


async def test_default_limits_are_in_place(payloads: Path, temp_root: Path) -> None:
    outcome = await run_config({"command": "ulimit -t -v -f -n -u"}, payloads, temp_root)
    values = [line.split()[-1] for line in outcome.result["stdout"].splitlines()]
    lim = SANDBOX_LIMITS
    # With a pids cgroup, RLIMIT_NPROC (per uid on the whole host) is left as the runtime's.
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    inherited = "unlimited" if nproc == resource.RLIM_INFINITY else str(nproc)
    assert values == [
        str(lim.cpu_seconds),
        str(lim.memory_mb * 1024),  # type: ignore[operator]
        str(lim.file_size_mb * 1024),  # type: ignore[operator]
        str(lim.open_files),
        str(lim.processes) if cgroup_support() is None else inherited,
    ]


def test_bwrap_command_line_isolates_by_default(temp_root: Path) -> None:
    spec = RunSpec(
        name="n",
        command="true",
        env={"A": "1"},
        staging_dir=temp_root,
        root="/sandbox/job",
        workdir="/sandbox/job",
        limits=SANDBOX_LIMITS,
    )
    argv = build_argv("/usr/bin/bwrap", spec, started_fd=9)
    text = " ".join(argv)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--cap-drop ALL" in text and "--uid 65534 --gid 65534" in text
    assert "--share-net" not in argv
    workdir_bytes = SANDBOX_LIMITS.workdir_mb * 2**20  # type: ignore[operator]
    assert f"--size {workdir_bytes} --tmpfs /sandbox/job" in text
    assert str(temp_root) not in text and "--bind " not in text  # nothing of the host's temp dir
    assert "--remount-ro /" in text and "--clearenv" in argv
    assert "--perms 0755 --dir /etc" in text
    networked = build_argv("/usr/bin/bwrap", replace(spec, network=True), started_fd=9)
    assert "--share-net" not in networked  # a network of its own is attached instead (netns)


def test_bwrap_drops_root_before_starting() -> None:
    runner = BwrapRunner()
    if os.geteuid() == 0:
        assert runner._popen_kwargs == {"user": 65534, "group": 65534, "extra_groups": []}
    else:
        assert runner._popen_kwargs == {}


async def test_death_by_signal_is_named_in_the_error(payloads: Path, temp_root: Path) -> None:
    outcome = await run_config({"command": "kill -KILL $$"}, payloads, temp_root)
    assert outcome.error == "command exited with status 137 (SIGKILL)"


async def test_environment_values_never_appear_on_a_host_command_line(
    payloads: Path, temp_root: Path
) -> None:
    mark = f"{random.randint(100, 999)}.{random.randint(10**8, 10**9)}"
    secret = f"tok-{random.randint(10**8, 10**9)}"
    executor = Executor(
        ExecutorSettings.from_config({"command": f"sleep {mark}", "environment": {"API_TOKEN": secret}})
    )
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    task = asyncio.create_task(executor.execute(inv))
    await until_running(mark)
    assert processes_with(secret) == []
    await executor.stop()
    await task
