"""Per-run staging directories and uploads from the bundle's ``payloads/``.

Every run gets a fresh directory (nothing leaks between invocations) that is removed
afterwards. Uploads are *copies*, never links, so a script cannot change the bundle.
Sources must stay inside ``payloads/`` (no ``..``, no symlink pointing out) and targets
inside the staging directory: a bundle cannot read or overwrite host files through them.
"""

from __future__ import annotations

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
    """Reject symlinks inside an uploaded directory that point outside ``payloads/``."""
    if not path.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entry = Path(dirpath, name)
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise StagingError(f"upload {display(entry, root)} is a symlink pointing outside payloads/")


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


def create_staging_dir(temp_dir: Path, tag: str, name: str) -> Path:
    """A fresh private directory ``<temp_dir>/mirror_neuron_<tag>_<name>_<unique>``."""
    ensure_dir(temp_dir)
    prefix = f"mirror_neuron_{tag}_{_UNSAFE.sub('_', name)[:80]}_"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=temp_dir))


def ensure_dir(path: Path) -> None:
    """Create ``path`` and its missing parents as ``0755`` whatever the umask (they are shared)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
            directory.chmod(0o755)
        except FileExistsError:
            pass


def stage_uploads(plan: list[Upload], payloads: Path | None, staging: Path) -> None:
    """Copy every upload into ``staging`` (directories recursively, symlinks inside kept as links).

    Raises:
        StagingError: for sources that do not exist or escape ``payloads/``.
    """
    for upload in plan:
        source = resolve_source(upload.source, payloads)
        target = staging.joinpath(*PurePosixPath(upload.target).parts)
        if not target.resolve().is_relative_to(staging.resolve()):
            raise StagingError(f"upload target {upload.target} is outside the staging directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give the whole staging tree to the sandbox user (it runs unprivileged)."""
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def remove_staging(path: Path) -> None:
    """Delete a staging directory, even one whose script removed its own permissions."""

    def fix_and_retry(func: Any, failed: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            os.chmod(failed, stat.S_IRWXU)
            func(failed)
        except OSError:
            pass

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix_and_retry)
    else:
        shutil.rmtree(path, onerror=fix_and_retry)
