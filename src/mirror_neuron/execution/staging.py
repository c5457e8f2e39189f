"""Per-run staging directories and uploads from the bundle's ``payloads/``.

Every run gets a fresh directory (nothing leaks between invocations) that is removed
afterwards. Uploads are *copies*, never links, so a script cannot change the bundle.
Sources must stay inside ``payloads/`` (no ``..``, no symlink pointing out) and targets
inside the staging directory: a bundle cannot read or overwrite host files through them.

The temp dir is this user's alone (refused if it is a symlink, someone else's, or
writable by others), each runtime process writes only into its own ``run-<pid>-<start>``
subdirectory (swept by :func:`sweep_stale_runs` once that process is gone), and copies
never follow a symlink, never copy a special file and drop setuid/setgid bits.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import StagingError
from .lifetime import at_exit


class MissingUpload(StagingError):
    """An upload source that does not exist (the original's wording)."""

    def __init__(self, shown: str) -> None:
        super().__init__(f"upload source does not exist: {shown}")
        self.shown = shown


@dataclass(frozen=True, slots=True)
class Upload:
    """Copy ``source`` (relative to ``payloads/``) to ``target`` (relative to the staging root)."""

    source: str
    target: str
    field: str  # config key it came from, for messages


def plan_uploads(config: Mapping[str, Any], sandbox_root: str) -> list[Upload]:
    """Uploads named by ``upload_paths`` (else ``upload_path``/``upload_as``) and the seed's ``uploads``.

    Raises:
        StagingError: for malformed entries or targets outside the staging root.
    """
    plan: list[Upload] = []
    entries = config.get("upload_paths")
    if isinstance(entries, list) and entries:
        for entry in entries:
            if isinstance(entry, str):
                entry = {"source": entry}
            if not isinstance(entry, Mapping) or not isinstance(entry.get("source"), str):
                raise StagingError("upload_paths entries must be objects with a string source")
            plan.append(_upload(entry["source"], entry.get("target"), "upload_paths", sandbox_root))
    elif isinstance(config.get("upload_path"), str) and config["upload_path"]:
        plan.append(_upload(config["upload_path"], config.get("upload_as"), "upload_path", sandbox_root))
    seeded = config.get("uploads")
    if isinstance(seeded, list):
        for entry in seeded:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("source"), str):
                raise StagingError("uploads entries must be objects with a string source")
            plan.append(_upload(entry["source"], entry.get("target"), "uploads", sandbox_root))
    return plan


def _upload(source: str, target: Any, field: str, sandbox_root: str) -> Upload:
    if target is None or target == "":
        target = PurePosixPath(source.rstrip("/")).name
    return Upload(source, relative_target(str(target), sandbox_root), field)


def relative_target(target: str, sandbox_root: str) -> str:
    """A target relative to the staging root; ``/sandbox/job/x`` means ``x``.

    Raises:
        StagingError: for other absolute paths and for ``..`` escapes.
    """
    root = sandbox_root.rstrip("/")
    if target == root:
        raise StagingError(f"upload target {target} would replace the staging directory itself")
    if target.startswith(root + "/"):
        target = target[len(root) + 1 :]
    elif target.startswith("/"):
        raise StagingError(f"upload target {target} is outside the sandbox directory {sandbox_root}")
    parts = PurePosixPath(target).parts
    if not parts or ".." in parts:
        raise StagingError(f"upload target {target} is outside the staging directory")
    return str(PurePosixPath(*parts))


def resolve_source(source: str, payloads: Path | None) -> Path:
    """The upload source as an absolute path that is inside ``payloads/`` and exists.

    Raises:
        StagingError: missing payloads directory, escape, or missing source.
    """
    if payloads is None:
        raise StagingError(f"upload source {source} needs a bundle payloads directory")
    root = payloads.resolve()
    if ".." in PurePosixPath(source).parts:
        raise StagingError(f"upload source {source} climbs out of payloads/ with ..")
    candidate = Path(source) if source.startswith("/") else payloads / source
    if not candidate.exists() and not candidate.is_symlink():
        raise MissingUpload(display(candidate, payloads))
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise StagingError(f"upload source {source} resolves outside payloads/ (to {resolved})")
    if not resolved.exists():
        raise MissingUpload(display(candidate, payloads))
    check_tree(resolved, root)
    return resolved


def check_tree(path: Path, root: Path) -> None:
    """Reject symlinks inside an uploaded directory that point outside ``payloads/``, or (relative
    ones) above the uploaded directory: copied elsewhere, they would point somewhere else."""
    if not path.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entry = Path(dirpath, name)
            if not entry.is_symlink():
                continue
            if not entry.resolve().is_relative_to(root):
                raise StagingError(f"upload {display(entry, root)} is a symlink pointing outside payloads/")
            target = os.readlink(entry)
            inside = os.path.normpath(os.path.join(os.path.relpath(dirpath, path), target))
            if not os.path.isabs(target) and (inside == ".." or inside.startswith("../")):
                shown = display(entry, root)
                raise StagingError(
                    f"upload {shown} is a symlink pointing above its uploaded folder ({target})"
                )


def display(path: Path, payloads: Path) -> str:
    """``payloads/x.py`` for paths inside the bundle, the path itself otherwise."""
    try:
        return str(PurePosixPath("payloads") / path.relative_to(payloads))
    except ValueError:
        try:
            return str(PurePosixPath("payloads") / path.resolve().relative_to(payloads.resolve()))
        except ValueError:
            return str(path)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_DIR = re.compile(r"run-(\d+)-(\d+)")
TEMP_DIR_FIX = "remove it or set MIRROR_NEURON_TEMP_DIR to a directory that only this user can write"
_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


#: Most entries (files, directories, links) a staged tree may hold: each file is one open fd
#: when the sandbox is built from it, and an inode on the host meanwhile.
MAX_TREE_ENTRIES = 10_000


@dataclass(slots=True)
class StagingBudget:
    """What one run's staging may write to the host, checked *before* each copy.

    Why: uploads are copied before the sandbox exists, so its size caps cannot stop a
    bundle that uploads one big file under a thousand names; this does, at the same caps.
    """

    max_bytes: int | None = None
    max_entries: int = MAX_TREE_ENTRIES
    used_bytes: int = 0
    used_entries: int = 0

    @classmethod
    def for_limits(cls, *caps_mb: int | None) -> StagingBudget:
        """The smallest of the given caps in MB (``None`` caps nothing)."""
        given = [cap for cap in caps_mb if cap is not None]
        return cls(max_bytes=min(given) * 1024 * 1024 if given else None)

    def spend(self, size: int, shown: str) -> None:
        """Count one entry of ``size`` bytes, or raise before it is written."""
        self.used_entries += 1
        self.used_bytes += size
        if self.used_entries > self.max_entries:
            raise StagingError(
                f"uploads hold more than {self.max_entries} files, directories and links (at {shown}); "
                "upload an archive instead"
            )
        if self.max_bytes is not None and self.used_bytes > self.max_bytes:
            raise StagingError(
                f"uploads take more than {self.max_bytes // (1024 * 1024)} MB (at {shown}), "
                "more than the sandbox's workdir_mb/memory_mb allow"
            )


class UnsafeTempDir(StagingError):
    """The temp dir could let another user redirect what the runtime writes."""


def default_temp_dir() -> Path:
    """``<tmp>/mirror_neuron-<uid>``: per user, so no other local user can pre-create it."""
    return Path(tempfile.gettempdir()) / f"mirror_neuron-{os.geteuid()}"


def create_staging_dir(temp_dir: Path, tag: str, name: str) -> Path:
    """A fresh ``0700`` directory ``<temp_dir>/run-<pid>-<start>/mirror_neuron_<tag>_<name>_<unique>``.

    Raises:
        UnsafeTempDir: the temp dir (or this process's run dir in it) is not safe to write into.
    """
    prefix = f"mirror_neuron_{tag}_{_UNSAFE.sub('_', name)[:80]}_"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir(temp_dir)))


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (``0700``, missing parents ``0711``) or check that the existing one is safe.

    Raises:
        UnsafeTempDir: ``path`` is a symlink, not a directory, not ours, or group/other-writable.
    """
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700 if directory == path else 0o711)
        except FileExistsError:
            pass  # created meanwhile: checked below like any existing one
    check_private_dir(path)


def check_private_dir(path: Path) -> None:
    """Refuse a directory that another user could swap or write into (see :class:`UnsafeTempDir`)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeTempDir(f"temp dir {path} is a symlink; {TEMP_DIR_FIX}")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeTempDir(f"temp dir {path} is not a directory; {TEMP_DIR_FIX}")
    if st.st_uid != os.geteuid():
        raise UnsafeTempDir(
            f"temp dir {path} is owned by uid {st.st_uid}, not by this runtime's uid {os.geteuid()}; "
            + TEMP_DIR_FIX
        )
    if st.st_mode & 0o022:
        raise UnsafeTempDir(
            f"temp dir {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            + TEMP_DIR_FIX
        )


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), or None when it does not exist."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_RUN_DIRS: dict[tuple[Path, int], Path] = {}


def run_dir(temp_dir: Path) -> Path:
    """This process's own subdirectory of ``temp_dir`` (checked on every use, removed at exit)."""
    ensure_private_dir(temp_dir)
    pid = os.getpid()
    path = temp_dir / f"run-{pid}-{process_start(pid)}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    check_private_dir(path)  # a planted symlink or someone else's directory is refused
    if (temp_dir, pid) not in _RUN_DIRS:
        _RUN_DIRS[(temp_dir, pid)] = path
        at_exit(remove_staging, path)
    return path


def sweep_stale_runs(temp_dir: Path) -> list[Path]:
    """Remove the run dirs of runtime processes that are gone (kill -9 leaves them); returns them.

    A run dir is named after its process's pid *and start time*, so one whose pid was reused
    by another process is stale too. A missing temp dir has nothing to sweep.

    Raises:
        UnsafeTempDir: the temp dir fails the safety checks (nothing in it is touched).
    """
    if not os.path.lexists(temp_dir):
        return []
    check_private_dir(temp_dir)
    removed = []
    with os.scandir(temp_dir) as entries:
        for entry in entries:
            match = _RUN_DIR.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if process_start(int(match[1])) != match[2]:
                remove_staging(Path(entry.path))
                removed.append(Path(entry.path))
    return removed


def stage_uploads(
    plan: list[Upload], payloads: Path | None, staging: Path, budget: StagingBudget | None = None
) -> None:
    """Copy every upload into ``staging`` (directories recursively, symlinks inside kept as links).

    Nothing is written through a symlink: each target's directories are opened without
    following links, and an existing entry at the target is replaced, not written into.

    Raises:
        StagingError: for sources that do not exist, escape ``payloads/`` or are special files,
            for targets whose path passes through something that is not a directory, and
            when the uploads would take more than ``budget``.
    """
    budget = budget or StagingBudget()
    for upload in plan:
        source = resolve_source(upload.source, payloads)
        parts = PurePosixPath(upload.target).parts
        parent = _open_target_dir(staging, parts[:-1], upload.target)
        try:
            _copy_entry(source, parent, parts[-1], upload.target, budget)
        finally:
            os.close(parent)


def _open_target_dir(staging: Path, parts: tuple[str, ...], shown: str) -> int:
    """An fd of ``staging/<parts>``, creating missing directories, never following a symlink."""
    fd = os.open(staging, _DIR_OPEN)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_OPEN, dir_fd=fd)
            except OSError:
                raise StagingError(
                    f"upload target {shown} passes through {part}, which is not a directory (a symlink?)"
                ) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_entry(source: Path, dir_fd: int, name: str, shown: str, budget: StagingBudget) -> None:
    st = os.lstat(source)
    budget.spend(st.st_size if stat.S_ISREG(st.st_mode) else 0, shown)
    if stat.S_ISDIR(st.st_mode):
        if not _is_dir_at(dir_fd, name):
            _unlink_at(dir_fd, name)
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        child = os.open(name, _DIR_OPEN, dir_fd=dir_fd)
        try:
            with os.scandir(source) as entries:
                for entry in entries:
                    _copy_entry(Path(entry.path), child, entry.name, f"{shown}/{entry.name}", budget)
        finally:
            os.close(child)
    elif stat.S_ISLNK(st.st_mode):  # inside an uploaded directory; checked to stay in payloads/
        _unlink_at(dir_fd, name)
        os.symlink(os.readlink(source), name, dir_fd=dir_fd)
    elif stat.S_ISREG(st.st_mode):
        _unlink_at(dir_fd, name)
        _copy_file(source, dir_fd, name, shown)
    else:
        raise StagingError(
            f"upload {shown} is a special file (fifo, socket or device); "
            "only files, directories and symlinks can be uploaded"
        )


def open_regular(path: Path, shown: str) -> tuple[int, os.stat_result]:
    """A read-only fd of the regular file ``path`` itself: a symlink there is refused, never followed.

    Raises:
        OSError: it cannot be opened (the caller says what that means for it).
        StagingError: it is not a regular file (a fifo would block, a device read forever).
    """
    fd = os.open(path, _NOFOLLOW_READ)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise StagingError(f"{shown} is not a regular file")
    return fd, st


def _copy_file(source: Path, dir_fd: int, name: str, shown: str) -> None:
    """Copy content, permission bits (setuid/setgid/sticky dropped) and times; no link followed."""
    src, st = open_regular(source, f"upload {shown}")
    try:
        os.set_blocking(src, True)
        mode = stat.S_IMODE(st.st_mode) & 0o777
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(name, flags, 0o600, dir_fd=dir_fd)
        try:
            with open(src, "rb", closefd=False) as reader, open(dst, "wb", closefd=False) as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)
            os.fchmod(dst, mode)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _is_dir_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _unlink_at(dir_fd: int, name: str) -> None:
    """Remove a file or symlink at ``name`` (a directory there is an error: not ours to replace)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise StagingError(f"upload target {name} is already a directory") from None


def remove_staging(path: Path) -> None:
    """Delete a staging directory, even one whose script removed its own permissions."""
    if not os.path.lexists(path):
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda func, failed, _exc: _chmod_and_retry(func, failed))
    else:
        shutil.rmtree(path, onerror=lambda func, failed, _exc: _chmod_and_retry(func, failed))


def _chmod_and_retry(func: Any, failed: str) -> None:
    """rmtree's error handler: give back the bits a script took away, never through a symlink."""
    try:
        _chmod_no_follow(os.path.dirname(failed))
        _chmod_no_follow(failed)
        func(failed)
    except OSError:
        pass


def _chmod_no_follow(path: str) -> None:
    """``chmod u+rwx`` on ``path`` itself: an ``O_PATH`` handle, and nothing if it is a symlink."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            os.chmod(f"/proc/self/fd/{fd}", stat.S_IRWXU)
    finally:
        os.close(fd)
