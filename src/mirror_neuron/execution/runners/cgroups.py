"""Whole-sandbox memory and process limits with cgroups (v2, or the v1 memory and pids hierarchies).

Why: ``RLIMIT_AS`` holds per process (four children may each use the whole budget) and
``RLIMIT_NPROC`` counts every process of the sandbox uid on the host (one job at its cap
stops every other job forking). A cgroup per run bounds the sandbox as a whole.

Layout: a parent ``mirror_neuron-<pid>`` under this process's own cgroup (v2: after moving
this process into the leaf ``mn-runtime``, so the parent may enable controllers), and one
child per run, created with its limits before bwrap starts (:func:`launcher` starts bwrap
inside it) and removed once its last process is gone. Support is detected once per
process; where it is missing (a non-root runtime on v1, controllers not delegated) the
rlimits stay the only limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ...policy import Limits
from ..lifetime import at_exit

log = logging.getLogger(__name__)
MB = 1024 * 1024
CGROUP_FS = Path("/sys/fs/cgroup")
PROC_SELF = Path("/proc/self")
CONTROLLERS = ("memory", "pids")
LEAF = "mn-runtime"
PARENT_PREFIX = "mirror_neuron-"
#: Longest wait for a run's cgroup to empty before it is left for the exit handler.
REMOVE_TIMEOUT = 5.0
_RUNS = itertools.count(1)


class CgroupUnavailable(Exception):
    """Why this process cannot use cgroups (internal: turned into the "rlimits only" reason)."""


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    """Where this process creates its runs' cgroups: one parent per hierarchy (v1) or one (v2)."""

    version: int
    parents: tuple[Path, ...]

    @property
    def mode(self) -> str:
        return f"cgroup v{self.version} memory+pids"


_DETECTED: dict[str, tuple[CgroupSupport | None, str]] = {}


def cgroup_support(refresh: bool = False) -> CgroupSupport | None:
    """This process's cgroup support, detected (and set up) once."""
    if refresh or "result" not in _DETECTED:
        _DETECTED["result"] = detect()
        support = _DETECTED["result"][0]
        if support is not None:
            at_exit(remove_parents, support)
    return _DETECTED["result"][0]


def limits_mode() -> str:
    """``cgroup v1 memory+pids``, or ``rlimits only (<why>)``, for ``mn doctor``."""
    support = cgroup_support()
    return support.mode if support else f"rlimits only ({_DETECTED['result'][1]})"


def detect(
    fs: Path = CGROUP_FS, proc: Path = PROC_SELF, pid: int | None = None
) -> tuple[CgroupSupport | None, str]:
    """Create this process's parent cgroups, or say why it cannot."""
    pid = os.getpid() if pid is None else pid
    try:
        if (fs / "cgroup.controllers").exists():
            return CgroupSupport(2, (_setup_v2(fs, proc, pid),)), ""
        dirs = v1_dirs(proc)
        return CgroupSupport(1, tuple(_make_parent(dirs[c], pid) for c in CONTROLLERS)), ""
    except CgroupUnavailable as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cgroups are not usable here: {exc}"


def v1_dirs(proc: Path = PROC_SELF) -> dict[str, Path]:
    """This process's own directory in the v1 ``memory`` and ``pids`` hierarchies."""
    mounts: dict[str, tuple[Path, str]] = {}
    for line in (proc / "mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, super_fields = left.split(), right.split()
        if len(fields) < 5 or len(super_fields) < 3 or super_fields[0] != "cgroup":
            continue
        for controller in set(CONTROLLERS) & set(super_fields[2].split(",")):
            mounts.setdefault(controller, (Path(_unescape(fields[4])), _unescape(fields[3])))
    own: dict[str, str] = {}
    for line in (proc / "cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            own[name] = path
    dirs = {}
    for controller in CONTROLLERS:
        if controller not in mounts or controller not in own:
            raise CgroupUnavailable(f"no cgroup v1 {controller} hierarchy is mounted")
        mount, root = mounts[controller]
        try:
            relative = PurePosixPath(own[controller]).relative_to(root)
        except ValueError:  # a namespaced view: the mount's root is our own cgroup
            relative = PurePosixPath(".")
        dirs[controller] = mount / relative
    return dirs


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo``."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def _setup_v2(fs: Path, proc: Path, pid: int) -> Path:
    """Delegate memory+pids below our own cgroup (moving us into a leaf first) and make our parent."""
    own_path = next(
        (line[3:] for line in (proc / "cgroup").read_text().splitlines() if line.startswith("0::")), None
    )
    if own_path is None:
        raise CgroupUnavailable("this process is in no cgroup v2 group")
    own = fs / own_path.lstrip("/")
    available = set((own / "cgroup.controllers").read_text().split())
    if not set(CONTROLLERS) <= available:
        raise CgroupUnavailable(f"the memory and pids controllers are not delegated to {own}")
    enabled = set((own / "cgroup.subtree_control").read_text().split())
    if own != fs and not set(CONTROLLERS) <= enabled:
        procs = (own / "cgroup.procs").read_text().split()
        if procs != [str(pid)]:
            raise CgroupUnavailable(
                f"{own} holds other processes too; start the runtime in a cgroup of its own "
                "(e.g. systemd-run --scope -p Delegate=yes)"
            )
        leaf = own / LEAF
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(pid))
        _write(own / "cgroup.subtree_control", "+memory +pids")
    elif own == fs and not set(CONTROLLERS) <= enabled:
        _write(own / "cgroup.subtree_control", "+memory +pids")
    parent = _make_parent(own, pid)
    _write(parent / "cgroup.subtree_control", "+memory +pids")
    return parent


def _make_parent(base: Path, pid: int) -> Path:
    """``<base>/mirror_neuron-<pid>``; parents left by runtimes that are gone are removed first."""
    sweep_parents(base)
    parent = base / f"{PARENT_PREFIX}{pid}"
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create the cgroup {parent}: {exc.strerror}") from None
    return parent


def sweep_parents(base: Path) -> None:
    """Remove the (empty) cgroups of runtime processes that no longer exist (kill -9 leaves them)."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            pid = entry.name.removeprefix(PARENT_PREFIX)
            if entry.name.startswith(PARENT_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _remove_tree(entry)


def remove_parents(support: CgroupSupport) -> None:
    """At exit: this process's parents and whatever run cgroups are still in them."""
    for parent in support.parents:
        _remove_tree(parent)


def _remove_tree(parent: Path) -> None:
    with contextlib.suppress(OSError):
        for child in parent.iterdir():
            if child.is_dir():
                _kill_members(child)
                with contextlib.suppress(OSError):
                    child.rmdir()
        parent.rmdir()


def _kill_members(group: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def _write(path: Path, text: str) -> None:
    """One write(2) of ``text``: control files act on each write, buffered I/O may split it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(slots=True)
class RunCgroup:
    """One run's cgroup (one directory per v1 hierarchy): limits, membership, OOM report, removal."""

    support: CgroupSupport
    dirs: tuple[Path, ...]
    memory_mb: int | None
    _oom_seen: bool = False
    _watch: tuple[int, int] | None = field(default=None)
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def create(cls, support: CgroupSupport, limits: Limits) -> RunCgroup:
        """Make the run's cgroup with its memory and pids limits (blocking: call off the loop)."""
        name = f"run-{next(_RUNS)}"
        group = cls(support, tuple(parent / name for parent in support.parents), limits.memory_mb)
        try:
            for path in group.dirs:
                path.mkdir()
            group._set_limits(limits)
        except BaseException:
            group.try_remove()
            raise
        return group

    @property
    def memory_dir(self) -> Path:
        return self.dirs[0]

    @property
    def pids_dir(self) -> Path:
        return self.dirs[-1]

    def _set_limits(self, limits: Limits) -> None:
        memory = self.memory_dir
        if self.support.version == 2:
            if limits.memory_mb is not None:
                _write(memory / "memory.max", str(limits.memory_mb * MB))
                if (memory / "memory.swap.max").exists():
                    _write(memory / "memory.swap.max", "0")
            if (memory / "memory.oom.group").exists():  # an OOM kill takes the whole sandbox
                _write(memory / "memory.oom.group", "1")
        elif limits.memory_mb is not None:
            _write(memory / "memory.limit_in_bytes", str(limits.memory_mb * MB))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap must not bypass it
                _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_mb * MB))
        if limits.processes is not None:
            # +1: bwrap itself is in the cgroup (the sandbox is born in it)
            _write(self.pids_dir / "pids.max", str(limits.processes + 1))

    def join_files(self) -> list[Path]:
        """Where a process writes ``0`` to move itself in: v1 ``tasks`` (one thread, no global
        lock, so no wait for an RCU grace period), v2 ``cgroup.procs``."""
        return [path / ("tasks" if self.support.version == 1 else "cgroup.procs") for path in self.dirs]

    def join(self, pid: int) -> None:
        """Move the process ``pid`` in (blocking: it waits for an RCU grace period, ~10 ms)."""
        for path in self.dirs:
            _write(path / "cgroup.procs", str(pid))

    async def attach(self, pid: int) -> None:
        """Move ``pid`` (the sandbox's first process, not yet running the command) into the cgroup."""
        await asyncio.to_thread(self.join, pid)

    def watch(self) -> None:
        """Start reporting (and, on v1, acting on) OOM kills; call on the event loop at start."""
        if self.support.version == 1 and self._watch is None:
            self._watch_oom_v1()

    def _watch_oom_v1(self) -> None:
        """v1 has no ``memory.oom.group``: on an OOM event, kill the rest of the sandbox ourselves."""
        event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        control = os.open(self.memory_dir / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _write(self.memory_dir / "cgroup.event_control", f"{event} {control}")
        except OSError:
            os.close(event)
            os.close(control)
            return
        self._watch = (event, control)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(event, self._on_oom)

    def _on_oom(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(OSError):
                os.eventfd_read(self._watch[0])
        self._oom_seen = True
        self.kill()

    def _unwatch(self) -> None:
        if self._watch is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._watch[0])
        for fd in self._watch:
            os.close(fd)
        self._watch = None

    def oom_killed(self) -> bool:
        """Whether the OOM killer fired in the cgroup (v1 ``memory.oom_control``, v2 ``memory.events``)."""
        name = "memory.events" if self.support.version == 2 else "memory.oom_control"
        try:
            text = (self.memory_dir / name).read_text()
        except OSError:
            return self._oom_seen
        counts = dict(line.split(None, 1) for line in text.splitlines() if " " in line)
        return self._oom_seen or int(counts.get("oom_kill", "0")) > 0

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (v2: ``cgroup.kill`` where the kernel has it)."""
        kill_file = self.pids_dir / "cgroup.kill"
        if self.support.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                _write(kill_file, "1")
                return
        _kill_members(self.pids_dir)

    def try_remove(self) -> bool:
        """Remove the directories now; False while a process is still in one."""
        done = True
        for path in self.dirs:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                done = False
        return done

    async def remove(self, timeout: float = REMOVE_TIMEOUT) -> None:
        """Remove the cgroup once it is empty, killing stragglers (there is no event to await in v1)."""
        self._unwatch()
        deadline = time.monotonic() + timeout
        delay = 0.002
        while not self.try_remove():
            if time.monotonic() > deadline:
                log.warning("cgroup %s is still busy after %.1fs; left for exit", self.dirs[0], timeout)
                return
            self.kill()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def oom_message(self) -> str:
        limit = f" of {self.memory_mb} MB" if self.memory_mb is not None else ""
        return f"the sandbox exceeded its memory limit{limit} and was killed"


#: Moves the shell itself into each file's cgroup, then execs the rest of its arguments.
JOIN_SCRIPT = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo 0 > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'
)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")


def launcher(cgroup: RunCgroup | None, become: tuple[int, int] | None) -> list[str] | None:
    """The argv prefix that starts bwrap inside the run's cgroup, so the sandbox is born there.

    A shell writes ``0`` to the cgroup (moving itself), becomes ``become`` (uid, gid) with
    ``setpriv`` when given, and execs bwrap. Why not move bwrap's child afterwards: moving
    another process takes a global lock whose writer waits for an RCU grace period (10-15 ms
    here, on every run); a thread moving itself through v1 ``tasks`` takes no such lock.
    ``[]`` without a cgroup; ``None`` where it cannot be done (root without setpriv).
    """
    if cgroup is None:
        return []
    drop: list[str] = []
    if become is not None:
        setpriv = _setpriv()
        if setpriv is None:
            return None
        drop = [setpriv, f"--reuid={become[0]}", f"--regid={become[1]}", "--clear-groups", "--"]
    files = [str(path) for path in cgroup.join_files()]
    return ["/bin/sh", "-c", JOIN_SCRIPT, "sh", str(len(files)), *files, *drop]


__all__ = ["CgroupSupport", "RunCgroup", "cgroup_support", "detect", "launcher", "limits_mode", "v1_dirs"]
