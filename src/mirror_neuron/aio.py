"""The Python API for code already running in an event loop.

Same names and arguments as the synchronous functions in :mod:`mirror_neuron`, as
coroutines. Each event loop gets its own default :class:`~mirror_neuron.runtime.Runtime`
configured from the environment; call :func:`shutdown` to flush and close it, or build
and own a ``Runtime`` yourself for full control.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal, cast, overload

from .bundle import Bundle, BundleSource
from .config import Config
from .errors import JobFailed
from .records import AgentView, CleanupResult, ControlResult, DeadLetter, EventRecord, JobRecord
from .runtime import Runtime
from .validation import validate_bundle

_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


async def runtime() -> Runtime:
    """The default runtime of the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    rt = _runtimes.get(loop)
    if rt is None:
        rt = Runtime(Config.from_env())
        _runtimes[loop] = rt
        await rt.start()
    return rt


async def shutdown(*, suspend: bool = False) -> list[str]:
    """Close the running loop's default runtime; everything is flushed.

    Live jobs fail, or with ``suspend`` stop at a message boundary as ``suspended`` for
    ``mn job recover`` (a memory store keeps nothing, so there they fail all the same).
    Returns the ids of the suspended jobs.
    """
    rt = _runtimes.pop(asyncio.get_running_loop(), None)
    if rt is None:
        return []
    suspended = await rt.suspend("the program using it exited") if suspend and rt.durable else []
    await rt.close()
    return suspended


async def validate_manifest(source: BundleSource) -> Bundle:
    """Load and validate a bundle folder, manifest dict or JSON text; starts nothing."""
    return validate_bundle(source)


@overload
async def run_manifest(
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
async def run_manifest(
    path: BundleSource | None = None,
    *,
    wait: Literal[True],
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
    idle_timeout: float | None = None,
) -> tuple[str, JobRecord]: ...


async def run_manifest(
    path: BundleSource | None = None,
    *,
    wait: bool = False,
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
    idle_timeout: float | None = None,
) -> str | tuple[str, JobRecord]:
    """Start a job; returns ``job_id``, or ``(job_id, job)`` with ``wait=True``."""
    rt = await runtime()
    source = job_bundle if job_bundle is not None else validate_bundle(path)
    job_id = await rt.submit(source, job_id=job_id)
    if not wait:
        return job_id
    job = await rt.wait(job_id, timeout, idle_timeout=idle_timeout)
    if raise_on_failure and job.get("status") != "completed":
        raise JobFailed(job_id, job)
    return job_id, cast(JobRecord, job)


async def wait_for_job(
    job_id: str, timeout: float | None = None, *, idle_timeout: float | None = None
) -> JobRecord:
    """The terminal job record.

    Raises ``JobNotFound`` at once for an unknown id, ``JobTimeout`` after ``timeout``,
    ``JobOrphaned`` when no runtime hosts the job any more. With ``idle_timeout``, a job
    hosted here that stalled that long fails with the reason.
    """
    return cast(JobRecord, await (await runtime()).wait(job_id, timeout, idle_timeout=idle_timeout))


async def inspect_job(job_id: str) -> JobRecord:
    return cast(JobRecord, await (await runtime()).inspect_job(job_id))


async def inspect_agents(job_id: str) -> list[AgentView]:
    return cast("list[AgentView]", await (await runtime()).inspect_agents(job_id))


async def events(job_id: str, *, after: int = 0, limit: int | None = None) -> list[EventRecord]:
    return cast("list[EventRecord]", await (await runtime()).events(job_id, after=after, limit=limit))


async def job_graph(job_id: str) -> dict[str, Any]:
    """The job's agents (``nodes``: id, agent_type, kind, type, role, pool) and routing ``edges``."""
    return await (await runtime()).graph(job_id)


async def agent_logs(job_id: str, agent_id: str, *, after: int = 0) -> list[dict[str, Any]]:
    """An executor's kept runs (the newest 50), oldest first: stdout, stderr, exit code, error."""
    return await (await runtime()).logs(job_id, agent_id, after=after)


async def list_jobs(*, limit: int | None = None, include_terminal: bool = True) -> list[JobRecord]:
    jobs = await (await runtime()).list_jobs(limit=limit, include_terminal=include_terminal)
    return cast("list[JobRecord]", jobs)


async def inspect_nodes() -> list[dict[str, Any]]:
    """Every node of the cluster on the store (``mn serve`` processes on any machine, alive or
    lately dead, marked ``"cluster": True``), then this process's runtime and the other live
    runtimes of this user on this machine (``mn run``), each with its executor pools."""
    rt = await runtime()
    nodes = await rt.inspect_nodes(local=True)
    cluster = [n for n in nodes if n.get("cluster")]
    me = [] if any(n["name"] == rt.config.node_name for n in cluster) else [rt.inspect_node()]
    return [*cluster, *me, *(n for n in nodes if not n.get("cluster"))]


async def pause(job_id: str) -> ControlResult:
    """Pause a running job (wherever it runs on this machine): agents stop after their current message."""
    return cast(ControlResult, await (await runtime()).control.pause(job_id))


async def resume(job_id: str) -> ControlResult:
    """Resume a paused job: each agent processes what accumulated, oldest first."""
    return cast(ControlResult, await (await runtime()).control.resume(job_id))


async def cancel(job_id: str) -> ControlResult:
    """Cancel a running or paused job: scripts are killed, queued messages dropped."""
    return cast(ControlResult, await (await runtime()).control.cancel(job_id))


async def send_message(job_id: str, agent_id: str, message: dict[str, Any]) -> ControlResult:
    """Deliver a message (flat or envelope form) to one agent, bypassing edges; durable when it returns."""
    return cast(ControlResult, await (await runtime()).control.send_message(job_id, agent_id, message))


async def dead_letters(job_id: str) -> list[DeadLetter]:
    return cast("list[DeadLetter]", await (await runtime()).control.dead_letters(job_id))


async def redrive(job_id: str, letter_id: int, agent_id: str | None = None) -> ControlResult:
    return cast(ControlResult, await (await runtime()).control.redrive(job_id, letter_id, agent_id))


async def recover_job(job_id: str) -> str:
    """Resume, in this process, a job whose runtime is gone (or suspended it); returns its id."""
    return await (await runtime()).control.recover(job_id)


async def cleanup_jobs(*, all: bool = False) -> CleanupResult:
    """Delete ended jobs; live ones (running, paused, suspended) are only listed as skipped."""
    return cast(CleanupResult, await (await runtime()).control.cleanup(all=all))
