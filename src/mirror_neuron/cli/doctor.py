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


def store(config: Config, source: str | None = None) -> dict[str, Any]:
    """The store this configuration really uses (its URL, password masked), opened but never created.

    ``source`` says what chose it (``--store``, ``MIRROR_NEURON_REDIS_URL``, …). A Redis
    server that cannot be reached fails here, after the store's few connection retries.
    """
    from ..errors import StoreError, StoreMissing
    from ..store import open_store, redact_url

    url = redact_url(config.store_url)
    chosen = f" (from {source})" if source else ""
    fix = "check --store, MIRROR_NEURON_STORE_URL, MIRROR_NEURON_REDIS_URL and MIRROR_NEURON_DATA_DIR"
    try:
        opened = open_store(config.store_url, create=False)
        try:
            jobs = opened.list_jobs()
        finally:
            opened.close()
    except StoreMissing as exc:
        if config.store_is_default:
            return check("store", True, f"{url}{chosen}: not created yet (the first mn run creates it)")
        return check("store", False, f"{url}{chosen}: {exc}", fix)
    except StoreError as exc:
        if config.store_url.lower().startswith(("redis", "unix")):
            fix += ", or start the Redis server"
        return check("store", False, f"{url}{chosen}: {exc}", fix)
    return check("store", True, f"{url}{chosen}: {len(jobs)} job(s)")


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

    from ..runtime import live_runtimes

    fix = "check the store (disk space, permissions, the Redis server); the runtime retries on its own"
    return [
        check(f"runtime {node.get('name')}", False, f"degraded: {health.get('reason')}", fix)
        for node in asyncio.run(live_runtimes())
        if (health := node.get("health") or {}).get("status", "ok") != "ok"
    ]


def run_checks(config: Config, source: str | None = None) -> list[dict[str, Any]]:
    return [python_version(), store(config, source), *runtimes(), sandbox(), network(), temp_dir(config)]
