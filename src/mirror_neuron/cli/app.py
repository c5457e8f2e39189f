"""Command registration. Handlers stay short: parse, call the library, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import Config, choose_store
from .monitoring import job_graph, job_logs, job_watch, monitor

#: A number of seconds that must be more than 0 (``--timeout -1`` is a usage error, exit 2).
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
YES = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
#: The options of a command that hosts a job here until it ends (``run``, ``job recover``).
HOSTING = (
    click.option(
        "--json", "as_json", is_flag=True, help="Print exactly one JSON object: the terminal job record."
    ),
    click.option(
        "--timeout",
        type=POSITIVE_SECONDS,
        default=None,
        help="Fail the job if it has not ended after this many seconds.",
    ),
    click.option(
        "--idle-timeout",
        type=POSITIVE_SECONDS,
        default=None,
        help="Fail the job once it has been stalled this many seconds (nothing queued, nothing running).",
    ),
)
F = TypeVar("F", bound=Callable[..., Any])


def hosting_options(command: F) -> F:
    """Add :data:`HOSTING`, in the order ``--help`` lists them."""
    for option in reversed(HOSTING):
        command = option(command)
    return command


class Context:
    """Options shared by every command (store location)."""

    def __init__(self, store: str | None, data_dir: str | None) -> None:
        # The environment variables are read by choose_store, the precedence Config.from_env uses too.
        self.store = choose_store(store, data_dir)
        self.config = Config.from_env(store_url=self.store.url, data_dir=self.store.data_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    metavar="URL",
    help="Store URL: sqlite:///path.db, redis://host:port/db, memory://. The store is the first "
    "of: --store, $MIRROR_NEURON_STORE_URL, $MIRROR_NEURON_REDIS_URL, SQLite in the data dir.",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Where the default SQLite store lives (else $MIRROR_NEURON_DATA_DIR, else the user data "
    "dir); used only when no store URL is given.",
)
@click.version_option(package_name="mirror-neuron", prog_name="mn")
@click.pass_context
def cli(ctx: click.Context, store: str | None, data_dir: str | None) -> None:
    """MirrorNeuron: run message-driven multi-agent workflows from job bundles."""
    ctx.obj = Context(store, data_dir)


@cli.command()
@click.argument("bundle")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--strict", is_flag=True, help="Treat the bundle's warnings (unknown keys) as errors.")
@click.option(
    "--graph",
    "graph",
    type=click.Choice(["json", "dot", "mermaid"]),
    default=None,
    help="Print the bundle's graph in this format instead of the summary.",
)
@click.pass_obj
def validate(obj: Context, bundle: str, as_json: bool, strict: bool, graph: str | None) -> None:
    """Check a job bundle without running it."""
    from .commands import validate_command

    if graph is not None and as_json:
        raise click.UsageError("--graph prints the graph instead of the summary: use one of --graph, --json")

    validate_command(obj.config, bundle, as_json, strict=strict, graph=graph)


@cli.command()
@click.argument("bundle")
@hosting_options
@click.option("--no-wait", is_flag=True, help="Start the job in a background process and print its id.")
@click.option("--job-id", hidden=True, default=None)
@click.option("--server", "server", default=None, help="Run the job in the `mn serve` at this URL.")
@click.option("--token", envvar="MIRROR_NEURON_API_TOKEN", default=None, help="With --server: the API token.")
@click.option(
    "--node", "pin", default=None, metavar="NAME", help="With --server: run on this node of the cluster."
)
@click.pass_obj
def run(
    obj: Context,
    bundle: str,
    as_json: bool,
    timeout: float | None,
    idle_timeout: float | None,
    no_wait: bool,
    job_id: str | None,
    server: str | None,
    token: str | None,
    pin: str | None,
) -> None:
    """Run a job bundle and wait for it to end (exit 0 only when it completed)."""
    if server:
        from .commands import remote_run_command

        if idle_timeout is not None:
            raise click.UsageError("--idle-timeout applies to jobs run here, not with --server")
        remote_run_command(server, token, bundle, as_json=as_json, timeout=timeout, no_wait=no_wait, node=pin)
        return
    if pin is not None:
        raise click.UsageError("--node places a job on a node of a cluster: use it with --server URL")
    from .commands import run_command

    run_command(
        obj.config,
        bundle,
        as_json=as_json,
        timeout=timeout,
        no_wait=no_wait,
        job_id=job_id,
        idle_timeout=idle_timeout,
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=4000,
    show_default=True,
    envvar="MIRROR_NEURON_API_PORT",
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--token",
    envvar="MIRROR_NEURON_API_TOKEN",
    default=None,
    help="Bearer token every request must carry (required off loopback; prefer the env variable).",
)
@click.option("--store", "store_url", default=None, help="Store URL (overrides the global --store).")
@click.option(
    "--node-name",
    default=None,
    envvar="MIRROR_NEURON_NODE_NAME",
    help="This node's name in the cluster, unique on the store  [default: <host>:<pid>].",
)
@click.option(
    "--role",
    type=click.Choice(["runtime", "control"]),
    default="runtime",
    show_default=True,
    help="runtime: hosts jobs; control: hosts none, places every job on a runtime node.",
)
@click.option(
    "--sweep-interval",
    type=POSITIVE_SECONDS,
    default=2.0,
    show_default=True,
    envvar="MIRROR_NEURON_SWEEP_INTERVAL",
    help="Seconds between looks for jobs whose node died (their lease, MIRROR_NEURON_LEASE_TTL, expired).",
)
@click.option(
    "--advertise",
    default=None,
    metavar="URL",
    help="Where the other nodes reach this one  [default: http://<host>:<port>].",
)
@click.option(
    "--allow-host-local",
    is_flag=True,
    help='Let submitted bundles run executors without the sandbox (runner: "host_local").',
)
@click.option(
    "--allow-openshell",
    is_flag=True,
    help='Let submitted bundles hand executors to the OpenShell CLI (runner: "openshell").',
)
@click.option(
    "--allow-network",
    is_flag=True,
    help="Let submitted sandboxes have a network (network: true); never this host's loopback or LAN.",
)
@click.option(
    "--pass-env",
    "pass_env",
    multiple=True,
    metavar="NAME",
    help="A variable of this server's environment that bundles may read with pass_env (repeatable).",
)
@click.option(
    "--max-run-seconds",
    type=POSITIVE_SECONDS,
    default=None,
    help="Longest one executor run of a submitted bundle may take  [default: 3600].",
)
@click.pass_obj
def serve(
    obj: Context,
    host: str,
    port: int,
    token: str | None,
    store_url: str | None,
    node_name: str | None,
    role: str,
    advertise: str | None,
    sweep_interval: float,
    allow_host_local: bool,
    allow_openshell: bool,
    allow_network: bool,
    pass_env: tuple[str, ...],
    max_run_seconds: float | None,
) -> None:
    """Host jobs in this process behind the REST API at /api/v1 (docs at /docs).

    Submitted bundles run sandboxed, without network and without any of this server's
    environment unless the --allow-* and --pass-env options say otherwise.
    """
    from .commands import serve_command

    serve_command(
        obj.config,
        host=host,
        port=port,
        token=token,
        store_url=store_url,
        node_name=node_name,
        role=role,
        advertise=advertise,
        sweep_interval=sweep_interval,
        allow_host_local=allow_host_local,
        allow_openshell=allow_openshell,
        allow_network=allow_network,
        pass_env=pass_env,
        max_run_seconds=max_run_seconds,
    )


@cli.group()
def job() -> None:
    """Inspect and control jobs (also ones run by other processes).

    JOB_ID may be shortened to any prefix that only one job id starts with.
    """


@job.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--live", is_flag=True, help="Only jobs that have not ended.")
@click.pass_obj
def job_list(obj: Context, as_json: bool, limit: int, live: bool) -> None:
    """List jobs, most recently updated first."""
    from .commands import list_command

    list_command(obj.config, as_json=as_json, limit=limit, live=live)


@job.command("inspect")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_inspect(obj: Context, job_id: str, as_json: bool) -> None:
    """Show a job record."""
    from .commands import inspect_command

    inspect_command(obj.config, job_id, as_json=as_json)


@job.command("agents")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_agents(obj: Context, job_id: str, as_json: bool) -> None:
    """Show a job's agents."""
    from .commands import agents_command

    agents_command(obj.config, job_id, as_json=as_json)


@job.command("events")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--after", type=click.IntRange(min=0), default=0, help="Only events after this sequence number."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many events.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until the job ends.")
@click.pass_obj
def job_events(obj: Context, job_id: str, as_json: bool, after: int, limit: int | None, follow: bool) -> None:
    """Show a job's events, oldest first."""
    from .commands import events_command, follow_command

    if follow:
        follow_command(obj.config, job_id, as_json=as_json, after=after)
    else:
        events_command(obj.config, job_id, as_json=as_json, after=after, limit=limit)


def _control(
    obj: Context, op: str, *args: object, as_json: bool, confirm: bool = False, **kwargs: object
) -> None:
    from .commands import control_command

    control_command(obj.config, op, *args, as_json=as_json, confirm=confirm, **kwargs)


@job.command("pause")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_pause(obj: Context, job_id: str, as_json: bool) -> None:
    """Pause a running job (agents stop after their current message)."""
    _control(obj, "pause", job_id, as_json=as_json)


@job.command("resume")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_resume(obj: Context, job_id: str, as_json: bool) -> None:
    """Resume a paused job (each agent works off its backlog in order)."""
    _control(obj, "resume", job_id, as_json=as_json)


@job.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@YES
@click.pass_obj
def job_cancel(obj: Context, job_id: str, as_json: bool, yes: bool) -> None:
    """Cancel a running or paused job (running scripts are killed); asks first on a terminal."""
    _control(obj, "cancel", job_id, as_json=as_json, confirm=not yes)


@job.command("send")
@click.argument("job_id")
@click.argument("agent_id")
@click.argument("message")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_send(obj: Context, job_id: str, agent_id: str, message: str, as_json: bool) -> None:
    """Send MESSAGE (a JSON object, flat or envelope form; @file reads a file) to one agent."""
    _control(obj, "send", job_id, agent_id, message, as_json=as_json)


@job.command("dead-letters")
@click.argument("job_id")
@click.option(
    "--redrive", "redrive", type=click.IntRange(min=1), default=None, help="Deliver this dead letter again."
)
@click.option("--to", "agent_id", default=None, help="With --redrive: deliver to this agent instead.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def job_dead_letters(
    obj: Context, job_id: str, redrive: int | None, agent_id: str | None, as_json: bool
) -> None:
    """List a job's dead letters, or re-drive one."""
    if redrive is None:
        _control(obj, "dead_letters", job_id, as_json=as_json)
    else:
        _control(obj, "redrive", job_id, redrive, agent_id, as_json=as_json)


@job.command("cleanup")
@click.option("--all", "all_jobs", is_flag=True, help="Delete every job, not only ended ones.")
@click.option("--json", "as_json", is_flag=True)
@YES
@click.pass_obj
def job_cleanup(obj: Context, all_jobs: bool, as_json: bool, yes: bool) -> None:
    """Delete ended jobs and their events and snapshots; asks first on a terminal."""
    _control(obj, "cleanup", as_json=as_json, confirm=not yes, all=all_jobs)


job.add_command(job_watch)
job.add_command(job_logs)
job.add_command(job_graph)
cli.add_command(monitor)


@cli.group()
def node() -> None:
    """The nodes of the cluster (mn serve processes on the store) and this machine's runtimes."""


@node.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def node_list(obj: Context, as_json: bool) -> None:
    """List the cluster's nodes (alive or lately dead) and local runtimes, with their executor pools."""
    from .cluster import node_list_command

    node_list_command(obj.config, as_json=as_json)


@node.command("drain")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def node_drain(obj: Context, name: str, as_json: bool) -> None:
    """Move a node's jobs to the other nodes (suspend, release, claimed elsewhere) and take no new ones."""
    from .cluster import node_drain_command

    node_drain_command(obj.config, name, as_json=as_json)


@job.command("recover")
@click.argument("job_id")
@hosting_options
@click.pass_obj
def job_recover(
    obj: Context, job_id: str, as_json: bool, timeout: float | None, idle_timeout: float | None
) -> None:
    """Resume a job whose runtime died, from its last committed state, and wait for it."""
    from .commands import recover_command

    recover_command(obj.config, job_id, as_json=as_json, timeout=timeout, idle_timeout=idle_timeout)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def doctor(obj: Context, as_json: bool) -> None:
    """Check the store, the sandbox and Python, and say what to fix."""
    from .commands import doctor_command

    doctor_command(obj.config, as_json=as_json, source=obj.store.source)
