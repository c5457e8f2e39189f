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

import sys
from typing import Any

from .. import _json

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "paused": "magenta",
    "pending": "white",
}

#: Code points dropped from untrusted text: C0 controls but tab and newline (ESC starts
#: escape sequences, CR rewrites the line), DEL, C1 controls (U+009B is a one-character
#: CSI on some terminals), and the bidi marks, embeddings, overrides and isolates
#: (U+061C, U+200E/F, U+202A to U+202E, U+2066 to U+2069), which reorder what a line shows.
UNSAFE_CODEPOINTS = (
    *range(0x00, 0x09),
    *range(0x0B, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_DROP: dict[int, str | None] = dict.fromkeys(UNSAFE_CODEPOINTS)
#: For one-line fields (table cells, event lines): a newline must not forge another line.
_DROP_ONE_LINE: dict[int, str | None] = {**_DROP, 0x09: " ", 0x0A: " "}


def clean(value: Any, *, one_line: bool = False) -> str:
    """``value`` as text that is safe to write to a terminal (see :data:`UNSAFE_CODEPOINTS`).

    With ``one_line``, tabs and newlines become spaces too. ``None`` is empty text.
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return text.translate(_DROP_ONE_LINE if one_line else _DROP)


def clean_tree(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys too) passed through :func:`clean`."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    return value


def echo(line: Any = "", *, err: bool = False, one_line: bool = False) -> None:
    """Print human-facing text that may hold untrusted parts, cleaned (see :func:`clean`)."""
    print(clean(line, one_line=one_line), file=sys.stderr if err else sys.stdout)


def cell(value: Any, style: str = "") -> Any:
    """A Rich table cell of untrusted text: a ``Text`` (never parsed as markup), cleaned."""
    from rich.text import Text

    return Text(clean(value, one_line=True), style=style)


def is_tty() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(_json.dumps_pretty(value) + b"\n")
    sys.stdout.flush()


def _console() -> Any:
    from rich.console import Console

    return Console()


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else _json.dumps_str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_job_summary(record: dict[str, Any]) -> None:
    status = record.get("status", "?")
    lines = [
        ("job", record.get("job_id")),
        ("status", status),
        ("graph", record.get("graph_id")),
        ("submitted", record.get("submitted_at")),
        ("updated", record.get("updated_at")),
    ]
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
        style = STATUS_STYLE.get(str(value), "") if key == "status" else ""
        table.add_row(f"[bold]{key}[/]", cell(value, style))
    table.add_row("[bold]result[/]", Pretty(clean_tree(result), max_depth=3, max_length=12, max_string=200))
    _console().print(Panel(table, title="MirrorNeuron job", expand=False))


def _job_status(job: dict[str, Any]) -> str:
    ended = job.get("status") in ("completed", "failed", "cancelled")
    return str(job.get("status", "")) if ended or job.get("live") else f"{job.get('status')} (runtime gone)"


def print_jobs(jobs: list[dict[str, Any]]) -> None:
    columns = ("job_id", "status", "graph_id", "updated_at")
    if not is_tty():
        for job in jobs:
            fields = (job["job_id"], _job_status(job), job.get("graph_id", ""), job.get("updated_at", ""))
            echo("\t".join(clean(f, one_line=True) for f in fields))
        return
    from rich.table import Table

    table = Table(title=f"{len(jobs)} job(s)")
    for c in columns:
        table.add_column(c)
    for job in jobs:
        table.add_row(
            cell(job["job_id"]),
            cell(_job_status(job), STATUS_STYLE.get(str(job.get("status", "")), "")),
            cell(job.get("graph_id", "")),
            cell(job.get("updated_at", "")),
        )
    _console().print(table)


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
    """One line per pool: ``node pool in_use/capacity free queued`` (the original's ``2/4 free q=1``)."""
    for node in nodes:
        label = node["name"] if node.get("pid") else f"{node['name']} (no runtime running; configured pools)"
        echo(f"{label}  jobs={len(node.get('jobs') or [])}", one_line=True)
        for pool, s in sorted(node.get("executor_pools", {}).items()):
            echo(f"  {pool:<16} {s['available']}/{s['capacity']} free  in_use={s['in_use']} q={s['queued']}")
