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


def pause(job_id: str) -> dict[str, Any]:
    """Pause a running job, wherever it runs on this machine (this process, ``mn run``, ``mn serve``).

    Raises:
        JobNotFound: unknown job. JobStateError: the job is not running.
    """
    return _call(aio.pause(job_id))


def resume(job_id: str) -> dict[str, Any]:
    """Resume a paused job. Raises ``JobStateError`` when it is not paused."""
    return _call(aio.resume(job_id))


def cancel(job_id: str) -> dict[str, Any]:
    """Cancel a running or paused job (result ``{"reason": "cancelled by operator"}``)."""
    return _call(aio.cancel(job_id))


def send_message(job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]:
    """Enqueue a message in one agent's mailbox, bypassing edges; returns once it is durable.

    Raises:
        JobNotFound, AgentNotFound, JobStateError (ended job), MailboxFull, MessageError.
    """
    return _call(aio.send_message(job_id, agent_id, message))


def dead_letters(job_id: str) -> list[dict[str, Any]]:
    """Messages that could not be delivered (each with an ``id`` for :func:`redrive`)."""
    return _call(aio.dead_letters(job_id))


def redrive(job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
    """Deliver a dead letter again, to its original agent or to ``agent_id``."""
    return _call(aio.redrive(job_id, letter_id, agent_id))


def recover_job(job_id: str) -> str:
    """Resume a job whose runtime died, in this process's runtime, from its last commit."""
    return _call(aio.recover_job(job_id))


def cleanup_jobs(*, all: bool = False) -> dict[str, Any]:
    """Delete ended jobs (with ``all``, every job not hosted here) and their data."""
    return _call(aio.cleanup_jobs(all=all))
