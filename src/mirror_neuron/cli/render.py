"""Output: JSON for machines, Rich tables on a terminal, plain lines otherwise.

Job records, events and agent views carry text that untrusted parties wrote (scripts'
event payloads, a server's answers, submitted manifests). Every human-facing line goes
through :func:`clean` first, so that text cannot send escape sequences to the terminal
(an OSC sequence in an event payload once set the terminal's title) or reorder a line
with bidi controls; Rich cells get :class:`rich.text.Text`, never markup, for the same
reason (``[link=…]`` markup would emit an OSC 8 hyperlink). ``--json`` output is JSON,
escaped by the encoder, and left byte for byte as it was.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .. import _json, _text
from .._text import UNSAFE_CODEPOINTS as UNSAFE_CODEPOINTS  # what clean drops

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "paused": "magenta",
    "pending": "white",
}


def clean(value: Any, *, one_line: bool = False) -> str:
    """``value`` as text that is safe to write to a terminal (see :data:`UNSAFE_CODEPOINTS`).

    With ``one_line``, tabs and newlines become spaces too. ``None`` is empty text.
    """
    return _text.clean(value, one_line=one_line)


def clean_tree(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys too) passed through :func:`clean`."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    return value


_stdout_gone = False


@contextmanager
def stdout_guard() -> Iterator[None]:
    """Writes to stdout whose reader may have gone (``mn run --json | head -c 1``).

    A broken pipe is no failure of the command: the rest of its output goes to /dev/null
    (so Python's flush at exit does not report it either, see the "Note on SIGPIPE" in
    the docs of :mod:`signal`) and the command ends with its own exit status.
    """
    try:
        yield
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Send whatever stdout still gets to /dev/null: its reader has gone."""
    global _stdout_gone
    _stdout_gone = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def stdout_gone() -> bool:
    """True once stdout's reader has gone (output since goes to /dev/null)."""
    return _stdout_gone


def echo(line: Any = "", *, err: bool = False, one_line: bool = False) -> None:
    """Print human-facing text that may hold untrusted parts, cleaned (see :func:`clean`)."""
    if err:
        print(clean(line, one_line=one_line), file=sys.stderr)
        return
    with stdout_guard():
        print(clean(line, one_line=one_line))


def cell(value: Any, style: str = "") -> Any:
    """A Rich table cell of untrusted text: a ``Text`` (never parsed as markup), cleaned."""
    from rich.text import Text

    return Text(clean(value, one_line=True), style=style)


def is_tty() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any) -> None:
    with stdout_guard():
        sys.stdout.buffer.write(_json.dumps_pretty(value) + b"\n")
        sys.stdout.flush()


def print_json_line(value: Any) -> None:
    """One compact JSON object per line, flushed (a stream that can be piped as it grows)."""
    with stdout_guard():
        sys.stdout.buffer.write(_json.dumps(value) + b"\n")
        sys.stdout.flush()


def _console() -> Any:
    from rich.console import Console

    return Console()


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else _json.dumps_str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def elapsed(record: dict[str, Any]) -> str | None:
    """How long the job took, ``submitted_at`` to ``updated_at`` (``1.234s``, ``2m05.0s``,
    ``1h02m03.0s``); ``None`` when either time is missing or not an ISO-8601 time."""
    try:
        start = datetime.fromisoformat(str(record["submitted_at"]))
        seconds = (datetime.fromisoformat(str(record["updated_at"])) - start).total_seconds()
    except (KeyError, ValueError, TypeError):  # TypeError: one time with a zone, one without
        return None
    if seconds < 0:
        return None
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{rest:04.1f}s" if hours else f"{minutes}m{rest:04.1f}s"


def print_job_summary(record: dict[str, Any], events: int | None = None) -> None:
    """A job record for people; ``events`` (how many the job wrote) is shown when the caller knows it."""
    status = record.get("status", "?")
    lines = [
        ("job", record.get("job_id")),
        ("status", _job_status(record)),
        ("graph", record.get("graph_id")),
        ("submitted", record.get("submitted_at")),
        ("updated", record.get("updated_at")),
    ]
    if record.get("node"):  # who owns (or last owned) it; the epoch grows with every claim
        epoch = record.get("lease_epoch")
        lines.append(("node", f"{record['node']}" + (f" (lease epoch {epoch})" if epoch else "")))
    for why in ("orphaned", "stalled"):  # a live job that is not moving: why, and the way out
        detail = record.get(why)
        if detail:
            lines.append((why, detail.get("reason") if isinstance(detail, dict) else detail))
    took = elapsed(record)
    if took is not None:
        lines.append(("elapsed", took))
    if events is not None:
        lines.append(("events", events))
    result = record.get("result")
    if not is_tty():
        for key, value in lines:
            echo(f"{key}: {value}", one_line=True)
        echo("result: " + _json.dumps_str(result))
        return
    from rich.panel import Panel
    from rich.pretty import Pretty
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    for key, value in lines:
        style = STATUS_STYLE.get(str(status), "") if key == "status" else ""
        table.add_row(f"[bold]{key}[/]", cell(value, style))
    table.add_row("[bold]result[/]", Pretty(clean_tree(result), max_depth=3, max_length=12, max_string=200))
    _console().print(Panel(table, title="MirrorNeuron job", expand=False))


def _job_status(job: dict[str, Any]) -> str:
    """The status, and why a live job is not moving: its runtime is gone, or it is stalled."""
    status = str(job.get("status", ""))
    if job.get("orphaned"):
        return status if status == "suspended" else f"{status} (runtime gone)"
    return f"{status} (stalled)" if job.get("stalled") else status


def print_jobs(jobs: list[dict[str, Any]]) -> None:
    """A table on a terminal, else one tab-separated line per job; ids are never shortened."""
    columns = ("job_id", "status", "graph_id", "updated_at")
    if not is_tty():
        for job in jobs:
            fields = (job["job_id"], _job_status(job), job.get("graph_id", ""), job.get("updated_at", ""))
            echo("\t".join(clean(f, one_line=True) for f in fields))
        if not jobs:
            echo("no jobs", err=True)
        return
    from rich.table import Table

    console = _console()
    table = Table(title=f"{len(jobs)} job(s)")
    # An id is what people copy into the next command: never cut short ("…"), on one line when
    # the terminal leaves room beside the other columns (about 60 wide), else folded.
    widest = max((len(clean(job["job_id"], one_line=True)) for job in jobs), default=6)
    table.add_column(columns[0], overflow="fold", min_width=min(widest, max(console.width - 64, 16)))
    for c in columns[1:]:
        table.add_column(c, overflow="fold")
    for job in jobs:
        table.add_row(
            cell(job["job_id"]),
            cell(_job_status(job), STATUS_STYLE.get(str(job.get("status", "")), "")),
            cell(job.get("graph_id", "")),
            cell(job.get("updated_at", "")),
        )
    console.print(table)


def print_agents(agents: list[dict[str, Any]]) -> None:
    columns = ("agent_id", "agent_type", "status", "processed_messages", "mailbox_depth", "last_error")
    if not is_tty():
        for agent in agents:
            echo("\t".join(clean(agent.get(c), one_line=True) for c in columns))
        return
    from rich.table import Table

    table = Table(title=f"{len(agents)} agent(s)")
    for c in columns:
        table.add_column(c.replace("_messages", "").replace("_", " "))
    for agent in agents:
        table.add_row(*(cell(agent.get(c)) for c in columns))
    _console().print(table)


def event_line(ev: dict[str, Any]) -> str:
    """One event as one cleaned line: ``seq timestamp type agent {details}``."""
    agent = ev.get("agent_id") or ""
    extra = {k: v for k, v in ev.items() if k not in ("type", "job_id", "timestamp", "agent_id", "seq")}
    detail = _short(extra, 100) if extra else ""
    line = f"{ev.get('seq', ''):>6} {ev.get('timestamp')} {ev.get('type')} {agent} {detail}"
    return clean(line, one_line=True).rstrip()


def print_events(events: list[dict[str, Any]]) -> None:
    with stdout_guard():
        for ev in events:
            print(event_line(ev))  # already clean


def print_control(op: str, result: Any) -> None:
    if op == "dead_letters":
        for letter in result:
            message = letter.get("message") or {}
            mtype = message.get("envelope", {}).get("type")
            echo(f"{letter['id']:>6} {letter.get('agent_id')} {mtype} {letter.get('reason')}", one_line=True)
        return
    if isinstance(result, dict):
        pairs = (f"{k}={v}" for k, v in result.items() if not isinstance(v, list | dict))
        echo(" ".join(clean(pair, one_line=True) for pair in pairs))
        return
    echo(_json.dumps_str(result))


def print_nodes(nodes: list[dict[str, Any]]) -> None:
    """A line per node (its role, state, address and load), then one per pool:
    ``pool available/capacity free in_use q`` (the original's ``2/4 free q=1``)."""
    for node in nodes:
        jobs = node.get("jobs")
        count = len(jobs) if isinstance(jobs, list) else int(jobs or 0)
        if node.get("cluster"):
            state = "draining" if node.get("drain") or node.get("draining") else None
            state = state or (
                "alive" if node.get("alive") else f"dead (seen {node.get('seen_ago', 0):.0f}s ago)"
            )
            label = (
                f"{node['name']}  {node.get('role', 'runtime')}  {state}  {node.get('address') or '-'}  "
                f"v{node.get('version', '?')}  agents={node.get('agents', 0)}"
            )
        elif node.get("pid"):
            label = f"{node['name']}  (local runtime, not a cluster node)"
        else:
            label = f"{node['name']} (no runtime running; configured pools)"
        echo(f"{label}  jobs={count}", one_line=True)
        for pool, s in sorted((node.get("executor_pools") or {}).items()):
            echo(f"  {pool:<16} {s['available']}/{s['capacity']} free  in_use={s['in_use']} q={s['queued']}")
