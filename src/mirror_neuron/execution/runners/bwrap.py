"""The default ``sandbox`` runner: bubblewrap, a fresh set of namespaces per run.

What the command sees: ``/usr`` (and the ``/bin``, ``/lib*`` links) read-only; a private
read-only ``/etc`` (copies of what the loader, bash and python need); its workdir at
``/sandbox/job``; a private ``/proc``, a read-only minimal ``/dev``; no network, or with
``network: true`` a network of its own that never reaches this host (:mod:`.netns`); no
capabilities, no nested user namespaces; uid/gid 65534;
only the contract environment. The root is read-only. Options (including environment
values) reach bwrap through ``--args <memfd>``, never through the world-readable command line.

File system: nothing of the host's temp dir is mounted. ``/sandbox/job``, ``/tmp`` and
``/dev/shm`` are tmpfs capped at ``workdir_mb`` and ``tmp_mb``; the staged tree and ``/etc``
are recreated inside the sandbox by bwrap itself (``--dir``, ``--symlink``, and ``--file``
from descriptors we open without following links), so they belong to the sandbox user,
and ``/proc/self/mountinfo`` names no host path of ours.

Privileges: when the runtime runs as root, bwrap itself runs as uid/gid 65534 (``setpriv``
in the launcher, else ``Popen(user=, group=)``). Started as root, the sandbox user would map
to host uid 0.

Limits: a cgroup per run bounds memory and processes of the sandbox as a whole
(:mod:`.cgroups`). bwrap is started inside it (:func:`.cgroups.launcher`), so the sandbox is
born there; where that cannot be done, a setup step moves the sandbox's first process in
while ``--block-fd`` holds the command. ``ulimit -S -H`` in the wrapper shell sets the
per-process limits (``RLIMIT_NPROC`` only without cgroups); without capabilities the
command cannot raise them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import RunnerError, SandboxUnavailable, StagingError
from . import netns
from . import sandbox_fs as fs
from .base import RunResult, RunSpec, decode, from_process, shell_script
from .cgroups import CgroupSupport, RunCgroup, cgroup_support, launcher, limits_mode
from .process import (
    ProcessOutput,
    exited_unreaped,
    pidfd_exited,
    read_available,
    read_to_eof,
    run_owned,
    wait_pidfd,
)
from .sandbox_fs import HOSTNAME, SANDBOX_GID, SANDBOX_UID, TOP_LEVEL, sandbox_etc

#: Longest wait for a sandbox's processes to be gone after bwrap itself exited.
GONE_TIMEOUT = 5.0
MB = 1024 * 1024
INSTALL_HINT = (
    'install bubblewrap (apt-get install bubblewrap), or set runner: "host_local" on executor nodes '
    "that run trusted code without isolation"
)
USERNS_HINT = (
    "bubblewrap runs unprivileged (uid 65534) and needs user namespaces: check sysctl "
    "user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1 and, on Ubuntu 24.04+, "
    "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap"
)
SANDBOX_BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
}
#: Host files a networked sandbox reads as they are (its resolv.conf and hosts are its own:
#: :func:`.netns.etc_files`).
NETWORK_ETC_FILES = ("host.conf", "gai.conf", "services", "protocols", "ssl", "ca-certificates", "pki")
#: A step run once the sandbox's first process exists (given its pid), before the command
#: starts: cgroup membership, and e.g. attaching a network to its namespace. It may return
#: a cleanup, awaited once every process of the sandbox is gone.
Cleanup = Callable[[], Awaitable[None]]
SetupStep = Callable[[int], Awaitable[Cleanup | None]]


@functools.cache
def system_mounts() -> tuple[str, ...]:
    """``--ro-bind``/``--symlink`` arguments for /usr and the merged-/usr links."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in TOP_LEVEL:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def network_mounts() -> list[str]:
    args: list[str] = []
    for name in NETWORK_ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def namespace_args() -> list[str]:
    """Every namespace new, the network's too: ``network: true`` attaches one (never ``--share-net``)."""
    return [
        "--unshare-all", "--unshare-user", "--disable-userns",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
        "--hostname", HOSTNAME,
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",
    ]  # fmt: skip


def _size(mb: int | None) -> list[str]:
    return ["--size", str(mb * MB)] if mb else []


def sandbox_options(spec: RunSpec, etc_ops: Sequence[str] = (), workdir_ops: Sequence[str] = ()) -> list[str]:
    """bwrap's options for one run: namespaces, mounts, cwd and the whole environment.

    Order matters: each tmpfs before what is created in it, ``/dev`` read-only after its
    mounts, the root read-only last.
    """
    tmp_size = _size(spec.limits.tmp_mb)
    opts = [*namespace_args(), *system_mounts(), "--perms", "0755", "--dir", "/etc", *etc_ops]
    opts += fs.etc_binds()
    if spec.network:
        opts += network_mounts()
    opts += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", *tmp_size, "--tmpfs", "/dev/shm"]
    opts += ["--remount-ro", "/dev", *tmp_size, "--tmpfs", "/tmp"]
    opts += [*_size(spec.limits.workdir_mb), "--tmpfs", spec.root, *workdir_ops]
    opts += ["--remount-ro", "/", "--chdir", spec.workdir, "--clearenv"]
    for key, value in {**SANDBOX_BASE_ENV, **spec.env}.items():
        opts += ["--setenv", key, value]
    return opts


def sandbox_command(
    spec: RunSpec, started_fd: int, *, nproc: bool = True, gate_fd: int | None = None
) -> list[str]:
    # The first thing the shell does is say "started": a failure before that is bwrap's own.
    script = f"printf . >&{started_fd}; exec {started_fd}>&-\n{shell_script(spec, nproc=nproc)}"
    if gate_fd is not None:  # set up by the runtime, or it died meanwhile: then never run
        script = f"read -r -u {gate_fd} _ || exit 125; exec {gate_fd}<&-\n{script}"
    return ["/bin/bash", "-lc" if spec.login_shell else "-c", script]


def build_argv(
    bwrap: str,
    spec: RunSpec,
    *,
    started_fd: int,
    etc_ops: Sequence[str] = (),
    workdir_ops: Sequence[str] = (),
    nproc: bool = True,
) -> list[str]:
    """The complete bwrap command line for one run, as one list (for inspection and tests).

    At run time the options travel through ``--args <memfd>`` instead, so environment
    values (tokens) never appear in the world-readable ``/proc/<pid>/cmdline``.
    """
    options = sandbox_options(spec, etc_ops, workdir_ops)
    return [bwrap, *options, "--", *sandbox_command(spec, started_fd, nproc=nproc)]


@dataclass(slots=True)
class Prepared:
    """What one run takes from the host: bwrap's options, the fds they name, the run's cgroup."""

    options: list[str]
    fds: list[int]
    cgroup: RunCgroup | None
    #: The cgroup is joined by moving the sandbox's first process (no launcher could join it).
    move_child: bool = False

    def close_fds(self) -> None:
        fs.TreeCopy(fds=self.fds).close()

    def discard(self) -> None:
        self.close_fds()
        if self.cgroup is not None:
            self.cgroup.try_remove()


def prepare_run(spec: RunSpec, support: CgroupSupport | None) -> Prepared:
    """Open the staged tree and /etc for bwrap and create the run's cgroup (blocking: off the loop).

    Raises:
        StagingError: the staged tree is too big for ``workdir_mb`` or holds too many entries.
    """
    etc = sandbox_etc(spec.staging_dir.parent)
    entries, etc_listed = fs.list_tree(spec.staging_dir), fs.etc_entries(etc)
    fs.fd_room(len(entries) + len(etc_listed))
    etc_copy, job = fs.TreeCopy(), fs.TreeCopy()
    try:
        fs.copy_tree(etc, etc_listed, "/etc", etc_copy)
        if spec.network:
            _network_etc(etc_copy)
        fs.copy_tree(spec.staging_dir, entries, spec.root, job)
        for cap, name in ((spec.limits.workdir_mb, "workdir_mb"), (spec.limits.memory_mb, "memory_mb")):
            if cap is not None and job.size > cap * MB:  # the workdir is memory: it counts for both
                raise StagingError(
                    f"the staged files take {job.size / MB:.1f} MB but the sandbox workdir {spec.root} "
                    f"is capped at {name}={cap} MB; upload less"
                )
        cgroup = RunCgroup.create(support, spec.limits) if support is not None else None
    except BaseException:
        etc_copy.close()
        job.close()
        raise
    options = sandbox_options(spec, etc_copy.args, job.args)
    return Prepared(options, etc_copy.fds + job.fds, cgroup)


def _network_etc(out: fs.TreeCopy) -> None:
    """A networked sandbox's own resolv.conf (slirp's DNS forwarder) and hosts, from memory."""
    for path, data in netns.etc_files().items():
        fd = os.memfd_create("mirror-neuron-etc", os.MFD_CLOEXEC)
        out.fds.append(fd)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        out.args += ["--perms", "0644", "--file", str(fd), path]


async def _prepare(spec: RunSpec, support: CgroupSupport | None) -> Prepared:
    """:func:`prepare_run` in a thread; if we are cancelled meanwhile, what it made is released."""
    task = asyncio.ensure_future(asyncio.to_thread(prepare_run, spec, support))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_discard)
        raise


def _discard(task: asyncio.Future[Prepared]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().discard()


def _args_fd(options: list[str]) -> int:
    """bwrap's options as one NUL-separated memfd: a NUL inside a value would start a new option.

    Raises:
        RunnerError: an option contains a NUL byte (a value no program could receive anyway).
    """
    for option in options:
        if "\0" in option:
            raise RunnerError(f"a value for the sandbox contains a NUL byte: {option[:60]!r}")
    fd = os.memfd_create("mirror-neuron-bwrap-args")
    os.write(fd, b"".join(opt.encode() + b"\0" for opt in options))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _popen_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}


def _child_pid(info: bytes) -> int | None:
    try:
        return int(json.loads(info)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


class Launch:
    """One bwrap start: its pipes (started, info, block), the setup steps, the end of the sandbox.

    bwrap's sandbox process waits on ``--block-fd`` right before it forks the command;
    meanwhile ``--info-fd`` gives us its pid, the steps run, then one byte lets the command
    start. Without steps nothing waits.
    """

    def __init__(self, prepared: Prepared, steps: list[SetupStep], prefix: list[str]) -> None:
        self.prepared, self.steps, self.prefix = prepared, steps, prefix
        self.fds: dict[str, int] = {}
        try:
            self.fds["started_r"], self.fds["started_w"] = os.pipe()
            self.fds["info_r"], self.fds["info_w"] = os.pipe()
            extra = ["--info-fd", str(self.fds["info_w"])]
            if steps:
                self.fds["block_r"], self.fds["block_w"] = os.pipe()
                self.fds["gate_r"], self.fds["gate_w"] = os.pipe()
                extra += ["--block-fd", str(self.fds["block_r"])]
            self.fds["args"] = _args_fd([*extra, *prepared.options])
        except BaseException:  # out of fds, or a value bwrap must not get: leave nothing open
            self._close(*list(self.fds))
            raise
        self.pidfd = self.bwrap_fd = -1
        self.oom = False
        self.cleanups: list[Cleanup] = []

    def argv(self, bwrap: str, spec: RunSpec) -> list[str]:
        nproc = self.prepared.cgroup is None
        command = sandbox_command(spec, self.fds["started_w"], nproc=nproc, gate_fd=self.fds.get("gate_r"))
        return [*self.prefix, bwrap, "--args", str(self.fds["args"]), "--", *command]

    def pass_fds(self) -> tuple[int, ...]:
        ours = ("started_w", "info_w", "block_r", "gate_r", "args")
        return (*(self.fds[n] for n in ours if n in self.fds), *self.prepared.fds)

    def _close(self, *names: str) -> None:
        for name in names:
            fd = self.fds.pop(name, -1)
            if fd >= 0:
                os.close(fd)

    async def on_started(self, popen: subprocess.Popen[bytes]) -> None:
        """Once bwrap runs: drop our copies of its fds, learn the sandbox's pid, set up, release.

        Raises:
            SandboxUnavailable: a step failed with an OSError while the sandbox was still there
                (one that died meanwhile, stopped or timed out, is reported as such instead).
        """
        self._close("info_w", "block_r", "gate_r", "args")
        self.prepared.close_fds()
        if self.prepared.cgroup is not None:
            self.prepared.cgroup.watch()
        pid = _child_pid(await read_to_eof(self.fds["info_r"]))
        if pid is None:
            return  # bwrap failed before it made a sandbox; its stderr says why
        with contextlib.suppress(OSError):
            self.pidfd = os.pidfd_open(pid)
            self._watch_bwrap(popen.pid)
        try:
            for step in self.steps:
                cleanup = await step(pid)
                if cleanup is not None:
                    self.cleanups.append(cleanup)
            if "block_w" in self.fds:
                os.write(self.fds["block_w"], b"\0")
                os.write(self.fds["gate_w"], b"go\n")
                self._close("block_w", "gate_w")
        except OSError as exc:
            if exited_unreaped(popen.pid) or (self.pidfd >= 0 and pidfd_exited(self.pidfd)):
                return
            raise SandboxUnavailable(f"the sandbox could not be set up: {exc}") from exc

    def _watch_bwrap(self, pid: int) -> None:
        """Kill the sandbox as soon as bwrap exits: its --die-with-parent starts only with the command."""
        self.bwrap_fd = os.pidfd_open(pid)
        asyncio.get_running_loop().add_reader(self.bwrap_fd, self._kill_sandbox)

    def _kill_sandbox(self) -> None:
        if self.bwrap_fd >= 0:
            asyncio.get_running_loop().remove_reader(self.bwrap_fd)
            os.close(self.bwrap_fd)
            self.bwrap_fd = -1
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def command_started(self) -> bool:
        return bool(read_available(self.fds["started_r"]))

    async def finish(self) -> None:
        """Close every fd, wait until no process of the sandbox is left, clean up, remove its cgroup."""
        self.prepared.close_fds()
        self._kill_sandbox()  # bwrap is gone: a sandbox still held at --block-fd must not run on EOF
        self._close(*list(self.fds))
        if self.pidfd >= 0:
            await wait_pidfd(self.pidfd, GONE_TIMEOUT)
            os.close(self.pidfd)
            self.pidfd = -1
        errors: list[Exception] = []
        for cleanup in reversed(self.cleanups):
            try:
                await cleanup()
            except Exception as exc:  # the others and the cgroup must still be cleaned up
                errors.append(exc)
        if self.prepared.cgroup is not None:
            self.oom = self.prepared.cgroup.oom_killed()
            await self.prepared.cgroup.remove()
        if errors:
            raise errors[0]


class BwrapRunner:
    """Bubblewrap sandbox; the staged tree is recreated at ``sandbox_root`` (``/sandbox/job``)."""

    name: ClassVar[str] = "bwrap"

    def __init__(self, *, network_allow: Sequence[str] = (), network_deny: Sequence[str] = ()) -> None:
        self._popen_kwargs = _popen_user()
        #: Attaches ``network: true`` sandboxes to their own network (the operator's CIDRs checked now).
        self._network = netns.network_step(allow=network_allow, deny=network_deny)

    def root_for(self, staging: Path, sandbox_root: str) -> str:
        return sandbox_root

    def prepare(self, staging: Path) -> None:
        sandbox_etc(staging.parent)

    def setup_steps(self, prepared: Prepared, network: bool = False) -> list[SetupStep]:
        """What must happen between bwrap's setup and the command's start, in order (each gets
        the sandbox's first pid; with any step, bwrap holds the command until all are done)."""
        steps: list[SetupStep] = []
        if prepared.cgroup is not None and prepared.move_child:
            steps.append(prepared.cgroup.attach)
        if network:
            steps.append(self._network)
        return steps

    async def run(self, spec: RunSpec) -> RunResult:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(
                f"the sandbox runner needs bubblewrap (bwrap), which is not on PATH: {INSTALL_HINT}"
            )
        fs.check_root(spec.root, spec.workdir)
        support = cgroup_support()
        small = fs.etc_ready(spec.staging_dir.parent) and fs.is_small(spec.staging_dir)
        prepared = prepare_run(spec, support) if small else await _prepare(spec, support)
        try:
            become = (SANDBOX_UID, SANDBOX_GID) if self._popen_kwargs else None
            prefix = launcher(prepared.cgroup, become)
            prepared.move_child = prefix is None
            launch = Launch(prepared, self.setup_steps(prepared, spec.network), prefix or [])
        except BaseException:
            prepared.discard()
            raise
        popen_kwargs = {} if prefix else self._popen_kwargs  # the launcher drops root itself
        try:
            out = await self._run(launch.argv(bwrap, spec), spec, launch, popen_kwargs)
            started = launch.command_started()
        finally:
            await launch.finish()
        if not started and not out.timed_out and not out.stopped and not launch.oom:
            detail = decode(out.stderr).strip() or f"bwrap exited with status {out.returncode}"
            raise SandboxUnavailable(
                f"bubblewrap could not start the sandbox: {detail}; {USERNS_HINT}; or {INSTALL_HINT}"
            )
        result = from_process(out, spec)
        if launch.oom and prepared.cgroup is not None:
            message = prepared.cgroup.oom_message()
            result.error = f"{message}; {result.error}" if result.error else message
            result.logs = "\n".join(filter(None, [message, result.logs]))
        result.extra["runner"] = self.name
        return result

    async def _run(
        self, argv: list[str], spec: RunSpec, launch: Launch, popen_kwargs: dict[str, Any]
    ) -> ProcessOutput:
        try:
            return await run_owned(
                argv,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                time_limit=spec.timeout_seconds,
                max_output_bytes=spec.max_output_bytes,
                grace=spec.kill_grace_seconds,
                pass_fds=launch.pass_fds(),
                popen_kwargs=popen_kwargs,
                tracker=spec.tracker,
                on_started=launch.on_started,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"bubblewrap could not be started: {exc}; {INSTALL_HINT}") from exc


_PROBE: dict[str, tuple[bool, str]] = {}


def sandbox_available(refresh: bool = False) -> tuple[bool, str]:
    """Whether the sandbox runner works here, and a sentence saying why (for ``mn doctor``)."""
    if "result" in _PROBE and not refresh:
        return _PROBE["result"]
    _PROBE["result"] = _probe()
    return _PROBE["result"]


def _probe() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    argv = [bwrap, *namespace_args(), *system_mounts(), "--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(MB), "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--size", str(MB)]
    argv += ["--tmpfs", "/tmp", "--remount-ro", "/", "--clearenv", "--", "/bin/bash", "-c", "exit 0"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=30, check=False, **_popen_user())
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap could not be started: {exc}; {INSTALL_HINT}"
    if proc.returncode != 0:
        detail = decode(proc.stderr).strip() or f"exit status {proc.returncode}"
        return False, f"bubblewrap cannot create a sandbox here: {detail}; {USERNS_HINT}; or {INSTALL_HINT}"
    version = subprocess.run([bwrap, "--version"], capture_output=True, check=False).stdout
    started_as = f", started as uid {SANDBOX_UID}" if os.geteuid() == 0 else ""
    works = f"{decode(version).strip() or 'bubblewrap'} works (new namespaces, no network{started_as})"
    return True, f"{works}; whole-sandbox limits: {limits_mode()}"
