"""Output: JSON for machines, Rich tables on a terminal, plain lines otherwise."""

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
            print(f"{key}: {value}")
        print("result: " + _json.dumps_str(result))
        return
    from rich.panel import Panel
    from rich.pretty import Pretty
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    for key, value in lines:
        style = STATUS_STYLE.get(str(value), "") if key == "status" else ""
        table.add_row(f"[bold]{key}[/]", f"[{style}]{value}[/]" if style else str(value))
    table.add_row("[bold]result[/]", Pretty(result, max_depth=3, max_length=12, max_string=200))
    _console().print(Panel(table, title="MirrorNeuron job", expand=False))


def print_jobs(jobs: list[dict[str, Any]]) -> None:
    columns = ("job_id", "status", "graph_id", "updated_at")

    def status(job: dict[str, Any]) -> str:
        ended = job.get("status") in ("completed", "failed", "cancelled")
        return job.get("status", "") if ended or job.get("live") else f"{job.get('status')} (runtime gone)"

    if not is_tty():
        for job in jobs:
            print(
                "\t".join(
                    [job["job_id"], status(job), str(job.get("graph_id", "")), str(job.get("updated_at", ""))]
                )
            )
        return
    from rich.table import Table

    table = Table(title=f"{len(jobs)} job(s)")
    for c in columns:
        table.add_column(c)
    for job in jobs:
        label = status(job)
        table.add_row(
            job["job_id"],
            f"[{STATUS_STYLE.get(job.get('status', ''), '')}]{label}[/]",
            job.get("graph_id", ""),
            job.get("updated_at", ""),
        )
    _console().print(table)


def print_agents(agents: list[dict[str, Any]]) -> None:
    columns = ("agent_id", "agent_type", "status", "processed_messages", "mailbox_depth", "last_error")
    if not is_tty():
        for agent in agents:
            print("\t".join("" if agent.get(c) is None else str(agent.get(c)) for c in columns))
        return
    from rich.table import Table

    table = Table(title=f"{len(agents)} agent(s)")
    for c in columns:
        table.add_column(c.replace("_messages", "").replace("_", " "))
    for agent in agents:
        table.add_row(*(str(agent.get(c) if agent.get(c) is not None else "") for c in columns))
    _console().print(table)


def print_events(events: list[dict[str, Any]]) -> None:
    for ev in events:
        agent = ev.get("agent_id") or ""
        extra = {k: v for k, v in ev.items() if k not in ("type", "job_id", "timestamp", "agent_id", "seq")}
        detail = _short(extra, 100) if extra else ""
        print(f"{ev.get('seq', ''):>6} {ev.get('timestamp')} {ev.get('type')} {agent} {detail}".rstrip())


def print_control(op: str, result: Any) -> None:
    if op == "dead_letters":
        for letter in result:
            message = letter.get("message") or {}
            mtype = message.get("envelope", {}).get("type")
            print(f"{letter['id']:>6} {letter.get('agent_id')} {mtype} {letter.get('reason')}")
        return
    if isinstance(result, dict):
        print(" ".join(f"{k}={v}" for k, v in result.items() if not isinstance(v, (list, dict))))
        return
    print(_json.dumps_str(result))


def print_nodes(nodes: list[dict[str, Any]]) -> None:
    """One line per pool: ``node pool in_use/capacity free queued`` (the original's ``2/4 free q=1``)."""
    for node in nodes:
        label = node["name"] if node.get("pid") else f"{node['name']} (no runtime running; configured pools)"
        print(f"{label}  jobs={len(node.get('jobs') or [])}")
        for pool, s in sorted(node.get("executor_pools", {}).items()):
            print(f"  {pool:<16} {s['available']}/{s['capacity']} free  in_use={s['in_use']} q={s['queued']}")
