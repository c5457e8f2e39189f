"""What ``mn monitor`` writes in its cells, lines and panes: safe, short, coloured text.

Rich renderables only (no Textual), so it is cheap to test. Every text
from a job (ids, errors, event fields, logs) is untrusted: it is cleaned of terminal controls
and wrapped in a :class:`~rich.text.Text`, never parsed as markup; where Textual insists on
markup (border titles), it is escaped (:func:`title`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from .. import _json, _text
from .._time import epoch

#: Job and agent states → style.
STATUS_STYLE = {
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "running": "cyan",
    "paused": "magenta",
    "suspended": "magenta",
    "pending": "white",
    "idle": "bright_black",
    "initializing": "bright_black",
    "stopping": "yellow",
    "stopped": "yellow",
}
#: Event types drawn in red / yellow in the event log.
BAD_EVENTS = frozenset({"job_failed", "agent_failed", "dead_letter", "sandbox_job_failed", "queue_overflow"})
WARN_EVENTS = frozenset({"job_paused", "job_cancelled", "job_stalled", "job_suspended", "agent_restarted"})
#: Event fields the event log leaves out of an event's details (they have columns).
_SHOWN = frozenset({"type", "job_id", "timestamp", "seq", "agent_id"})


def later(work: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Coroutine[Any, Any, Any]]:
    """``work(*args)`` as an async function of no arguments, for a Textual worker: its coroutine
    is made when the worker starts (a worker cancelled before that leaves none behind)."""

    async def run() -> None:
        await work(*args)

    return run


def clean(value: Any, *, one_line: bool = True, limit: int | None = None) -> str:
    """``value`` as text safe for a terminal (:func:`mirror_neuron._text.clean`), on one line
    unless ``one_line`` is false, cut to ``limit`` characters."""
    return _text.clean(value, one_line=one_line, limit=limit)


def title(value: Any, *, limit: int | None = None) -> str:
    """Untrusted text for a place Textual reads as markup (border titles, the sub-title):
    cleaned and every ``[`` escaped, so an agent id like ``x[b=$]`` (or a half-typed ``[/``
    put inside a longer title) is shown, not parsed."""
    return clean(value, limit=limit).replace("[", "\\[")


def text(value: Any, style: str = "", *, limit: int | None = None) -> Text:
    """One line of untrusted text, styled (never markup)."""
    return Text(clean(value, limit=limit), style=style)


def status_text(status: Any) -> Text:
    return text(status, STATUS_STYLE.get(str(status), ""))


def compact(value: Any, limit: int = 200) -> str:
    """A value as one line of JSON (cut to ``limit``)."""
    try:
        dumped = value if isinstance(value, str) else _json.dumps_str(value)
    except TypeError:
        dumped = repr(value)
    return clean(dumped, limit=limit)


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m 05s``, ``2h 07m``, ``3d 04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def ago(stamp: Any, now: float) -> str:
    """How long ago ``stamp`` was (``-`` when unknown)."""
    then = epoch(stamp)
    return "-" if then is None else duration(now - then)


def clock_time(stamp: Any) -> str:
    """The ``HH:MM:SS.mmm`` of an ISO stamp (UTC, as stored)."""
    text_ = str(stamp or "")
    return clean(text_[11:23] if len(text_) >= 23 and text_[10] == "T" else text_, limit=12)


def job_note(record: dict[str, Any], limit: int = 80) -> Text:
    """What matters about a job beyond its status: why it failed, whether its runtime is gone,
    what it waits for (cut to ``limit``)."""
    result = record.get("result")
    if record.get("status") == "failed":
        error = result.get("error") if isinstance(result, dict) else None
        agent = result.get("agent_id") if isinstance(result, dict) else None
        reason = f"{agent}: {error}" if agent and error else error or record.get("error") or "failed"
        return text(reason, "red", limit=limit)
    if record.get("orphaned"):
        return text(f"orphaned: {record['orphaned']}", "yellow", limit=limit)
    stalled = record.get("stalled")
    if isinstance(stalled, dict) and record.get("status") not in ("completed", "cancelled"):
        return text(f"stalled: {stalled.get('reason', '')}", "bright_black", limit=limit)
    return Text("")


def event_details(event: dict[str, Any], limit: int = 160) -> str:
    """An event's own fields in one line: a received message's type and sender, a reason or
    error as such, else the rest as JSON."""
    payload = event.get("payload")
    if event.get("type") == "agent_message_received" and isinstance(payload, dict):
        return clean(f"{payload.get('type')} from {payload.get('from')}", limit=limit)
    for key in ("reason", "error"):
        if event.get(key):
            return clean(event[key], limit=limit)
    rest = {k: v for k, v in event.items() if k not in _SHOWN and k != "payload"}
    if isinstance(payload, dict):
        rest = {**payload, **rest}  # an event's payload is its own fields, not another level
    elif payload is not None:
        rest["payload"] = payload
    return compact(rest, limit) if rest else ""


def event_line(event: dict[str, Any]) -> Text:
    """``seq  time  type  agent  details`` of one event."""
    kind = str(event.get("type", "?"))
    style = "red" if kind in BAD_EVENTS else "yellow" if kind in WARN_EVENTS else "cyan"
    line = Text()
    line.append(f"{event.get('seq', ''):>6} ", "bright_black")
    line.append(f"{clock_time(event.get('timestamp'))} ", "bright_black")
    line.append(f"{clean(kind, limit=24):<24} ", style)
    line.append(f"{clean(event.get('agent_id') or '', limit=16):<16} ", "bold")
    line.append(event_details(event))
    return line


def run_lines(run: dict[str, Any], *, tail: int | None = None) -> RenderableType:
    """One executor run: its outcome line, then its stdout and stderr (their last ``tail``
    lines when given)."""
    ok = bool(run.get("ok"))
    head = Text()
    head.append(f"run #{run.get('invocation')} ", "bold")
    head.append("ok" if ok else "failed", "green" if ok else "bold red")
    head.append(f"  exit {clean(run.get('exit_code'))}")
    if isinstance(run.get("duration_ms"), int | float):
        head.append(f"  {run['duration_ms']:g} ms")
    if run.get("finished_at"):
        head.append(f"  {clock_time(run['finished_at'])}", "bright_black")
    parts: list[RenderableType] = [head]
    if run.get("error"):
        parts.append(text(f"error: {run['error']}", "red"))
    for stream in ("stdout", "stderr"):
        body = clean(run.get(stream) or "", one_line=False).rstrip("\n")
        if not body:
            continue
        lines = body.split("\n")
        cut = run.get(f"{stream}_truncated") or (tail is not None and len(lines) > tail)
        shown = lines[-tail:] if tail is not None else lines
        parts.append(Text(f"-- {stream}{' (its end)' if cut else ''}", "bright_black"))
        parts.append(Text("\n".join(shown), "red" if stream == "stderr" else ""))
    return Group(*parts)


def _envelope(letter: dict[str, Any]) -> dict[str, Any]:
    message = letter.get("message")
    envelope = message.get("envelope") if isinstance(message, dict) else None
    return envelope if isinstance(envelope, dict) else {}


def letter_sender(letter: dict[str, Any]) -> Any:
    """The agent that sent a dead letter."""
    return _envelope(letter).get("from")


def letter_type(letter: dict[str, Any]) -> Any:
    return _envelope(letter).get("type")


def involves(letter: dict[str, Any], agent_id: str) -> bool:
    """Whether ``agent_id`` sent the dead letter or was meant to get it (a dead letter is kept
    under the agent it was for, often one the job lacks: its sender is the one to look at)."""
    return agent_id in (letter.get("agent_id"), letter_sender(letter))


def message_lines(message: Any) -> list[Text]:
    """A message in two lines: its type, sender and id, then its body as JSON."""
    if not message:
        return [Text("nothing", "bright_black")]
    envelope = message.get("envelope") if isinstance(message, dict) else None
    if not isinstance(envelope, dict):
        return [Text(compact(message, 600))]
    head = Text(clean(envelope.get("type"), limit=40), "bold")
    head.append(f" from {clean(envelope.get('from'), limit=40)}")
    if envelope.get("message_id"):
        head.append(f" · {clean(envelope['message_id'], limit=40)}", "bright_black")
    return [head, Text(compact(message.get("body"), 600))]


def agent_detail(
    row: Any,
    view: dict[str, Any] | None,
    letters: list[dict[str, Any]] | None,
    runs: list[dict[str, Any]] | None,
    error: str | None = None,
) -> RenderableType:
    """The detail pane: an :class:`~.state.AgentRow`'s state, then what was fetched of it
    (``None``: not yet): its in-flight message, its dead letters, its last executor runs."""
    head = Text()
    head.append(clean(row.agent_id, limit=60), "bold")
    head.append(f"  {clean(row.agent_type, limit=20)}  ", "bright_black")
    head.append_text(status_text(row.status))
    stats = Text(f"mailbox {row.mailbox_depth} · processed {row.processed}")
    if view is not None and view.get("restarts"):
        stats.append(f" · restarts {view['restarts']}", "yellow")
    parts: list[RenderableType] = [head, stats]
    if row.last_error:
        parts.append(text(f"last error: {row.last_error}", "red", limit=400))
    if error is not None:
        parts.append(text(f"could not read the agent's details: {error}", "red"))
    if view is not None:
        parts.append(Text("\nin flight", "bold underline"))
        parts.extend(message_lines(view.get("inflight_message")))
    if letters is not None:
        parts.append(Text(f"\ndead letters ({len(letters)})", "bold underline"))
        for letter in letters[-5:]:
            line = Text(f"#{letter.get('id')} ", "bold")
            line.append(
                f"{clean(letter_sender(letter), limit=30)} → {clean(letter.get('agent_id'), limit=30)} "
            )
            line.append(clean(letter.get("reason"), limit=120), "red")
            parts.append(line)
        if len(letters) > 5:
            parts.append(Text(f"… {len(letters) - 5} more: press d", "bright_black"))
    if runs is not None:
        order = ", newest first" if len(runs) > 1 else ""
        parts.append(Text(f"\nexecutor runs ({len(runs)}{order})", "bold underline"))
        if not runs:
            parts.append(Text("none", "bright_black"))
        for run in reversed(runs[-3:]):  # the newest first
            parts.append(run_lines(run, tail=12))
        if len(runs) > 3:
            parts.append(Text(f"… {len(runs) - 3} earlier run(s): press l", "bright_black"))
    return Group(*parts)
