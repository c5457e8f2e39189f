"""``mn doctor``: check what MirrorNeuron needs on this machine, and say how to fix it."""

from __future__ import annotations

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


def network() -> dict[str, Any]:
    from ..execution import network_available

    ok, why = network_available(refresh=True)
    fix = "apt-get install slirp4netns nftables (needed only by executor nodes with network: true)"
    return check("network", ok, why, fix)


def temp_dir(config: Config) -> dict[str, Any]:
    """The staging temp dir exists (or is created) private, owned by us, and takes a file."""
    from ..errors import ExecutionError
    from ..execution import ensure_private_dir

    path = Path(config.temp_dir)
    fix = "set MIRROR_NEURON_TEMP_DIR to a directory of your own"
    try:
        ensure_private_dir(path)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except ExecutionError as exc:
        return check("temp dir", False, str(exc), fix)
    except OSError as exc:
        return check("temp dir", False, f"{path}: {exc.strerror}", fix)
    return check("temp dir", True, f"{path} (private)")


def runtimes() -> list[dict[str, Any]]:
    """A failed check for each runtime running on this machine whose store takes no writes.

    Such a runtime is up but cannot keep anything (its jobs have failed): ``mn doctor`` must
    not say all is well. Healthy runtimes add nothing, so the checks stay the same without.
    """
    import asyncio

    from ..runtime.remote import live_runtimes

    fix = "check the store (disk space, permissions, the Redis server); the runtime retries on its own"
    return [
        check(f"runtime {node.get('name')}", False, f"degraded: {health.get('reason')}", fix)
        for node in asyncio.run(live_runtimes())
        if (health := node.get("health") or {}).get("status", "ok") != "ok"
    ]


def run_checks(config: Config) -> list[dict[str, Any]]:
    return [python_version(), store(config), *runtimes(), sandbox(), network(), temp_dir(config)]
