"""Hostile scripts against the sandbox's limits: memory and processes of the sandbox as a whole
(cgroups), size-capped tmpfs for the workdir, /tmp and /dev/shm, a read-only /dev, and a
mount table that names no host path of ours."""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
from pathlib import Path

import pytest

from mirror_neuron.execution import Executor, ExecutorSettings, Invocation, StagingError
from mirror_neuron.execution.runners import bwrap, sandbox_fs
from mirror_neuron.execution.runners import cgroups as cgroups_module
from mirror_neuron.execution.runners.cgroups import CgroupSupport, cgroup_support
from mirror_neuron.messages import normalize

from .conftest import processes_with, run_config, until_running, wait_gone, write

pytestmark = pytest.mark.usefixtures("sandbox")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the cgroup hierarchies here are root's; CI runs these tests as root"
)


@pytest.fixture
def cgroups() -> CgroupSupport:
    """This process's cgroup support: as root it must work (CI runs as root)."""
    support = cgroup_support()
    assert support is not None, "running as root, the runtime must be able to use cgroups here"
    return support


def run_cgroups(support: CgroupSupport) -> list[str]:
    """Run cgroups still present under this process's parents (none once every run is over)."""
    return [
        f"{parent}/{child.name}" for parent in support.parents for child in parent.iterdir() if child.is_dir()
    ]


CHILDREN = """
import os, sys
n = int(sys.argv[1])
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        data = b"x" * (100 << 20)  # 100 MB, every page touched
        os.write(ready_w, b".")
        os.read(go_r, 1)  # hold it until every child has its 100 MB
        os._exit(0 if data else 1)
    pids.append(pid)
os.close(go_r)
got = 0
while got < n:
    got += len(os.read(ready_r, n))
os.close(go_w)
codes = [os.waitpid(pid, 0)[1] for pid in pids]
print("held", n * 100, "MB", codes)
sys.exit(1 if any(codes) else 0)
"""


@needs_root
async def test_memory_limit_holds_for_the_sandbox_as_a_whole(
    payloads: Path, temp_root: Path, cgroups: CgroupSupport
) -> None:
    write(payloads / "children.py", CHILDREN)
    base = {"upload_path": "children.py", "limits": {"memory_mb": 256}, "timeout_seconds": 60}
    one = await run_config({**base, "command": ["python3", "children.py", "1"]}, payloads, temp_root)
    assert one.ok, one.error
    four = await run_config({**base, "command": ["python3", "children.py", "4"]}, payloads, temp_root)
    assert not four.ok
    assert "the sandbox exceeded its memory limit of 256 MB and was killed" in (four.error or "")
    assert "memory limit of 256 MB" in four.result["logs"]
    assert processes_with("children.py") == []
    assert run_cgroups(cgroups) == []


FORK_LOOP = """
import os, sys
r, w = os.pipe()
n = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)  # hold until the parent lets go (or forever with "hold")
            os._exit(0)
        n += 1
except OSError as e:
    print("refused after", n, type(e).__name__, flush=True)
if sys.argv[1:] == ["hold"]:
    os.read(r, 1)
os.close(w)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def forks(outcome_stdout: str) -> int:
    words = outcome_stdout.split()
    assert words[:2] == ["refused", "after"], outcome_stdout
    return int(words[2])


@needs_root
async def test_process_limit_holds_for_the_sandbox_as_a_whole(
    payloads: Path, temp_root: Path, cgroups: CgroupSupport
) -> None:
    write(payloads / "forks.py", FORK_LOOP)
    cfg = {"upload_path": "forks.py", "command": ["python3", "forks.py"], "limits": {"processes": 20}}
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert 10 <= forks(outcome.result["stdout"]) < 20  # bwrap's init, bash and python count too
    assert processes_with("forks.py") == []
    assert run_cgroups(cgroups) == []


@needs_root
async def test_a_sandbox_at_its_process_cap_does_not_stop_another_from_forking(
    payloads: Path, temp_root: Path, cgroups: CgroupSupport
) -> None:
    mark = f"hold{random.randint(10**8, 10**9)}"
    write(payloads / "forks.py", FORK_LOOP)
    write(payloads / f"{mark}.py", FORK_LOOP)
    holder = Executor(
        ExecutorSettings.from_config(
            {
                "upload_path": f"{mark}.py",
                "command": ["python3", f"{mark}.py", "hold"],
                "limits": {"processes": 20},
                "timeout_seconds": 60,
            }
        )
    )
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    held = asyncio.create_task(holder.execute(inv))
    try:
        await until_running(mark, 15)  # the holder sits at its cap
        cfg = {"upload_path": "forks.py", "command": ["python3", "forks.py"], "limits": {"processes": 20}}
        other = await run_config(cfg, payloads, temp_root)
        assert other.ok, other.error
        assert forks(other.result["stdout"]) >= 10
    finally:
        await holder.stop()
        await held
    assert wait_gone(mark) == []
    assert run_cgroups(cgroups) == []


def host_uids(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4]


def host_cgroups(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return {line.split(":")[1]: line.split(":", 2)[2] for line in lines}


@needs_root
@pytest.mark.parametrize("setpriv", [True, False], ids=["launcher", "moved-by-block-fd"])
async def test_the_command_starts_inside_its_cgroup(
    payloads: Path, temp_root: Path, cgroups: CgroupSupport, monkeypatch: pytest.MonkeyPatch, setpriv: bool
) -> None:
    """bwrap starts in the run's cgroup (or, without setpriv, its first process is moved there
    while --block-fd holds the command): the command is born inside, as host uid 65534."""
    if not setpriv:
        monkeypatch.setattr(cgroups_module, "_setpriv", lambda: None)
    mark = f"{random.randint(10**8, 10**9)}"
    executor = Executor(ExecutorSettings.from_config({"command": f"x=mn-held; exec -a $x-{mark} sleep 30"}))
    msg = normalize({})
    inv = Invocation(job_id="j", agent_id="w", message=msg, payloads_path=payloads, temp_dir=temp_root)
    task = asyncio.create_task(executor.execute(inv))
    try:
        await until_running(f"mn-held-{mark}")
        (pid,) = processes_with(f"mn-held-{mark}")
        seen = host_cgroups(pid)
        uids = host_uids(pid)
    finally:
        await executor.stop()
        await task
    for controller in ("memory", "pids"):
        assert f"/mirror_neuron-{os.getpid()}/run-" in seen[controller], seen
    assert uids == ["65534"] * 4  # on the host too, never root
    assert run_cgroups(cgroups) == []


async def test_without_cgroups_the_rlimits_stay(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap, "cgroup_support", lambda: None)
    cfg = {"command": "ulimit -u -v", "limits": {"processes": 32, "memory_mb": 256}}
    outcome = await run_config(cfg, payloads, temp_root)
    assert [line.split()[-1] for line in outcome.result["stdout"].splitlines()] == ["32", str(256 * 1024)]


FILL = """
import errno, json, os, sys
results = {}
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        for _ in range(64):
            os.write(fd, b"x" * 2**20)
        results[path] = "wrote 64 MB"
    except OSError as e:
        results[path] = errno.errorcode[e.errno]
print(json.dumps(results))
"""


async def test_workdir_tmp_and_shm_are_size_capped_tmpfs(payloads: Path, temp_root: Path) -> None:
    write(payloads / "fill.py", FILL)
    targets = ["/sandbox/job/fill", "/tmp/fill", "/dev/shm/fill", "/dev/evil"]
    cfg = {
        "upload_path": "fill.py",
        "command": ["python3", "fill.py", *targets],
        "limits": {"workdir_mb": 8, "tmp_mb": 8},
    }
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert json.loads(outcome.result["stdout"]) == {
        "/sandbox/job/fill": "ENOSPC",
        "/tmp/fill": "ENOSPC",
        "/dev/shm/fill": "ENOSPC",
        "/dev/evil": "EROFS",  # /dev is read-only ...
    }
    outcome = await run_config({"command": "echo x > /dev/null && echo ok"}, payloads, temp_root)
    assert outcome.result["stdout"] == "ok\n"  # ... its devices still work


async def test_mountinfo_names_no_host_path_of_the_runtime(payloads: Path, temp_root: Path) -> None:
    write(payloads / "app" / "main.py", "print('hi')")
    cfg = {
        "upload_path": "app",
        "workdir": "/sandbox/job/app",
        "command": "python3 main.py; cat /proc/self/mountinfo",
    }
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.ok, outcome.error
    text = outcome.result["stdout"]
    assert text.startswith("hi\n")
    for host_path in (str(temp_root), "mn-exec-test", "mirror_neuron_", ".sandbox-etc", "run-"):
        assert host_path not in text, host_path
    mounts = {line.split()[4]: line.split(" - ")[1].split()[0] for line in text.splitlines()[1:]}
    assert mounts["/sandbox/job"] == mounts["/tmp"] == mounts["/dev/shm"] == "tmpfs"
    assert "/etc" not in mounts  # recreated inside the sandbox's root, not mounted


async def test_staged_files_belong_to_the_sandbox_user(payloads: Path, temp_root: Path) -> None:
    write(payloads / "app" / "data.txt", "data")
    cfg = {
        "upload_path": "app",
        "command": "stat -c '%u %a %n' app app/data.txt && echo more >> app/data.txt && mkdir app/new "
        "&& cat app/data.txt",
    }
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert outcome.result["stdout"] == "65534 755 app\n65534 644 app/data.txt\ndatamore\n"


async def test_staged_content_bigger_than_the_workdir_is_refused(payloads: Path, temp_root: Path) -> None:
    (payloads / "big.bin").write_bytes(b"x" * (3 * 2**20))
    cfg = {"upload_path": "big.bin", "command": "true", "limits": {"workdir_mb": 2}}
    with pytest.raises(StagingError, match=r"uploads take more than 2 MB \(at big.bin\)"):
        await run_config(cfg, payloads, temp_root)


async def test_staged_content_bigger_than_the_memory_limit_is_refused(
    payloads: Path, temp_root: Path
) -> None:
    (payloads / "big.bin").write_bytes(b"x" * (3 * 2**20))
    cfg = {"upload_path": "big.bin", "command": "true", "limits": {"memory_mb": 2}}
    with pytest.raises(StagingError, match=r"uploads take more than 2 MB .*workdir_mb/memory_mb"):
        await run_config(cfg, payloads, temp_root)


async def test_one_file_uploaded_under_many_names_stops_at_the_cap(payloads: Path, temp_root: Path) -> None:
    (payloads / "one.bin").write_bytes(b"x" * 2**20)
    targets = [{"source": "one.bin", "target": f"copy{i}.bin"} for i in range(100)]
    cfg = {"upload_paths": targets, "command": "true", "limits": {"workdir_mb": 5}}
    with pytest.raises(StagingError, match=r"more than 5 MB \(at copy5.bin\)"):
        await run_config(cfg, payloads, temp_root)
    assert not copies_left(temp_root)  # and what it had copied is gone


def copies_left(root: Path) -> list[Path]:
    return list(root.rglob("*.bin"))


async def test_too_many_staged_entries_are_refused(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_fs, "MAX_TREE_ENTRIES", 50)
    for i in range(60):
        write(payloads / "many" / f"f{i}.txt", "x")
    with pytest.raises(StagingError, match="hold more than 50 files, directories and links"):
        await run_config({"upload_path": "many", "command": "true"}, payloads, temp_root)


async def test_many_files_fit_under_a_low_soft_fd_limit(payloads: Path, temp_root: Path) -> None:
    for i in range(1500):
        write(payloads / "many" / f"f{i}.txt", str(i))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1500 + sandbox_fs.FD_HEADROOM + 100:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) is too low to test raising the soft one")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        outcome = await run_config(
            {"upload_path": "many", "command": "ls many | wc -l; cat many/f1499.txt"}, payloads, temp_root
        )
        assert outcome.ok, outcome.error
        assert outcome.result["stdout"] == "1500\n1499"
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 1024  # raised to the hard limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
