"""Unpacking an uploaded bundle zip without trusting it.

An archive is attacker-controlled: entry names may climb out of the target (``..``,
absolute paths, backslashes), entries may be symlinks or devices, and the sizes in its
directory may lie. So names are checked before anything is written, each file is
created exclusively inside a fresh server-owned directory, and sizes are counted on
the bytes actually inflated, aborting as soon as a limit is passed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import JobNotFound, ManifestError, MirrorNeuronError
from ..execution import process_start
from ..runtime import Runtime
from ..store.base import TERMINAL_STATUSES
from .errors import BadUpload, UploadTooLarge
from .limits import check_manifest_file
from .settings import ManifestLimits, UploadLimits

#: How often (seconds) the folder of a job that left this node is checked for the job's end.
ORPHAN_CHECK = 5.0


CHUNK = 1024 * 1024
MANIFEST = "manifest.json"
IGNORED_TOP = {"__MACOSX"}
WORKDIR_PREFIX = "bundle-"
#: What error messages say instead of an upload's private folder.
UPLOAD_PLACEHOLDER = "<upload>"
#: ``bundle-<pid>-<process start>-…``: which process unpacked an upload folder.
_MADE_BY = re.compile(r"bundle-(\d+)-(\d+)-")


def _safe_parts(name: str, limits: UploadLimits) -> tuple[str, ...]:
    """The path components of an entry, or :class:`BadUpload` if it could escape."""
    if len(name) > limits.max_name_length or "\x00" in name:
        raise BadUpload(f"unsafe path in archive: {name[:80]!r}")
    path = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or not parts or ".." in parts or ":" in parts[0]:
        raise BadUpload(f"unsafe path in archive: {name!r}")
    return parts


def _check_type(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise BadUpload(f"archive entry {info.filename!r} is a symbolic link, which bundles may not contain")
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise BadUpload(f"archive entry {info.filename!r} is not a regular file or folder")


def _copy(src: IO[bytes], dest: Path, name: str, budget: int, limits: UploadLimits, mode: int) -> int:
    """Inflate one entry; returns its size. Stops at the first byte over a limit."""
    written = 0
    with dest.open("xb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limits.max_file_bytes:
                raise UploadTooLarge(f"archive entry {name!r} is larger than {limits.max_file_bytes} bytes")
            if written > budget:
                raise UploadTooLarge(f"archive unpacks to more than {limits.max_total_bytes} bytes")
            out.write(chunk)
    dest.chmod(0o755 if mode & 0o111 else 0o644)  # keep scripts runnable, drop setuid and friends
    return written


def _extract(archive: zipfile.ZipFile, root: Path, limits: UploadLimits) -> None:
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UploadTooLarge(
            f"archive has {len(entries)} entries, more than the limit of {limits.max_entries}"
        )
    plan = []
    for info in entries:
        _check_type(info)
        plan.append((info, _safe_parts(info.filename, limits)))
    budget = limits.max_total_bytes
    for info, parts in plan:
        dest = root.joinpath(*parts)
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.resolve().is_relative_to(root):  # defence in depth: no component may be a link
            raise BadUpload(f"unsafe path in archive: {info.filename!r}")
        try:
            with archive.open(info) as src:
                budget -= _copy(src, dest, info.filename, budget, limits, info.external_attr >> 16)
        except FileExistsError:
            raise BadUpload(f"archive has a duplicate or conflicting entry {info.filename!r}") from None
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
            raise BadUpload(f"failed to unzip {info.filename!r}: {exc}") from None


def bundle_root(root: Path) -> Path:
    """The folder holding ``manifest.json``: the archive's top level or its single folder."""
    if (root / MANIFEST).is_file():
        return root
    tops = [p for p in root.iterdir() if p.name not in IGNORED_TOP and not p.name.startswith(".")]
    if len(tops) == 1 and tops[0].is_dir() and (tops[0] / MANIFEST).is_file():
        return tops[0]
    raise ManifestError(f"archive has no {MANIFEST} at its top level or in a single top-level folder")


def unpack_bundle(data: IO[bytes], parent: Path, limits: UploadLimits) -> tuple[Path, Path]:
    """Unpack ``data`` into a new directory under ``parent``: ``(that directory, bundle root)``.

    The directory is removed again if anything is rejected.
    """
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Named after this process: nodes sharing the folder leave each other's uploads in progress alone.
    pid = os.getpid()
    prefix = f"{WORKDIR_PREFIX}{pid}-{process_start(pid)}-"
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()
    try:
        try:
            with zipfile.ZipFile(data) as archive:
                _extract(archive, workdir, limits)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise BadUpload(f"failed to unzip the upload: {exc}") from None
        return workdir, bundle_root(workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _hide_folder(exc: MirrorNeuronError, workdir: Path) -> None:
    """Replace the upload's private folder in an error's text (clients must not learn host paths)."""
    folder = str(workdir)
    exc.message = exc.message.replace(folder, UPLOAD_PLACEHOLDER)
    exc.args = (exc.message,)
    if isinstance(exc, ManifestError):
        exc.errors = [line.replace(folder, UPLOAD_PLACEHOLDER) for line in exc.errors]


def bundle_folders(root: Path) -> list[Path]:
    """The unpacked bundle folders directly under ``root`` (links are never followed)."""
    if not root.is_dir():
        return []
    return [
        path.resolve()
        for path in sorted(root.iterdir())
        if path.name.startswith(WORKDIR_PREFIX) and path.is_dir() and not path.is_symlink()
    ]


def _unpacking(folder: Path) -> bool:
    """Whether the process that unpacked ``folder`` (named in it) still runs: its upload may
    not be a job yet."""
    match = _MADE_BY.match(folder.name)
    return match is not None and process_start(int(match[1])) == match[2]


def _owner(folder: Path, paths: dict[Path, str]) -> str | None:
    """The id of the job whose bundle lies in ``folder``, if any."""
    return next((job_id for path, job_id in paths.items() if path.is_relative_to(folder)), None)


class Uploads:
    """The folders of uploaded bundles: each lives as long as its job.

    By default they go in a fresh private directory (mode 0700, unpredictable name)
    rather than a shared, guessable path another local user could prepare in advance.
    """

    def __init__(
        self, root: Path | None, limits: UploadLimits, manifests: ManifestLimits | None = None
    ) -> None:
        self.owned = root is None
        self.root = Path(tempfile.mkdtemp(prefix="mn-uploads-")) if root is None else root
        self.limits = limits
        self.manifests = manifests or ManifestLimits()
        self.live: set[Path] = set()

    async def run(self, runtime: Runtime, data: IO[bytes], *, placed: str | None = None) -> str:
        """Unpack, check the manifest's size and counts, validate and submit (all off the
        event loop); the folder is removed once the job has ended."""
        workdir, root = await asyncio.to_thread(unpack_bundle, data, self.root, self.limits)
        self.live.add(workdir)
        try:
            await asyncio.to_thread(check_manifest_file, root / MANIFEST, self.manifests)
            job_id = await runtime.submit(str(root), placed=placed)
        except BaseException as exc:
            await self._remove(workdir)
            if isinstance(exc, MirrorNeuronError):
                _hide_folder(exc, workdir)
            raise
        runtime.spawn(self._remove_after(runtime, job_id, workdir))
        return job_id

    async def sweep(self, runtime: Runtime) -> list[Path]:
        """Remove the bundle folders no live job needs; remove the others when their job ends.

        A server killed with ``kill -9`` never ran its removals, and the next one did not
        know the folders: those of jobs that ended, or of uploads that never became jobs,
        stayed forever. Call after ``recover_orphans`` (recovered jobs run from their
        folder). Returns the folders removed. A fresh temporary root has nothing to sweep.
        """
        if self.owned:
            return []
        paths: dict[Path, str] = {}
        for record in await runtime.list_jobs(include_terminal=False):
            job_path = (record.get("manifest_ref") or {}).get("job_path")
            if job_path:
                paths[Path(job_path)] = str(record["job_id"])
        removed: list[Path] = []
        for folder in await asyncio.to_thread(bundle_folders, self.root):
            job_id = _owner(folder, paths)
            if job_id is None:
                if _unpacking(folder):
                    continue  # a live process (a node sharing this folder) is still checking it
                await self._remove(folder)
                removed.append(folder)
            elif folder not in self.live:
                self.live.add(folder)
                runtime.spawn(self._remove_after(runtime, job_id, folder))
        return removed

    async def _remove_after(self, runtime: Runtime, job_id: str, workdir: Path) -> None:
        """Remove the folder once the job has ended, wherever it ran: a job handed to another
        node of the cluster (or suspended) still needs its files there."""
        try:
            while True:
                try:
                    await runtime.wait(job_id)
                    break
                except JobNotFound:
                    break  # deleted meanwhile
                except MirrorNeuronError:  # it left this node without ending
                    record = await runtime.inspect_job(job_id)
                    if record.get("status") in TERMINAL_STATUSES:
                        break
                    await asyncio.sleep(ORPHAN_CHECK)  # until a node ends it, or this server stops
        except asyncio.CancelledError:
            # The server stopped with the job suspended: keep its files for recovery.
            self.live.discard(workdir)
            raise
        except MirrorNeuronError:
            pass  # e.g. deleted while we looked
        await self._remove(workdir)

    async def _remove(self, workdir: Path) -> None:
        self.live.discard(workdir)
        await asyncio.to_thread(shutil.rmtree, workdir, True)

    def close(self) -> None:
        if not self.owned:
            return  # a persistent folder: suspended jobs still need their files
        for workdir in list(self.live):
            shutil.rmtree(workdir, ignore_errors=True)
        self.live.clear()
        if not bundle_folders(self.root):  # else kept for suspended jobs another node takes up
            shutil.rmtree(self.root, ignore_errors=True)
