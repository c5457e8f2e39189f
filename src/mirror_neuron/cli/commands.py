"""What each ``mn`` command does, separated from argument parsing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..bundle import Bundle
from ..config import Config
from ..errors import JobTimeout, ManifestError, MirrorNeuronError
from ..ids import job_id as new_job_id
from ..store import Store, open_store
from ..validation import validate_bundle
from . import lookup, render

if TYPE_CHECKING:
    from ..runtime import JobReader, Runtime

DETACH_WAIT = 15.0
T = TypeVar("T")


def _exit(code: int) -> None:
    raise click.exceptions.Exit(code)


def _sandbox_warnings(bundle: Bundle) -> list[str]:
    from ..agents import sandbox_problem

    problem = sandbox_problem(bundle)
    return [] if problem is None else [problem]


def validate_command(
    config: Config, source: str, as_json: bool, strict: bool = False, graph: str | None = None
) -> None:
    """Check a bundle; with ``strict``, its warnings (unknown keys) are errors; with ``graph``,
    print its graph in that format (json, dot, mermaid) instead of the summary."""
    bundle = validate_bundle(source)
    if strict and bundle.warnings:
        raise ManifestError(list(bundle.warnings))
    if graph is not None:
        from ..bundle.graph import graph_of
        from .watch import print_graph

        print_graph(graph_of(bundle.manifest), graph)
        return
    m = bundle.manifest
    warnings = [*bundle.warnings, *_sandbox_warnings(bundle)]
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
    config: Config,
    source: str,
    *,
    as_json: bool,
    timeout: float | None,
    no_wait: bool,
    job_id: str | None,
    idle_timeout: float | None = None,
) -> None:
    bundle = validate_bundle(source)
    for warning in bundle.warnings:
        render.echo(f"warning: {warning}", err=True)
    if no_wait:
        _detach(config, bundle, source, as_json)
        return
    live = not as_json and render.is_tty()
    run = _run(config, bundle, timeout=timeout, job_id=job_id, live=live, idle_timeout=idle_timeout)
    _finish(*asyncio.run(run), as_json)


def recover_command(
    config: Config, job_id: str, *, as_json: bool, timeout: float | None, idle_timeout: float | None = None
) -> None:
    """Resume a job whose runtime died, here, and wait for it like ``mn run``."""
    job_id = _with_store(config, lambda s: lookup.resolve_job_id(s, job_id))
    live = not as_json and render.is_tty()
    run = _run(config, None, timeout=timeout, job_id=job_id, live=live, idle_timeout=idle_timeout)
    _finish(*asyncio.run(run), as_json)


def _finish(record: dict[str, Any], events: int | None, as_json: bool) -> None:
    if as_json:
        render.print_json({"ok": record.get("status") == "completed", **record})
    else:
        render.print_job_summary(record, events)
    _exit(0 if record.get("status") == "completed" else 1)


async def _run(
    config: Config,
    bundle: Bundle | None,
    *,
    timeout: float | None,
    job_id: str | None,
    live: bool,
    idle_timeout: float | None = None,
) -> tuple[dict[str, Any], int | None]:
    """Host a job here until it ends: a new one from ``bundle``, or a recovered ``job_id``.

    Returns the terminal record and how many events the job has.

    Ctrl-C or SIGTERM suspends the job at a message boundary (``mn job recover`` resumes
    it) and exits 130 or 143; a second Ctrl-C exits at once.
    """
    from ..runtime import Runtime

    async with Runtime(config) as rt:
        if bundle is None:
            job_id = await rt.control.recover(str(job_id))
        else:
            job_id = await rt.submit(bundle, job_id=job_id)
        job = rt.jobs.get(job_id)
        progress = None
        if live and job is not None:
            from .progress import LiveProgress

            progress = LiveProgress(job)
            progress.start()
        try:
            with interruptible() as interrupted:
                waiter = asyncio.ensure_future(rt.wait(job_id, timeout, idle_timeout=idle_timeout))
                watched: list[asyncio.Future[Any]] = [waiter, interrupted]
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if not interrupted.done():
                    return waiter.result(), job.seq if job is not None else None
                waiter.cancel()
                if progress is not None:
                    progress.stop()
                    progress = None
                await _suspend(rt, job_id, interrupted.result())
                raise AssertionError("unreachable")  # pragma: no cover
        except JobTimeout:
            if job is not None:
                job.fail("job_runner", f"job did not end within {timeout:g}s (mn run --timeout)")
            return await rt.wait(job_id), job.seq if job is not None else None
        finally:
            if progress is not None:
                progress.stop()


#: Exit codes of a run stopped by a signal (128 + the signal's number, as shells report it).
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextlib.contextmanager
def interruptible() -> Iterator[asyncio.Future[signal.Signals]]:
    """A future set by the first Ctrl-C or SIGTERM; a second one exits at once (forced)."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future[signal.Signals] = loop.create_future()

    def received(sig: signal.Signals) -> None:
        if not first.done():
            first.set_result(sig)
            return
        print("error: interrupted again: exiting at once; `mn job recover` resumes the job", file=sys.stderr)
        os._exit(SIGNAL_EXIT[sig])

    for sig in SIGNAL_EXIT:
        loop.add_signal_handler(sig, received, sig)
    try:
        yield first
    finally:
        for sig in SIGNAL_EXIT:
            loop.remove_signal_handler(sig)


async def _suspend(rt: Runtime, job_id: str, sig: signal.Signals) -> None:
    """Suspend the job hosted here at a message boundary and exit as the signal says."""
    name = "Ctrl-C" if sig == signal.SIGINT else sig.name
    if not rt.durable:
        render.echo(f"interrupted ({name}): job {job_id} is lost with the memory store", err=True)
    elif await rt.suspend(f"mn run received {name}"):
        render.echo(
            f"interrupted ({name}): job {job_id} suspended; resume it with `mn job recover {job_id}`",
            err=True,
        )
    _exit(SIGNAL_EXIT[sig])


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
    """Open the configured store (never creating it), read from it, close it."""
    store = lookup.open_existing(config)
    try:
        return read(store)
    finally:
        store.close()


def _show(value: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    render.print_json(value) if as_json else human(value)


def _read(config: Config, job_id: str | None, read: Callable[[JobReader, str], Coroutine[Any, Any, T]]) -> T:
    """Read through a :class:`JobReader` of the configured store (never created), no runtime.

    ``job_id`` may be a unique prefix; ``read`` gets the full id (``""`` when none is given).
    """
    from ..runtime import JobReader

    store = lookup.open_existing(config)
    try:
        full_id = lookup.resolve_job_id(store, job_id) if job_id is not None else ""
        reader = JobReader(store, heartbeat_interval=config.heartbeat_interval)
        return asyncio.run(read(reader, full_id))
    finally:
        store.close()


def list_command(config: Config, *, as_json: bool, limit: int, live: bool) -> None:
    """Jobs, newest first; a live job whose runtime is gone says so (``orphaned``), as does a stalled one."""
    jobs = _read(config, None, lambda r, _: r.list_jobs(limit=limit, include_terminal=not live))
    _show(jobs, as_json, render.print_jobs)


def doctor_command(config: Config, *, as_json: bool, source: str | None = None) -> None:
    """Check what MirrorNeuron needs here and say what to fix (``source``: what chose the store)."""
    from .doctor import run_checks

    checks = run_checks(config, source)
    if as_json:
        render.print_json(checks)
    else:
        for check in checks:
            mark = "ok  " if check["ok"] else "FAIL"
            render.echo(f"{mark} {check['name']}: {check['detail']}")
            if not check["ok"] and check.get("fix"):
                render.echo(f"     fix: {check['fix']}")
    _exit(0 if all(c["ok"] for c in checks) else 1)


def inspect_command(config: Config, job_id: str, *, as_json: bool) -> None:
    _show(_read(config, job_id, lambda r, full: r.inspect_job(full)), as_json, render.print_job_summary)


def agents_command(config: Config, job_id: str, *, as_json: bool) -> None:
    _show(_read(config, job_id, lambda r, full: r.inspect_agents(full)), as_json, render.print_agents)


def events_command(config: Config, job_id: str, *, as_json: bool, after: int, limit: int | None) -> None:
    events = _read(config, job_id, lambda r, full: r.events(full, after=after, limit=limit))
    _show(events, as_json, render.print_events)


def control_command(
    config: Config, op: str, *args: Any, as_json: bool, confirm: bool = False, **kwargs: Any
) -> None:
    """pause / resume / cancel / send / dead letters / cleanup, wherever the job runs.

    The job id may be a unique prefix. With ``confirm``, cancel and cleanup ask first on a terminal.
    """
    if op == "send":
        job_id, agent_id, text = args
        args = (job_id, agent_id, _message_arg(text))
    store = lookup.open_existing(config)
    try:
        if op != "cleanup":
            args = (lookup.resolve_job_id(store, str(args[0])), *args[1:])
        if confirm and op == "cancel":
            lookup.confirm(f"Cancel job {args[0]}? Its running scripts are killed.")
        elif confirm and op == "cleanup":
            which = "every job, not only ended ones," if kwargs.get("all") else "every ended job"
            lookup.confirm(f"Delete {which} with its events and snapshots?")
    except BaseException:
        store.close()
        raise
    result = asyncio.run(_control(config, store, op, args, kwargs))
    if as_json:
        render.print_json(result)
    else:
        render.print_control(op, result)


async def _control(
    config: Config, store: Store, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    from ..runtime import Runtime

    async with Runtime(config.with_(control=False), store=store) as rt:
        method: Callable[..., Awaitable[Any]] = getattr(rt.control, {"send": "send_message"}.get(op, op))
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


def follow_command(config: Config, job_id: str, *, as_json: bool, after: int) -> None:
    """A live tail: stored events, then new ones as they happen, until the job ends."""
    store = lookup.open_existing(config)
    try:
        job_id = lookup.resolve_job_id(store, job_id)
    except BaseException:
        store.close()
        raise
    asyncio.run(_follow(config, store, job_id, as_json=as_json, after=after))


async def _follow(config: Config, store: Store, job_id: str, *, as_json: bool, after: int) -> None:
    from ..runtime import Runtime

    async with Runtime(config.with_(control=False), store=store) as rt:
        async for event in rt.follow(job_id, after=after):
            if as_json:  # one object per line, so the output can be piped as it grows
                render.print_json_line(event)
            else:
                render.print_events([event])
                with render.stdout_guard():
                    sys.stdout.flush()
            if render.stdout_gone():  # `mn job events -f | head`: nobody reads any more
                break


def serve_command(
    config: Config,
    *,
    host: str,
    port: int,
    token: str | None,
    store_url: str | None,
    allow_host_local: bool,
    node_name: str | None = None,
    role: str = "runtime",
    advertise: str | None = None,
    sweep_interval: float = 2.0,
    allow_openshell: bool = False,
    allow_network: bool = False,
    pass_env: tuple[str, ...] = (),
    max_run_seconds: float | None = None,
) -> None:
    from ..server import ServerSettings
    from ..server.serve import serve

    if store_url:
        config = config.with_(store_url=store_url)
    if node_name:
        config = config.with_(node_name=node_name)
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
        role=role,
        advertise=advertise,
        sweep_interval=sweep_interval,
    )
    serve(config, settings)


def remote_run_command(
    url: str,
    token: str | None,
    source: str,
    *,
    as_json: bool,
    timeout: float | None,
    no_wait: bool,
    node: str | None = None,
) -> None:
    """``mn run --server``: upload the bundle, then wait and report exactly like a local run."""
    from ..server.client import ServerClient

    bundle = validate_bundle(source)
    if bundle.root_path is None:
        raise MirrorNeuronError("--server needs a bundle folder")
    with ServerClient(url, token) as client:
        job_id = client.upload(bundle.root_path, node=node)["job_id"]
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
