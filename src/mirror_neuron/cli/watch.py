"""``mn job watch``, ``mn job logs`` and ``mn job graph``: a job seen from outside its runtime.

Each reads through a :class:`~mirror_neuron.monitor.Source`: the configured store (any job
any process of this machine or of the cluster runs) or, with ``--server``, a server's REST
API and event stream.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from . import render

if TYPE_CHECKING:
    from ..monitor import JobView, Source
    from ..monitor.state import AgentRow

#: Redraws per second of the watch view.
FPS = 8
#: Agents listed by the watch view (failed and busy ones first).
SHOWN_AGENTS = 12
#: Events after which ``mn job logs --follow`` reads an agent's new runs.
RUN_ENDS = frozenset({"sandbox_job_completed", "sandbox_job_failed"})


def _run(source: Source, work: Any) -> Any:
    """Run ``work`` and close ``source``; Ctrl-C stops the reading (exit 130), never the job."""
    import click

    from . import EXIT_INTERRUPTED

    async def main() -> Any:
        try:
            return await work
        finally:
            await source.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        render.echo("interrupted: stopped reading; the job goes on", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


# -- watch ----------------------------------------------------------------------------------


def watch_command(source: Source, job_id: str, *, as_json: bool) -> None:
    """Follow a job until it ends; exit 0 only when it completed (like ``mn run``)."""
    import click

    from . import EXIT_FAILED, EXIT_OK

    record = _run(source, _watch(source, job_id, as_json))
    if not as_json:
        render.print_job_summary(record)
    raise click.exceptions.Exit(EXIT_OK if record.get("status") == "completed" else EXIT_FAILED)


async def _watch(source: Source, job_id: str, as_json: bool) -> dict[str, Any]:
    from ..monitor import JobView
    from ..monitor.state import STATUS_EVENTS

    job_id = await source.resolve(job_id)
    record = await source.job(job_id)
    view = JobView.start(record, await source.graph(job_id), await source.agents(job_id))
    view.last_seq = after = int(record.get("last_seq") or 0)  # from now on: no replay of the log
    live = None
    if not as_json and render.is_tty():
        from rich.live import Live

        live = Live(watch_table(view), refresh_per_second=FPS, transient=True)
        live.start()
    drawn = 0.0
    try:
        async for kind, data in source.updates(job_id, after=after):
            view.apply(kind, data)
            if as_json and kind == "event":
                render.print_json_line(data)
            elif live is not None:
                if time.monotonic() - drawn >= 1 / FPS or kind == "end":  # at most FPS redraws a second
                    live.update(watch_table(view))
                    drawn = time.monotonic()
            elif not as_json and kind == "event" and data.get("type") in STATUS_EVENTS:
                render.echo(render.event_line(data), one_line=True)
    finally:
        if live is not None:
            live.stop()
    return await source.job(job_id)


def watch_table(view: JobView, now: float | None = None) -> Any:
    """The live view: the job's status, elapsed time, agents by state, traffic, the failure
    reason, the last event, then the agents that matter most (failed, busy, queued)."""
    from rich.console import Group
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_row("[bold]job[/]", render.cell(view.job_id))
    grid.add_row("[bold]status[/]", render.cell(view.status, render.STATUS_STYLE.get(view.status, "")))
    took = view.elapsed(now)
    if took is not None:
        grid.add_row("[bold]elapsed[/]", f"{int(took // 60):02d}:{took % 60:05.2f}")
    counts = view.counts()
    states = ", ".join(f"{n} {state}" for state, n in counts.most_common())
    grid.add_row("[bold]agents[/]", render.cell(f"{len(view.agents)} ({states})" if states else "0"))
    grid.add_row("[bold]messages[/]", f"{view.processed()} processed, {view.queued()} queued")
    grid.add_row("[bold]events[/]", str(view.last_seq))
    reason = view.failure_reason()
    if reason:
        grid.add_row("[bold]failed[/]", render.cell(reason, "red"))
    last = view.last_event
    if last is not None:
        agent = f"({last['agent_id']})" if last.get("agent_id") else ""
        grid.add_row("[bold]last[/]", render.cell(f"{last.get('type')}{agent}"))
    rows = sorted(
        view.agents.values(), key=lambda r: (r.status != "failed", r.status != "running", -r.mailbox_depth)
    )
    table = Table("agent", "type", "state", "mailbox", "processed", "last error", box=None, pad_edge=False)
    for row in rows[:SHOWN_AGENTS]:
        style = render.STATUS_STYLE.get(row.status, "")
        table.add_row(
            render.cell(row.agent_id),
            render.cell(row.agent_type),
            render.cell(row.status, style),
            str(row.mailbox_depth),
            str(row.processed),
            render.cell((row.last_error or "")[:80], "red"),
        )
    if len(rows) > SHOWN_AGENTS:  # a Text: a job id is never read as markup
        table.caption = render.cell(f"{len(rows) - SHOWN_AGENTS} more agent(s): mn job agents {view.job_id}")
    return Group(grid, table)


def _importance(row: AgentRow) -> tuple[bool, bool, int]:
    """Failed agents first, then running ones, then the longest queues."""
    return (row.status != "failed", row.status != "running", -row.mailbox_depth)


# -- logs -----------------------------------------------------------------------------------


def logs_command(source: Source, job_id: str, agent_id: str | None, *, follow: bool, as_json: bool) -> None:
    _run(source, _logs(source, job_id, agent_id, follow, as_json))


async def _logs(source: Source, job_id: str, agent_id: str | None, follow: bool, as_json: bool) -> None:
    job_id = await source.resolve(job_id)
    after = int((await source.job(job_id)).get("last_seq") or 0)  # before the runs: none is missed
    if agent_id is not None:
        agents = [agent_id]
    else:
        agents = [n["id"] for n in (await source.graph(job_id))["nodes"] if n.get("kind") == "executor"]
    seen: dict[str, int] = dict.fromkeys(agents, 0)
    runs = [run for agent in agents for run in await source.logs(job_id, agent)]
    for run in sorted(runs, key=lambda r: (str(r.get("finished_at")), str(r.get("agent_id")))):
        _print_run(run, as_json)
        seen[run["agent_id"]] = max(seen[run["agent_id"]], int(run["invocation"]))
    if not follow:
        return
    async for kind, data in source.updates(job_id, after=after, agents=False):
        agent = data.get("agent_id") if kind == "event" else None
        if agent not in seen or data.get("type") not in RUN_ENDS:
            continue
        for run in await source.logs(job_id, agent, after=seen[agent]):  # only the new runs
            _print_run(run, as_json)
            seen[agent] = max(seen[agent], int(run["invocation"]))
        if render.stdout_gone():
            return


def _print_run(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.print_json_line(run)
        return
    outcome = "ok" if run.get("ok") else f"failed: {run.get('error')}"
    took = f", {run['duration_ms']:g} ms" if isinstance(run.get("duration_ms"), int | float) else ""
    head = (
        f"== {run.get('agent_id')} run #{run.get('invocation')} (exit {run.get('exit_code')}{took}) {outcome}"
    )
    render.echo(head, one_line=True)
    for stream in ("stdout", "stderr"):
        text = str(run.get(stream) or "")
        if not text:
            continue
        cut = " (only its end is kept)" if run.get(f"{stream}_truncated") else ""
        render.echo(f"-- {stream}{cut}")
        render.echo(text.rstrip("\n"))


# -- graph ----------------------------------------------------------------------------------


def graph_command(config: Config, target: str, fmt: str, *, server: str | None, token: str | None) -> None:
    """The graph of a bundle (a folder or manifest file) or of a job (an id or a unique prefix)."""
    from ..bundle.graph import graph_of

    if server is None and Path(target).exists():
        from ..validation import validate_bundle

        graph = graph_of(validate_bundle(target).manifest)
    else:
        from ..monitor import open_source

        source = open_source(config, server, token)

        async def read() -> dict[str, Any]:
            return await source.graph(await source.resolve(target))

        graph = _run(source, read())
    print_graph(graph, fmt)


def print_graph(graph: dict[str, Any], fmt: str) -> None:
    from ..bundle.graph import render as render_graph

    if fmt == "json":
        render.print_json(graph)
    else:
        with render.stdout_guard():
            print(render.clean(render_graph(graph, fmt)), end="")
