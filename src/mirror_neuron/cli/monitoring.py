"""Command registration of the monitors: ``mn monitor``, ``mn job watch|logs|graph``.

Each may read the configured store or, with ``--server URL``, an ``mn serve`` (any node of
a cluster). Textual is imported by ``mn monitor`` alone, when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
GRAPH_FORMATS = click.Choice(["json", "dot", "mermaid"])


def server_options(command: F) -> F:
    """``--server URL`` and ``--token``: read a server instead of the configured store."""
    command = click.option(
        "--token", envvar="MIRROR_NEURON_API_TOKEN", default=None, help="With --server: the API token."
    )(command)
    return click.option(
        "--server", default=None, metavar="URL", help="Read the `mn serve` at this URL instead of the store."
    )(command)


def _source(obj: Any, server: str | None, token: str | None) -> Any:
    from ..monitor import open_source

    return open_source(obj.config, server, token)


@click.command("watch")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines instead.")
@server_options
@click.pass_obj
def job_watch(obj: Any, job_id: str, as_json: bool, server: str | None, token: str | None) -> None:
    """Watch a job run, wherever it runs: status, agents by state, traffic, failures.

    Ends when the job does (exit 0 only when it completed); Ctrl-C stops watching, not the job.
    """
    from .watch import watch_command

    watch_command(_source(obj, server, token), job_id, as_json=as_json)


@click.command("logs")
@click.argument("job_id")
@click.argument("agent_id", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new runs until the job ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@server_options
@click.pass_obj
def job_logs(
    obj: Any,
    job_id: str,
    agent_id: str | None,
    follow: bool,
    as_json: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Show the stdout and stderr of a job's executor runs (of AGENT_ID, or of every executor).

    The newest 50 runs of each agent are kept, the last 64 KiB of each stream, secrets masked.
    """
    from .watch import logs_command

    logs_command(_source(obj, server, token), job_id, agent_id, follow=follow, as_json=as_json)


@click.command("graph")
@click.argument("target", metavar="JOB_ID|BUNDLE")
@click.option("--format", "fmt", type=GRAPH_FORMATS, default="json", show_default=True)
@server_options
@click.pass_obj
def job_graph(obj: Any, target: str, fmt: str, server: str | None, token: str | None) -> None:
    """Print the agents and edges of a job or a bundle, as JSON, Graphviz DOT or Mermaid."""
    from .watch import graph_command

    graph_command(obj.config, target, fmt, server=server, token=token)


@click.command("monitor")
@click.argument("job_id", required=False)
@server_options
@click.pass_obj
def monitor(obj: Any, job_id: str | None, server: str | None, token: str | None) -> None:
    """Open the live terminal monitor: every job, then one job's agents, events and logs.

    Keys on a job: p pause, r resume, c cancel, s send a message, d dead letters, f failures
    only, / search events, q quit.
    """
    try:
        from ..monitor.tui import run_monitor
    except ImportError as exc:  # textual is an extra
        raise click.ClickException(
            f"mn monitor needs Textual ({exc.name} is missing): pip install 'mirror-neuron[monitor]'"
        ) from exc
    run_monitor(_source(obj, server, token), job_id)
