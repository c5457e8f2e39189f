"""The synchronous Python API, mirroring the original's ``MirrorNeuron.*`` functions.

Jobs run on a default runtime hosted by a background thread (its own event loop), so
``run_manifest`` can return while the job goes on. Timeouts are in seconds. Inside an
event loop use :mod:`mirror_neuron.aio` instead.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from . import aio
from .bundle import Bundle, validate_bundle

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread that runs the default runtime."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mirror-neuron", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        try:
            self.call(aio.shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()


_portal: _Portal | None = None
_lock = threading.Lock()


def _call(coro: Coroutine[Any, Any, T]) -> T:
    global _portal
    if _portal is None:
        with _lock:
            if _portal is None:
                _portal = _Portal()
                atexit.register(shutdown)
    return _portal.call(coro)


def shutdown() -> None:
    """Stop the default runtime: live jobs fail, events and records are flushed."""
    global _portal
    with _lock:
        portal, _portal = _portal, None
    if portal is not None:
        portal.close()


def validate_manifest(source: Any) -> Bundle:
    """Load and validate a job bundle (folder path, manifest dict or JSON text).

    Raises:
        ManifestError: with ``.errors`` listing every problem found.
    """
    return validate_bundle(source)


def run_manifest(
    path: Any = None,
    *,
    wait: bool = False,
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
) -> Any:
    """Start a job. Returns ``job_id``, or ``(job_id, job)`` when ``wait=True``.

    ``job_bundle`` runs an already validated bundle (``path`` may then be ``None``).
    """
    return _call(
        aio.run_manifest(
            path,
            wait=wait,
            timeout=timeout,
            job_bundle=job_bundle,
            job_id=job_id,
            raise_on_failure=raise_on_failure,
        )
    )


def wait_for_job(job_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Block until the job is completed, failed or cancelled; return its record.

    Raises:
        JobNotFound: at once, for an id no store knows.
        JobTimeout: when ``timeout`` seconds pass first.
    """
    return _call(aio.wait_for_job(job_id, timeout))


def inspect_job(job_id: str) -> dict[str, Any]:
    return _call(aio.inspect_job(job_id))


def inspect_agents(job_id: str) -> list[dict[str, Any]]:
    return _call(aio.inspect_agents(job_id))


def events(job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    return _call(aio.events(job_id, after=after, limit=limit))


def list_jobs(*, limit: int | None = None, include_terminal: bool = True) -> list[dict[str, Any]]:
    return _call(aio.list_jobs(limit=limit, include_terminal=include_terminal))


def inspect_nodes() -> list[dict[str, Any]]:
    """This process's runtime and every other live one on the machine, with executor pool stats."""
    return _call(aio.inspect_nodes())
