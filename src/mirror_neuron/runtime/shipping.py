"""A job's bundle files travel with it, so a node on another machine can recover it.

A job accepted by a node of a cluster (``Config.ship_bundles``) stores the files of its
bundle folder with it (the blob :data:`BLOB`: path → ``[mode, base64]``; folders end in
``/``), up to :data:`MAX_BYTES`. A node recovering the job whose folder does not exist on
its machine writes them to a private folder in its own run directory (swept when its
process is gone) and runs the job from there; the folder goes when the job leaves it.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger("mirror_neuron.cluster")

#: The blob holding a job's bundle files.
BLOB = "bundle_files"
#: Bundles with more bytes than this are not shipped (recovery elsewhere then needs the folder).
MAX_BYTES = 32 * 1024 * 1024
#: Folders never shipped (caches and version control).
SKIPPED = frozenset({"__pycache__", ".git"})
PREFIX = "shipped-"


def pack(root: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any] | None:
    """The files under ``root`` (links inside it as their content; links out of it left out),
    or ``None`` when they hold more than ``max_bytes``."""
    files: dict[str, Any] = {}
    total = 0
    real_root = root.resolve()
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not (Path(folder) / d).is_symlink())
        here = Path(folder)
        for name in dirs:
            files[(here / name).relative_to(root).as_posix() + "/"] = None
        for name in sorted(names):
            path = here / name
            if not path.resolve().is_relative_to(real_root) or not path.is_file():
                continue
            data = path.read_bytes()
            total += len(data)
            if total > max_bytes:
                log.warning("bundle %s is over %d bytes: not stored with its job", root, max_bytes)
                return None
            files[path.relative_to(root).as_posix()] = [
                path.stat().st_mode & 0o777,
                base64.b64encode(data).decode(),
            ]
    return files


def unpack(files: dict[str, Any], parent: Path, job_id: str) -> Path:
    """Write shipped files into a new private folder under ``parent``; returns it.

    Raises:
        ValueError: a path is absolute or climbs out (the store was tampered with).
    """
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{job_id[:60]}-", dir=parent))
    try:
        for name, entry in sorted(files.items()):
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts:
                raise ValueError(f"a shipped bundle path is not relative: {name!r}")
            target = root.joinpath(*parts)
            if entry is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            mode, data = entry
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data))
            target.chmod(0o755 if int(mode) & 0o111 else 0o644)  # runnable or not; nothing else
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def is_shipped(path: Path | None, parent: Path) -> bool:
    """Whether ``path`` is a folder :func:`unpack` made under ``parent``."""
    return path is not None and path.parent == parent and path.name.startswith(PREFIX)
