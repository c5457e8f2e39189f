"""The synchronous Python API, mirroring the original's ``MirrorNeuron.*`` functions.

Jobs run on a default runtime hosted by a background thread (its own event loop), so
``run_manifest`` can return while the job goes on. Timeouts are in seconds. Inside an
event loop use :mod:`mirror_neuron.aio` instead.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar, overload

from . import aio
from .bundle import Bundle, BundleSource
from .records import AgentView, CleanupResult, ControlResult, DeadLetter, EventRecord, JobRecord
from .validation import validate_manifest as validate_manifest  # the public one: no runtime needed

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread that runs the default runtime."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mirror-neuron", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self, *, suspend: bool = False) -> list[str]:
        try:
            return self.call(aio.shutdown(suspend=suspend))
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
                _at_exit(_exit_hook)
    return _portal.call(coro)


def _at_exit(hook: Any) -> None:
    """Run ``hook`` when the interpreter exits, *before* thread pools refuse new work.

    ``atexit`` runs too late: by then ``concurrent.futures`` has shut every thread pool
    down, so the store writes of a clean stop fail ("cannot schedule new futures after
    interpreter shutdown"). ``threading``'s own exit hooks run first, newest first.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - every CPython since 3.9 has it
        atexit.register(hook)
    else:
        register(hook)


def _exit_hook() -> None:
    """The script ends with jobs still running: suspend them where they are, say how to resume."""
    try:
        suspended = shutdown(suspend=True)
    except Exception as exc:  # never a traceback at exit
        print(f"mirror_neuron: could not stop the default runtime cleanly: {exc}", file=sys.stderr)
        return
    if suspended:
        ids = ", ".join(suspended)
        resume = " && ".join(f"mn job recover {job_id}" for job_id in suspended[:3])
        print(
            f"mirror_neuron: the script exited while {len(suspended)} job(s) ran; suspended {ids}; "
            f"resume with `{resume}`",
            file=sys.stderr,
        )


def shutdown(*, suspend: bool = False) -> list[str]:
    """Stop the default runtime; events and records are flushed.

    Live jobs fail, or with ``suspend`` (what happens when a script exits with jobs still
    running) stop at a message boundary, stay in the store as ``suspended`` and resume with
    ``mn job recover <id>``. Returns the ids of the suspended jobs.
    """
    global _portal
    with _lock:
        portal, _portal = _portal, None
    if portal is None:
        return []
    return portal.close(suspend=suspend)


@overload
def run_manifest(
    path: BundleSource | None = None,
    *,
    wait: Literal[False] = False,
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
    idle_timeout: float | None = None,
) -> str: ...


@overload
def run_manifest(
    path: BundleSource | None = None,
    *,
    wait: Literal[True],
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
    idle_timeout: float | None = None,
) -> tuple[str, JobRecord]: ...


def run_manifest(
    path: BundleSource | None = None,
    *,
    wait: bool = False,
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
    idle_timeout: float | None = None,
) -> str | tuple[str, JobRecord]:
    """Start a job. Returns ``job_id``, or ``(job_id, job)`` when ``wait=True``.

    ``job_bundle`` runs an already validated bundle (``path`` may then be ``None``). A job
    still running when the program exits is suspended for ``mn job recover``.
    """
    common: dict[str, Any] = {
        "timeout": timeout,
        "job_bundle": job_bundle,
        "job_id": job_id,
        "raise_on_failure": raise_on_failure,
        "idle_timeout": idle_timeout,
    }
    if wait:
        return _call(aio.run_manifest(path, wait=True, **common))
    return _call(aio.run_manifest(path, wait=False, **common))


def wait_for_job(
    job_id: str, timeout: float | None = None, *, idle_timeout: float | None = None
) -> JobRecord:
    """Block until the job is completed, failed or cancelled; return its record.

    With ``idle_timeout``, a job of this process that has been stalled that long (nothing
    queued, no handler running) fails with the reason instead of waiting on.

    Raises:
        JobNotFound: at once, for an id no store knows.
        JobTimeout: when ``timeout`` seconds pass first.
        JobOrphaned: no runtime hosts the job any more; ``mn job recover`` resumes it.
    """
    return _call(aio.wait_for_job(job_id, timeout, idle_timeout=idle_timeout))


def inspect_job(job_id: str) -> JobRecord:
    return _call(aio.inspect_job(job_id))


def inspect_agents(job_id: str) -> list[AgentView]:
    return _call(aio.inspect_agents(job_id))


def events(job_id: str, *, after: int = 0, limit: int | None = None) -> list[EventRecord]:
    return _call(aio.events(job_id, after=after, limit=limit))


def job_graph(job_id: str) -> dict[str, Any]:
    """The job's agents (``nodes``: id, agent_type, kind, type, role, pool) and routing ``edges``."""
    return _call(aio.job_graph(job_id))


def agent_logs(job_id: str, agent_id: str, *, after: int = 0) -> list[dict[str, Any]]:
    """An executor's kept runs (the newest 50), oldest first: stdout, stderr, exit code, error."""
    return _call(aio.agent_logs(job_id, agent_id, after=after))


def list_jobs(*, limit: int | None = None, include_terminal: bool = True) -> list[JobRecord]:
    return _call(aio.list_jobs(limit=limit, include_terminal=include_terminal))


def inspect_nodes() -> list[dict[str, Any]]:
    """Every node of the cluster on the store (any machine), then this process's runtime and the
    other live ones on this machine, with executor pool stats."""
    return _call(aio.inspect_nodes())


def pause(job_id: str) -> ControlResult:
    """Pause a running job, wherever it runs on this machine (this process, ``mn run``, ``mn serve``).

    Raises:
        JobNotFound: unknown job. JobStateError: the job is not running.
    """
    return _call(aio.pause(job_id))


def resume(job_id: str) -> ControlResult:
    """Resume a paused job. Raises ``JobStateError`` when it is not paused."""
    return _call(aio.resume(job_id))


def cancel(job_id: str) -> ControlResult:
    """Cancel a running or paused job (result ``{"reason": "cancelled by operator"}``)."""
    return _call(aio.cancel(job_id))


def send_message(job_id: str, agent_id: str, message: dict[str, Any]) -> ControlResult:
    """Enqueue a message in one agent's mailbox, bypassing edges; returns once it is durable.

    Raises:
        JobNotFound, AgentNotFound, JobStateError (ended job), MailboxFull, MessageError.
    """
    return _call(aio.send_message(job_id, agent_id, message))


def dead_letters(job_id: str) -> list[DeadLetter]:
    """Messages that could not be delivered (each with an ``id`` for :func:`redrive`)."""
    return _call(aio.dead_letters(job_id))


def redrive(job_id: str, letter_id: int, agent_id: str | None = None) -> ControlResult:
    """Deliver a dead letter again, to its original agent or to ``agent_id``."""
    return _call(aio.redrive(job_id, letter_id, agent_id))


def recover_job(job_id: str) -> str:
    """Resume a job whose runtime died, in this process's runtime, from its last commit."""
    return _call(aio.recover_job(job_id))


def cleanup_jobs(*, all: bool = False) -> CleanupResult:
    """Delete ended jobs and their data; live jobs (running, paused, suspended) are never
    deleted, ``all`` or not: they are listed in ``skipped_jobs``."""
    return _call(aio.cleanup_jobs(all=all))
