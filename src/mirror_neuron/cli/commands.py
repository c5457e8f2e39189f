"""What each ``mn`` command does, separated from argument parsing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..bundle import Bundle, validate_bundle
from ..config import Config
from ..errors import JobNotFound, JobTimeout, MirrorNeuronError
from ..ids import job_id as new_job_id
from ..store import open_store
from . import render

DETACH_WAIT = 15.0
T = TypeVar("T")


def _exit(code: int) -> None:
    raise click.exceptions.Exit(code)


def _sandbox_warnings(bundle: Bundle) -> list[str]:
    from ..agents import sandbox_problem

    problem = sandbox_problem(bundle)
    return [] if problem is None else [problem]


def validate_command(config: Config, source: str, as_json: bool) -> None:
    bundle = validate_bundle(source)
    m = bundle.manifest
    warnings = _sandbox_warnings(bundle)
    summary = {
        "ok": True,
        "job_path": str(bundle.root_path) if bundle.root_path else None,
        "graph_id": m.graph_id,
        "job_name": m.job_name,
        "nodes": len(m.nodes),
        "edges": len(m.edges),
        "entrypoints": list(m.entrypoints),
        "warnings": warnings,
    }
    if as_json:
        render.print_json(summary)
        return
    render.echo(
        f"ok: {m.graph_id} is valid ({summary['nodes']} nodes, {summary['edges']} edges, "
        f"entrypoints: {', '.join(m.entrypoints) or 'none'})"
    )
    for warning in warnings:
        render.echo(f"warning: {warning}", err=True)


def run_command(
    config: Config, source: str, *, as_json: bool, timeout: float | None, no_wait: bool, job_id: str | None
) -> None:
    bundle = validate_bundle(source)
    if no_wait:
        _detach(config, bundle, source, as_json)
        return
    live = not as_json and render.is_tty()
    _finish(asyncio.run(_run(config, bundle, timeout=timeout, job_id=job_id, live=live)), as_json)


def recover_command(config: Config, job_id: str, *, as_json: bool, timeout: float | None) -> None:
    """Resume a job whose runtime died, here, and wait for it like ``mn run``."""
    live = not as_json and render.is_tty()
    _finish(asyncio.run(_run(config, None, timeout=timeout, job_id=job_id, live=live)), as_json)


def _finish(record: dict, as_json: bool) -> None:
    if as_json:
        render.print_json({"ok": record.get("status") == "completed", **record})
    else:
        render.print_job_summary(record)
    _exit(0 if record.get("status") == "completed" else 1)


async def _run(
    config: Config, bundle: Bundle | None, *, timeout: float | None, job_id: str | None, live: bool
) -> dict:
    """Host a job here until it ends: a new one from ``bundle``, or a recovered ``job_id``."""
    from ..runtime import Runtime

    async with Runtime(config) as rt:
        if bundle is None:
            job_id = await rt.recover(str(job_id))
        else:
            job_id = await rt.submit(bundle, job_id=job_id)
        job = rt.jobs.get(job_id)
        progress = None
        if live and job is not None:
            from .progress import LiveProgress

            progress = LiveProgress(job)
            progress.start()
        try:
            return await rt.wait(job_id, timeout)
        except JobTimeout:
            if job is not None:
                job.fail("job_runner", f"job did not end within {timeout:g}s (mn run --timeout)")
            return await rt.wait(job_id)
        finally:
            if progress is not None:
                progress.stop()


def _detach(config: Config, bundle: Bundle, source: str, as_json: bool) -> None:
    """Run the job in a background ``mn run`` process and return once it is recorded."""
    if config.store_url.startswith("memory:"):
        raise MirrorNeuronError(
            "--no-wait needs a persistent store (the memory store dies with this process)"
        )
    job_id = new_job_id(bundle.manifest.graph_id)
    log_dir = Path(config.data_dir or ".") / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{job_id}.log"
    args = [
        sys.executable,
        "-m",
        "mirror_neuron",
        "--store",
        config.store_url,
        "run",
        "--json",
        "--job-id",
        job_id,
    ]
    with open(log_path, "wb") as log:
        subprocess.Popen(
            [*args, str(bundle.root_path) if bundle.root_path else source],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=os.environ.copy(),
        )
    store = open_store(config.store_url)
    try:
        deadline = time.monotonic() + DETACH_WAIT
        while store.get_job(job_id) is None:
            if time.monotonic() > deadline:
                raise MirrorNeuronError(f"the background job did not start; see {log_path}")
            time.sleep(0.02)
    finally:
        store.close()
    if as_json:
        render.print_json({"job_id": job_id})
    else:
        render.echo(job_id)


def _with_store(config: Config, read: Callable[[Any], T]) -> T:
    """Open the configured store, read from it, close it."""
    store = open_store(config.store_url)
    try:
        return read(store)
    finally:
        store.close()


def _show(value: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    render.print_json(value) if as_json else human(value)


def list_command(config: Config, *, as_json: bool, limit: int, live: bool) -> None:
    jobs = _with_store(config, lambda s: s.list_jobs(limit=limit, include_terminal=not live))
    for job in jobs:
        job["live"] = is_live(job)
    _show(jobs, as_json, render.print_jobs)


LIVE_WINDOW = 10.0


def is_live(record: dict[str, Any], now: float | None = None) -> bool:
    """A job not ended whose runtime heartbeat is recent (a dead owner shows as not live)."""
    from datetime import datetime

    if record.get("status") not in ("pending", "running", "paused"):
        return False
    stamp = record.get("heartbeat_at") or record.get("updated_at")
    try:
        beat = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return (now or time.time()) - beat <= LIVE_WINDOW


def doctor_command(config: Config, *, as_json: bool) -> None:
    """Check what MirrorNeuron needs here and say what to fix."""
    from .doctor import run_checks

    checks = run_checks(config)
    if as_json:
        render.print_json(checks)
    else:
        for check in checks:
            mark = "ok  " if check["ok"] else "FAIL"
            render.echo(f"{mark} {check['name']}: {check['detail']}")
            if not check["ok"] and check.get("fix"):
                render.echo(f"     fix: {check['fix']}")
    _exit(0 if all(c["ok"] for c in checks) else 1)


def _record(store: Any, job_id: str) -> dict:
    record = store.get_job(job_id)
    if record is None:
        raise JobNotFound(job_id)
    return record


def inspect_command(config: Config, job_id: str, *, as_json: bool) -> None:
    _show(_with_store(config, lambda s: _record(s, job_id)), as_json, render.print_job_summary)


def agents_command(config: Config, job_id: str, *, as_json: bool) -> None:
    from ..runtime.job import final_agent_views

    def read(store: Any) -> list[dict[str, Any]]:
        return final_agent_views(_record(store, job_id), store.get_agents(job_id))

    _show(_with_store(config, read), as_json, render.print_agents)


def events_command(config: Config, job_id: str, *, as_json: bool, after: int, limit: int | None) -> None:
    def read(store: Any) -> list[dict[str, Any]]:
        _record(store, job_id)
        return store.read_events(job_id, after=after, limit=limit)

    _show(_with_store(config, read), as_json, render.print_events)


def control_command(config: Config, op: str, *args: Any, as_json: bool, **kwargs: Any) -> None:
    """pause / resume / cancel / send / dead letters / cleanup, wherever the job runs."""
    if op == "send":
        job_id, agent_id, text = args
        args = (job_id, agent_id, _message_arg(text))
    result = asyncio.run(_control(config, op, args, kwargs))
    if as_json:
        render.print_json(result)
    else:
        render.print_control(op, result)


async def _control(config: Config, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from ..runtime import Runtime

    async with Runtime(config.with_(control=False)) as rt:
        methods: dict[str, Callable[..., Awaitable[Any]]] = {
            "send": rt.send_message,
            "dead_letters": rt.dead_letters,
        }
        method = methods.get(op) or getattr(rt, op)
        return await method(*args, **kwargs)


def _message_arg(text: str) -> Any:
    """A message given on the command line: JSON text, or ``@path`` to a JSON file."""
    from .. import _json
    from ..errors import MessageError

    source = "message"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise MessageError(f"cannot read message file {source}: {exc.strerror}") from exc
    try:
        value = _json.loads(text)
    except _json.JSONDecodeError as exc:
        raise MessageError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    if not isinstance(value, dict):
        raise MessageError(f"{source} must be a JSON object")
    return value


def node_list_command(config: Config, *, as_json: bool) -> None:
    """Live runtimes, or (when none runs) this machine's configured pools, all idle."""
    from ..runtime.remote import live_runtimes

    nodes = asyncio.run(live_runtimes())
    if not nodes:
        pools = {
            name: {"capacity": c, "in_use": 0, "available": c, "queued": 0, "active": 0}
            for name, c in config.pools().items()
        }
        nodes = [
            {"name": config.node_name, "pid": None, "control": None, "jobs": [], "executor_pools": pools}
        ]
    if as_json:
        render.print_json(nodes)
    else:
        render.print_nodes(nodes)


def follow_command(config: Config, job_id: str, *, as_json: bool, after: int) -> None:
    """A live tail: stored events, then new ones as they happen, until the job ends."""
    asyncio.run(_follow(config, job_id, as_json=as_json, after=after))


async def _follow(config: Config, job_id: str, *, as_json: bool, after: int) -> None:
    from .. import _json
    from ..runtime import Runtime

    async with Runtime(config.with_(control=False)) as rt:
        async for event in rt.follow(job_id, after=after):
            if as_json:  # one object per line, so the output can be piped as it grows
                sys.stdout.buffer.write(_json.dumps(event) + b"\n")
                sys.stdout.flush()
            else:
                render.print_events([event])
                sys.stdout.flush()


def serve_command(
    config: Config,
    *,
    host: str,
    port: int,
    token: str | None,
    store_url: str | None,
    allow_host_local: bool,
    allow_openshell: bool = False,
    allow_network: bool = False,
    pass_env: tuple[str, ...] = (),
    max_run_seconds: float | None = None,
) -> None:
    from ..server import ServerSettings
    from ..server.serve import serve

    if store_url:
        config = config.with_(store_url=store_url)
    if max_run_seconds:  # the operator's own cap wins over the server's default for client bundles
        config = config.with_(policy=config.policy.with_(max_run_seconds=max_run_seconds))
    settings = ServerSettings(
        host=host,
        port=port,
        token=token or None,
        allow_host_local=allow_host_local,
        allow_openshell=allow_openshell,
        allow_network=allow_network,
        pass_env=tuple(pass_env),
    )
    serve(config, settings)


def remote_run_command(
    url: str, token: str | None, source: str, *, as_json: bool, timeout: float | None, no_wait: bool
) -> None:
    """``mn run --server``: upload the bundle, then wait and report exactly like a local run."""
    from ..server.client import ServerClient

    bundle = validate_bundle(source)
    if bundle.root_path is None:
        raise MirrorNeuronError("--server needs a bundle folder")
    with ServerClient(url, token) as client:
        job_id = client.upload(bundle.root_path)["job_id"]
        if no_wait:
            render.print_json({"job_id": job_id}) if as_json else render.echo(job_id, one_line=True)
            return
        if not as_json:
            render.echo(f"job {job_id} running on {url}", err=True, one_line=True)
        try:
            record = client.wait(job_id, timeout)
        except JobTimeout:
            client.cancel(job_id)  # the server-side equivalent of a local run's --timeout
            record = client.wait(job_id)
    if as_json:
        render.print_json({"ok": record.get("status") == "completed", **record})
    else:
        render.print_job_summary(record)
    _exit(0 if record.get("status") == "completed" else 1)
