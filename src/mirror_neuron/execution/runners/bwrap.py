"""The default ``sandbox`` runner: bubblewrap, a fresh set of namespaces per run.

What the command sees: ``/usr`` (and the ``/bin``, ``/lib*`` links) read-only; a private
read-only ``/etc`` (copies of what the loader, bash and python need); its staging
directory read-write at ``/sandbox/job``; a private ``/tmp``, ``/proc`` and minimal ``/dev``;
no network unless the node sets ``network: true``; no capabilities, no nested user
namespaces; uid/gid 65534; only the contract environment. The root is read-only.
Options (including environment values) reach bwrap through ``--args <memfd>``, never
through the world-readable command line.

Privileges: when the runtime runs as root, bwrap itself is started as uid/gid 65534
(``Popen(user=, group=)``). Started as root, the sandbox user would map to host uid 0,
which the kernel exempts from ``RLIMIT_NPROC``: a fork bomb would not be stopped.

Limits: ``ulimit -S -H`` in the wrapper shell, before the command (no ``preexec_fn``,
which is unsafe with threads; no extra ``prlimit`` exec). Without capabilities the
command cannot raise them again.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from ..errors import SandboxUnavailable, StagingError
from ..staging import chown_tree
from .base import RunResult, RunSpec, decode, from_process, shell_script
from .process import ProcessOutput, run_owned

#: Longest wait for a sandbox's processes to be gone after bwrap itself exited.
GONE_TIMEOUT = 5.0

SANDBOX_UID = 65534
SANDBOX_GID = 65534
HOSTNAME = "mirror-neuron"
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
#: /etc is *not* bound from the host: each runtime process builds a small private copy
#: (what the loader, bash and python need, plus a passwd naming the sandbox user) and
#: binds it read-only in one mount. Host configuration and /etc/shadow stay invisible.
ETC_COPIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
NETWORK_ETC_FILES = ("resolv.conf", "hosts", "host.conf", "gai.conf", "services", "protocols", "ssl")
NETWORK_ETC_FILES += ("ca-certificates", "ca-certificates.conf", "pki")
TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_WRITTEN = {
    "passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/usr/sbin/nologin\n",
    "group": f"sandbox:x:{SANDBOX_GID}:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "hostname": f"{HOSTNAME}\n",
}
_ETC_DIRS: dict[Path, Path] = {}


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


def sandbox_etc(parent: Path) -> Path:
    """This process's sandbox /etc under ``parent`` (built once, removed at exit)."""
    etc = _ETC_DIRS.get(parent)
    if etc is not None and etc.is_dir():
        return etc
    etc = Path(tempfile.mkdtemp(prefix=f".sandbox-etc-{os.getpid()}-", dir=parent))
    etc.chmod(0o755)
    host = Path("/etc")
    for name in (*ETC_COPIES, *(p.name for p in host.glob("python3*"))):
        source = host / name
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, etc / name, symlinks=True)
        elif source.exists() or source.is_symlink():
            shutil.copy2(source, etc / name, follow_symlinks=False)
    for name, text in ETC_WRITTEN.items():
        (etc / name).write_text(text)
    for name in NETWORK_ETC_FILES:  # mount points for network: true
        source = host / name
        if source.is_dir():
            (etc / name).mkdir(exist_ok=True)
        elif source.exists():
            (etc / name).touch()
    for path in (etc, *etc.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    atexit.register(shutil.rmtree, etc, True)
    _ETC_DIRS[parent] = etc
    return etc


def network_mounts() -> list[str]:
    args: list[str] = []
    for name in NETWORK_ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def namespace_args(network: bool) -> list[str]:
    args = ["--unshare-all", "--unshare-user", "--disable-userns"]
    if network:
        args.append("--share-net")
    return [
        *args,
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
        "--hostname", HOSTNAME,
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",
    ]  # fmt: skip


def sandbox_options(spec: RunSpec, etc: Path) -> list[str]:
    """bwrap's options for one run: namespaces, mounts, cwd and the whole environment."""
    opts = [*namespace_args(spec.network), *system_mounts(), "--ro-bind", str(etc), "/etc"]
    if spec.network:
        opts += network_mounts()
    opts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    opts += ["--bind", str(spec.staging_dir), spec.root, "--remount-ro", "/", "--chdir", spec.workdir]
    opts.append("--clearenv")
    for key, value in {**SANDBOX_BASE_ENV, **spec.env}.items():
        opts += ["--setenv", key, value]
    return opts


def sandbox_command(spec: RunSpec, started_fd: int) -> list[str]:
    # The first thing the shell does is say "started": a failure before that is bwrap's own.
    script = f"printf . >&{started_fd}; exec {started_fd}>&-\n{shell_script(spec)}"
    return ["/bin/bash", "-lc" if spec.login_shell else "-c", script]


def build_argv(bwrap: str, spec: RunSpec, *, etc: Path, started_fd: int) -> list[str]:
    """The complete bwrap command line for one run, as one list (for inspection and tests).

    At run time the options travel through ``--args <memfd>`` instead, so environment
    values (tokens) never appear in the world-readable ``/proc/<pid>/cmdline``.
    """
    return [bwrap, *sandbox_options(spec, etc), "--", *sandbox_command(spec, started_fd)]


def _args_fd(options: list[str]) -> int:
    fd = os.memfd_create("mirror-neuron-bwrap-args")
    os.write(fd, b"".join(opt.encode() + b"\0" for opt in options))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _popen_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}


def _read_available(fd: int, size: int = 64) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return b""


async def _sandbox_gone(info: bytes, timeout: float = GONE_TIMEOUT) -> None:
    """Wait until the sandbox's first process (its PID namespace's init) has exited.

    bwrap's own exit does not mean the sandbox is empty: its child dies of
    ``--die-with-parent`` a moment later, and the kernel kills and reaps every process of the
    namespace before that init is gone. Waiting for it makes "stopped" mean "no process left".
    """
    try:
        pid = int(json.loads(info)["child-pid"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return  # never started, or already gone
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, lambda: gone.done() or gone.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await gone
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


@functools.cache
def _check_reachable(parent: Path) -> None:
    """bwrap runs as the sandbox user, which must be able to walk down to the staging dir."""
    for directory in (parent, *parent.parents):
        st = directory.stat()
        if st.st_mode & 0o001 or (st.st_uid == SANDBOX_UID and st.st_mode & 0o100):
            continue
        raise SandboxUnavailable(
            f"the sandbox user (uid {SANDBOX_UID}) cannot reach the staging directory under {parent}: "
            f"{directory} is not searchable by others; set MIRROR_NEURON_TEMP_DIR to a directory "
            "such as /tmp/mirror_neuron or run chmod o+x on it"
        )


class BwrapRunner:
    """Bubblewrap sandbox; the staging directory appears at ``sandbox_root`` (``/sandbox/job``)."""

    name: ClassVar[str] = "bwrap"

    def __init__(self) -> None:
        self._popen_kwargs = _popen_user()

    def root_for(self, staging: Path, sandbox_root: str) -> str:
        return sandbox_root

    def prepare(self, staging: Path) -> None:
        if self._popen_kwargs:
            _check_reachable(staging.parent)
            chown_tree(staging, SANDBOX_UID, SANDBOX_GID)
        sandbox_etc(staging.parent)

    async def run(self, spec: RunSpec) -> RunResult:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(
                f"the sandbox runner needs bubblewrap (bwrap), which is not on PATH: {INSTALL_HINT}"
            )
        if spec.workdir != spec.root and not spec.workdir.startswith(spec.root.rstrip("/") + "/"):
            raise StagingError(
                f"workdir {spec.workdir} is outside {spec.root}, the only directory the sandbox sees"
            )
        started_r, started_w = os.pipe()
        info_r, info_w = os.pipe()
        args_fd = _args_fd(sandbox_options(spec, sandbox_etc(spec.staging_dir.parent)))
        try:
            argv = [
                bwrap,
                "--args",
                str(args_fd),
                "--info-fd",
                str(info_w),
                "--",
                *sandbox_command(spec, started_w),
            ]
            out = await self._run(argv, spec, (started_w, args_fd, info_w))
            started = bool(_read_available(started_r))
            await _sandbox_gone(_read_available(info_r, 4096))
        finally:
            for fd in (started_r, started_w, info_r, info_w, args_fd):
                os.close(fd)
        if not started and not out.timed_out and not out.stopped:
            detail = decode(out.stderr).strip() or f"bwrap exited with status {out.returncode}"
            raise SandboxUnavailable(
                f"bubblewrap could not start the sandbox: {detail}; {USERNS_HINT}; or {INSTALL_HINT}"
            )
        result = from_process(out, spec)
        result.extra["runner"] = self.name
        return result

    async def _run(self, argv: list[str], spec: RunSpec, fds: tuple[int, ...]) -> ProcessOutput:
        try:
            return await run_owned(
                argv,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                time_limit=spec.timeout_seconds,
                max_output_bytes=spec.max_output_bytes,
                grace=spec.kill_grace_seconds,
                pass_fds=fds,
                popen_kwargs=self._popen_kwargs,
                tracker=spec.tracker,
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
    argv = [bwrap, *namespace_args(False), *system_mounts(), "--proc", "/proc", "--dev", "/dev"]
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
    return True, f"{decode(version).strip() or 'bubblewrap'} works (new namespaces, no network{started_as})"
