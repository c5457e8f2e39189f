"""The sandbox's own files: its /etc and its workdir, recreated inside it by bwrap itself.

Why not bind mounts: a bind mount of a host directory shows its host path in
``/proc/self/mountinfo``, has no size cap, and needs the tree handed to the sandbox user
(``chown`` races). Instead each run gets bwrap operations (``--dir``, ``--symlink``, and
``--file FD`` from descriptors opened here with ``O_NOFOLLOW``) that recreate the tree on
a size-capped tmpfs, where every entry belongs to the sandbox user.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import resource
import shutil
import stat
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StagingError
from ..lifetime import at_exit
from ..staging import MAX_TREE_ENTRIES, open_regular

SANDBOX_UID = 65534
SANDBOX_GID = 65534
HOSTNAME = "mirror-neuron"
PAGE = 4096
#: tmpfs keeps shorter symlink targets in the inode; longer ones take a page.
SHORT_SYMLINK = 128
#: Trees up to this many entries are opened on the event loop (a thread hop costs more).
SMALL_TREE = 64
#: Descriptors kept free for everything else while many staged files are open at once.
FD_HEADROOM = 256
#: What the loader, bash and python need from the host's /etc: small files copied once per
#: process (recreated in each sandbox), directories bound read-only from the host's /etc.
ETC_COPIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime")
ETC_BINDS = ("alternatives", "python3*")
ETC_WRITTEN = {
    "passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:/tmp:/usr/sbin/nologin\n",
    "group": f"sandbox:x:{SANDBOX_GID}:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "hostname": f"{HOSTNAME}\n",
}
TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: Where the workdir cannot go: it would hide (or sit inside) what the sandbox is built from.
RESERVED = ("/usr", "/etc", "/proc", "/dev", "/tmp", *(f"/{name}" for name in TOP_LEVEL))
_ETC_DIRS: dict[Path, Path] = {}
_ETC_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a staged tree: ``dir``, ``file`` or ``symlink`` (with its target)."""

    path: str
    kind: str
    target: str = ""


def list_tree(root: Path, limit: int | None = None) -> list[TreeEntry]:
    """Every entry under ``root``, parents before children, without following any symlink.

    Raises:
        StagingError: more than ``limit`` (:data:`MAX_TREE_ENTRIES`) entries, or a special file.
    """
    limit = MAX_TREE_ENTRIES if limit is None else limit
    entries: list[TreeEntry] = []
    pending = [("", root)]
    while pending:
        relative, directory = pending.pop()
        with os.scandir(directory) as scan:
            for entry in scan:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    entries.append(TreeEntry(path, "symlink", os.readlink(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    entries.append(TreeEntry(path, "dir"))
                    pending.append((path, Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    entries.append(TreeEntry(path, "file"))
                else:
                    raise StagingError(f"staged {path} is a special file; only files, directories and links")
                if len(entries) > limit:
                    raise StagingError(
                        f"the staged files hold more than {limit} files, directories and links; the "
                        "sandbox accepts at most that many (upload an archive instead)"
                    )
    return entries


def is_small(root: Path, limit: int = SMALL_TREE) -> bool:
    """Whether ``root`` holds at most ``limit`` entries (stops counting early): cheap to open inline."""
    count, pending = 0, [root]
    while pending:
        with os.scandir(pending.pop()) as scan:
            for entry in scan:
                count += 1
                if count > limit:
                    return False
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
    return True


def etc_ready(parent: Path) -> bool:
    """Whether :func:`sandbox_etc` has its copy under ``parent`` already (no copying to do)."""
    return parent in _ETC_DIRS


def sandbox_etc(parent: Path) -> Path:
    """This process's copy of the sandbox's /etc under ``parent`` (built once, removed at exit)."""
    with _ETC_LOCK:
        etc = _ETC_DIRS.get(parent)
        if etc is not None and etc.is_dir():
            return etc
        etc = Path(tempfile.mkdtemp(prefix=".sandbox-etc-", dir=parent))
        at_exit(shutil.rmtree, etc, True)
        host = Path("/etc")
        for name in ETC_COPIES:
            source = host / name
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, etc / name, symlinks=True)
            elif source.exists() or source.is_symlink():
                shutil.copy2(source, etc / name, follow_symlinks=False)
        for name, text in ETC_WRITTEN.items():
            (etc / name).write_text(text)
        for path in etc.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        _ETC_DIRS[parent] = etc
        return etc


@functools.cache
def etc_binds() -> tuple[str, ...]:
    """Read-only binds of host /etc directories: one mount instead of an op per link in
    ``alternatives``, and ``python3*`` keeps its mtimes (a recreated sitecustomize.py would be
    newer than its pyc in /usr, so python would compile it at every start)."""
    args: list[str] = []
    for pattern in ETC_BINDS:
        for path in sorted(Path("/etc").glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


@functools.lru_cache(maxsize=8)
def etc_entries(etc: Path) -> list[TreeEntry]:
    """The entries of an /etc copy (it never changes once built)."""
    return list_tree(etc)


@dataclass(slots=True)
class TreeCopy:
    """bwrap operations recreating a host tree in the sandbox, the fds they read, its tmpfs size."""

    args: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    size: int = 0

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def copy_tree(source: Path, entries: Sequence[TreeEntry], dest: str, out: TreeCopy) -> None:
    """Append ops recreating ``entries`` of ``source`` under ``dest`` (file modes 0777-masked: no s-bits).

    Raises:
        StagingError: a file cannot be opened (or is no longer a regular file).
    """
    base = dest.rstrip("/")
    for entry in entries:
        target = f"{base}/{entry.path}"
        if entry.kind == "dir":
            out.args += ["--perms", "0755", "--dir", target]
        elif entry.kind == "symlink":
            out.args += ["--symlink", entry.target, target]
            out.size += PAGE if len(entry.target) >= SHORT_SYMLINK else 0
        else:
            fd, st = open_staged(source / entry.path)
            out.fds.append(fd)
            out.size += -(-st.st_size // PAGE) * PAGE
            out.args += ["--perms", f"{stat.S_IMODE(st.st_mode) & 0o777:04o}", "--file", str(fd), target]


def open_staged(path: Path) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file ``path`` itself (a symlink there is refused, not followed)."""
    try:
        return open_regular(path, f"staged file {path.name}")
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            raise StagingError(
                f"cannot open staged {path.name} for the sandbox: too many open files "
                f"(RLIMIT_NOFILE {soft}); stage fewer files, run fewer sandboxes at once or raise the "
                "runtime's open-file limit"
            ) from None
        raise StagingError(f"cannot open the staged file {path.name}: {exc.strerror}") from None


def fd_room(needed: int) -> None:
    """Staged files stay open until bwrap starts: lift the soft RLIMIT_NOFILE to the hard one if short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed + FD_HEADROOM <= soft or soft == hard:
        return
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def check_root(root_path: str, workdir: str) -> None:
    """The workdir tmpfs must not hide (or sit inside) what the sandbox is built from.

    Raises:
        StagingError: ``root_path`` clashes with a system directory, or ``workdir`` is outside it.
    """
    root = root_path.rstrip("/")
    clash = [r for r in RESERVED if root == r or root.startswith(r + "/") or r.startswith(root + "/")]
    if not root_path.startswith("/") or not root or clash:
        raise StagingError(
            f"the sandbox directory {root_path} would hide or sit inside {clash[0] if clash else '/'}; "
            "choose another sandbox_upload_path, such as /sandbox/job"
        )
    if workdir != root_path and not workdir.startswith(root + "/"):
        raise StagingError(f"workdir {workdir} is outside {root_path}, the only directory the sandbox sees")


__all__ = [
    "TreeCopy",
    "TreeEntry",
    "check_root",
    "copy_tree",
    "etc_entries",
    "fd_room",
    "list_tree",
    "sandbox_etc",
]
