"""Finding and setting up this process's cgroups (v1 hierarchies, v2 delegation), and cleaning up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirror_neuron.execution.runners import cgroups
from mirror_neuron.execution.runners.cgroups import CgroupSupport, RunCgroup, detect, launcher, v1_dirs
from mirror_neuron.policy import Limits


def fake_proc(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(cgroup)
    return proc


V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
39 31 0:36 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def test_v1_dirs_come_from_mountinfo_and_our_own_cgroup(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, V1_MOUNTS, "8:pids:/docker/abc\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/\n"
    )
    assert v1_dirs(proc) == {
        "memory": Path("/sys/fs/cgroup/memory/process_api/x"),
        "pids": Path("/sys/fs/cgroup/pids"),  # a namespaced view: the mount's root is our cgroup
    }


def test_v1_without_a_pids_hierarchy_is_rlimits_only(tmp_path: Path) -> None:
    mounts = "\n".join(line for line in V1_MOUNTS.splitlines() if "pids" not in line) + "\n"
    proc = fake_proc(tmp_path, mounts, "4:memory:/\n0::/\n")
    support, why = detect(tmp_path / "no-cgroup2", proc, pid=123)
    assert support is None
    assert why == "no cgroup v1 pids hierarchy is mounted"


def fake_v2(tmp_path: Path, procs: str, controllers: str = "cpu memory pids") -> tuple[Path, Path, Path]:
    fs = tmp_path / "cgroup"
    own = fs / "system.slice" / "mn.service"
    own.mkdir(parents=True)
    (fs / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("\n")
    (own / "cgroup.procs").write_text(procs)
    proc = fake_proc(tmp_path, "", "0::/system.slice/mn.service\n")
    return fs, own, proc


def test_v2_moves_us_into_a_leaf_and_delegates_memory_and_pids(tmp_path: Path) -> None:
    fs, own, proc = fake_v2(tmp_path, "4242\n")
    support, why = detect(fs, proc, pid=4242)
    assert why == ""
    assert support == CgroupSupport(2, (own / "mirror_neuron-4242",))
    assert (own / "mn-runtime" / "cgroup.procs").read_text() == "4242"
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (own / "mirror_neuron-4242" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert support.mode == "cgroup v2 memory+pids"


def test_v2_cgroup_shared_with_other_processes_is_rlimits_only(tmp_path: Path) -> None:
    fs, own, proc = fake_v2(tmp_path, "4242\n77\n")
    support, why = detect(fs, proc, pid=4242)
    assert support is None
    assert f"{own} holds other processes too" in why
    assert not (own / "mn-runtime").exists()


def test_v2_without_delegated_controllers_is_rlimits_only(tmp_path: Path) -> None:
    fs, own, proc = fake_v2(tmp_path, "4242\n", controllers="cpu")
    support, why = detect(fs, proc, pid=4242)
    assert support is None
    assert why == f"the memory and pids controllers are not delegated to {own}"


def test_v2_run_cgroup_sets_memory_swap_oom_group_and_pids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "mirror_neuron-1"
    parent.mkdir()
    original_mkdir = Path.mkdir

    def mkdir_like_cgroupfs(path: Path, *args: object, **kwargs: object) -> None:
        original_mkdir(path)  # the kernel fills a new cgroup with its control files
        for name in ("memory.max", "memory.swap.max", "memory.oom.group", "pids.max"):
            (path / name).write_text("max\n")

    monkeypatch.setattr(Path, "mkdir", mkdir_like_cgroupfs)
    group = RunCgroup.create(CgroupSupport(2, (parent,)), Limits(memory_mb=64, processes=9))
    monkeypatch.undo()
    (path,) = group.dirs
    assert (path / "memory.max").read_text() == str(64 * 2**20)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "memory.oom.group").read_text() == "1"
    assert (path / "pids.max").read_text() == "10"  # and bwrap itself
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed()
    assert group.oom_message() == "the sandbox exceeded its memory limit of 64 MB and was killed"


@pytest.mark.skipif(os.geteuid() != 0, reason="the cgroup hierarchies here are root's; CI runs as root")
def test_cgroups_of_a_runtime_that_is_gone_are_swept() -> None:
    support = cgroups.cgroup_support()
    assert support is not None, "running as root, the runtime must be able to use cgroups here"
    dead = subprocess.Popen(["true"])
    dead.wait()
    bases = [parent.parent for parent in support.parents]
    stale = [base / f"mirror_neuron-{dead.pid}" for base in bases]
    for path in stale:
        (path / "run-7").mkdir(parents=True)
    for base in bases:
        cgroups.sweep_parents(base)
    assert [path for path in stale if path.exists()] == []
    assert all(parent.is_dir() for parent in support.parents)  # ours, alive, is kept


@pytest.mark.skipif(os.geteuid() != 0, reason="the cgroup hierarchies here are root's; CI runs as root")
def test_real_run_cgroup_gets_its_limits_and_is_removed() -> None:
    support = cgroups.cgroup_support()
    assert support is not None
    group = RunCgroup.create(support, Limits(memory_mb=128, processes=16))
    try:
        assert all(path.is_dir() for path in group.dirs)
        assert (group.pids_dir / "pids.max").read_text().strip() == "17"  # and bwrap itself
        if support.version == 1:
            limit = int((group.memory_dir / "memory.limit_in_bytes").read_text())
            assert limit == 128 * 2**20
        assert not group.oom_killed()
    finally:
        assert group.try_remove()
    assert not any(path.exists() for path in group.dirs)


def test_launcher_joins_the_cgroup_itself_then_drops_root(monkeypatch: pytest.MonkeyPatch) -> None:
    parents = (Path("/m/p"), Path("/p/p"))
    v1 = RunCgroup(CgroupSupport(1, parents), (Path("/m/p/run-1"), Path("/p/p/run-1")), 64)
    assert launcher(None, (65534, 65534)) == []
    files = ["/m/p/run-1/tasks", "/p/p/run-1/tasks"]  # v1 tasks: a thread moves itself, no global lock
    assert launcher(v1, None) == ["/bin/sh", "-c", cgroups.JOIN_SCRIPT, "sh", "2", *files]
    monkeypatch.setattr(cgroups, "_setpriv", lambda: "/usr/bin/setpriv")
    assert launcher(v1, (65534, 65534))[-5:] == [
        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"
    ]  # fmt: skip
    v2 = RunCgroup(CgroupSupport(2, (Path("/c/p"),)), (Path("/c/p/run-1"),), 64)
    assert launcher(v2, None)[-2:] == ["1", "/c/p/run-1/cgroup.procs"]
    monkeypatch.setattr(cgroups, "_setpriv", lambda: None)
    assert launcher(v1, (65534, 65534)) is None  # root without setpriv: bwrap's child is moved instead
