"""The Python API for code already running in an event loop.

Same names and arguments as the synchronous functions in :mod:`mirror_neuron`, as
coroutines. Each event loop gets its own default :class:`~mirror_neuron.runtime.Runtime`
configured from the environment; call :func:`shutdown` to flush and close it, or build
and own a ``Runtime`` yourself for full control.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .bundle import Bundle, validate_bundle
from .config import Config
from .errors import JobFailed
from .runtime import Runtime

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


async def shutdown() -> None:
    """Close the running loop's default runtime (live jobs fail, everything is flushed)."""
    rt = _runtimes.pop(asyncio.get_running_loop(), None)
    if rt is not None:
        await rt.close()


async def validate_manifest(source: Any) -> Bundle:
    """Load and validate a bundle folder, manifest dict or JSON text; starts nothing."""
    return validate_bundle(source)


async def run_manifest(
    path: Any = None,
    *,
    wait: bool = False,
    timeout: float | None = None,
    job_bundle: Bundle | None = None,
    job_id: str | None = None,
    raise_on_failure: bool = False,
) -> Any:
    """Start a job; returns ``job_id``, or ``(job_id, job)`` with ``wait=True``."""
    rt = await runtime()
    source = job_bundle if job_bundle is not None else validate_bundle(path)
    job_id = await rt.submit(source, job_id=job_id)
    if not wait:
        return job_id
    job = await rt.wait(job_id, timeout)
    if raise_on_failure and job.get("status") != "completed":
        raise JobFailed(job_id, job)
    return job_id, job


async def wait_for_job(job_id: str, timeout: float | None = None) -> dict[str, Any]:
    """The terminal job record; raises ``JobNotFound`` at once for an unknown id."""
    return await (await runtime()).wait(job_id, timeout)


async def inspect_job(job_id: str) -> dict[str, Any]:
    return await (await runtime()).inspect_job(job_id)


async def inspect_agents(job_id: str) -> list[dict[str, Any]]:
    return await (await runtime()).inspect_agents(job_id)


async def events(job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    return await (await runtime()).events(job_id, after=after, limit=limit)


async def list_jobs(*, limit: int | None = None, include_terminal: bool = True) -> list[dict[str, Any]]:
    return await (await runtime()).list_jobs(limit=limit, include_terminal=include_terminal)


async def inspect_nodes() -> list[dict[str, Any]]:
    """Live runtimes of this user on this machine (``mn run``/``mn serve``), with their pool usage."""
    from .runtime.remote import live_runtimes

    rt = await runtime()
    others = [n for n in await live_runtimes() if n.get("control") != rt.control_endpoint]
    return [rt.inspect_node(), *others]


async def pause(job_id: str) -> dict[str, Any]:
    """Pause a running job (wherever it runs on this machine): agents stop after their current message."""
    return await (await runtime()).pause(job_id)


async def resume(job_id: str) -> dict[str, Any]:
    """Resume a paused job: each agent processes what accumulated, oldest first."""
    return await (await runtime()).resume(job_id)


async def cancel(job_id: str) -> dict[str, Any]:
    """Cancel a running or paused job: scripts are killed, queued messages dropped."""
    return await (await runtime()).cancel(job_id)


async def send_message(job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]:
    """Deliver a message (flat or envelope form) to one agent, bypassing edges; durable when it returns."""
    return await (await runtime()).send_message(job_id, agent_id, message)


async def dead_letters(job_id: str) -> list[dict[str, Any]]:
    return await (await runtime()).dead_letters(job_id)


async def redrive(job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
    return await (await runtime()).redrive(job_id, letter_id, agent_id)


async def recover_job(job_id: str) -> str:
    """Resume, in this process, a job whose runtime died; returns its id."""
    return await (await runtime()).recover(job_id)


async def cleanup_jobs(*, all: bool = False) -> dict[str, Any]:
    return await (await runtime()).cleanup(all=all)
