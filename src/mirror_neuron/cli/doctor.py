"""``mn doctor``: check what MirrorNeuron needs on this machine, and say how to fix it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..config import Config


def check(name: str, ok: bool, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": None if ok else fix}


def python_version() -> dict[str, Any]:
    version = ".".join(map(str, sys.version_info[:3]))
    return check("python", sys.version_info >= (3, 11), f"Python {version}", "install Python 3.11 or newer")


def store(config: Config) -> dict[str, Any]:
    from ..errors import StoreError
    from ..store import open_store

    try:
        opened = open_store(config.store_url)
        try:
            jobs = opened.list_jobs()
        finally:
            opened.close()
    except StoreError as exc:
        return check(
            "store", False, str(exc), "check MIRROR_NEURON_DATA_DIR / --store, or start the Redis server"
        )
    return check("store", True, f"{opened.url} ({len(jobs)} job(s))")


def sandbox() -> dict[str, Any]:
    from ..execution import sandbox_available

    ok, why = sandbox_available(refresh=True)
    fix = 'apt-get install bubblewrap, or give trusted executor nodes "runner": "host_local"'
    return check("sandbox", ok, why, fix)


def temp_dir(config: Config) -> dict[str, Any]:
    path = Path(config.temp_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        return check(
            "temp dir", False, f"{path}: {exc.strerror}", "set MIRROR_NEURON_TEMP_DIR to a writable directory"
        )
    return check("temp dir", os.access(path, os.W_OK), str(path), "set MIRROR_NEURON_TEMP_DIR")


def run_checks(config: Config) -> list[dict[str, Any]]:
    return [python_version(), store(config), sandbox(), temp_dir(config)]
