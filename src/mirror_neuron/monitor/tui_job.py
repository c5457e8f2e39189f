"""``mn monitor``'s job screen: header, agents, the selected agent's details, the event log.

A worker follows the job's :data:`~.source.Update` stream into a :class:`JobView`; the
widgets are redrawn from it at most :data:`FPS` times a second, and only what changed:
agent rows are updated in place by key, new events appended to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, RichLog, Static

from .source import Source
from .state import EVENT_LOG, TERMINAL, AgentRow, JobView
from .tui_agents import AgentRows
from .tui_controls import JobControls
from .tui_format import (
    STATUS_STYLE,
    agent_detail,
    clean,
    duration,
    event_line,
    involves,
    later,
    status_text,
    text,
    title,
)

#: Redraws per second at most.
FPS = 10
#: Events read at start (the newest), and drawn in the log at once.
EVENT_PAGE = 1000
LOG_LINES = 500
#: Seconds before a broken stream is followed again (doubling up to the maximum).
RETRY = 1.0
MAX_RETRY = 30.0
#: Events after which the selected agent's details (in-flight message, dead letters, runs) change.
DETAIL_EVENTS = frozenset({"dead_letter", "sandbox_job_completed", "sandbox_job_failed", "agent_failed"})


def matches(event: dict[str, Any], needle: str) -> bool:
    """What :meth:`JobView.events_matching` keeps: the type or agent contains ``needle``."""
    return not needle or needle in f"{event.get('type', '')} {event.get('agent_id', '')}".lower()


def log_text(events: list[dict[str, Any]]) -> Text:
    """Event lines as one text (one write to the log, however many)."""
    return Text("\n").join(event_line(event) for event in events)


class JobScreen(JobControls):
    """One job, live; its keys run the actions of :class:`JobControls`."""

    DEFAULT_CSS = """
    JobScreen #summary { height: auto; padding: 0 1; }
    JobScreen #main { height: 1fr; }
    JobScreen #agents { width: 3fr; height: 100%; border: round $primary 40%; overflow-x: hidden; }
    JobScreen #agents:focus { border: round $primary; }
    JobScreen #detail { width: 2fr; border: round $primary 40%; padding: 0 1; }
    JobScreen #filter { height: 3; border: round $primary 40%; }
    JobScreen #filter:focus { border: round $primary; }
    JobScreen #events { height: 12; border: round $primary 40%; overflow-x: hidden; }
    JobScreen #events:focus { border: round $primary; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("backspace", "back", "Back", show=False),
        Binding("p", "control('pause')", "Pause"),
        Binding("r", "control('resume')", "Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("s", "send", "Send"),
        Binding("d", "dead_letters", "Dead letters"),
        Binding("l", "logs", "Logs"),
        Binding("f", "failures", "Failures only"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self, source: Source, job_id: str, clock: Callable[[], float]) -> None:
        super().__init__(source, job_id)
        self.clock = clock
        self.view: JobView | None = None
        self.failures_only = False
        self.rows: AgentRows | None = None
        #: A problem with the job or its stream, shown in the header (None: all well).
        self.problem: str | None = None
        self._dirty = False
        self._dirty_agents: set[str] = set()
        self._new_events: list[dict[str, Any]] = []
        self._needle = ""
        #: The selected agent's fetched details: (agent, view, dead letters, runs, error).
        self._detail: tuple[str, dict[str, Any] | None, list[Any] | None, list[Any] | None, str | None]
        self._detail = ("", None, None, None, None)
        self._detail_stale = False

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="●")
        yield Static(text(f"loading job {self.job_id}…", "bright_black"), id="summary")
        with Horizontal(id="main"):
            yield DataTable(id="agents", cursor_type="row")
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-body")
        yield Input(placeholder="/ filter the events by type or agent", id="filter")
        yield RichLog(id="events", max_lines=EVENT_LOG, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#agents", DataTable)
        self.rows = AgentRows(table)
        table.border_title = "agents"
        self.query_one("#detail", VerticalScroll).border_title = "agent"
        self.query_one("#events", RichLog).border_title = "events"
        table.focus()
        self.set_interval(1 / FPS, self._flush)
        self.set_interval(1.0, self._tick)
        self.run_worker(later(self._follow), group="follow", exclusive=True, exit_on_error=False)

    # -- following the job ----------------------------------------------------------

    async def _follow(self) -> None:
        """Read the job, then apply its updates until it ends; a broken stream is followed
        again from the last event seen, after a growing pause."""
        source, job_id = self.source, self.job_id
        try:
            record = await source.job(job_id)
            graph = await source.graph(job_id)
            agents = await source.agents(job_id)
            last = int(record.get("last_seq") or 0)
            events = await source.events(job_id, after=max(0, last - EVENT_PAGE), limit=EVENT_PAGE)
        except Exception as exc:
            self.problem = f"cannot read job {job_id}: {clean(exc, limit=300)}"
            self._dirty = True
            self.notify(self.problem, severity="error", markup=False)
            return
        view = JobView.start(record, graph, agents)
        for event in events:
            view.add_event(event)
        self.view = view
        self._rebuild_log()
        self._dirty_agents.update(view.agents)
        self._dirty = self._detail_stale = True
        self._flush()
        failures = view.failures()
        if view.status == "failed" and failures and self.rows is not None:  # what failed, up front
            self.rows.select(failures[0].agent_id)
        if view.ended:
            return
        delay = RETRY
        while not view.ended:
            try:
                updates = source.updates(job_id, after=view.last_seq)
                try:
                    async for kind, data in updates:
                        self.take(kind, data)
                        if self.problem is not None:
                            self.problem, delay = None, RETRY
                finally:
                    close = getattr(updates, "aclose", None)
                    if close is not None:
                        await close()
                if view.ended:
                    await self._final_record()
                return
            except Exception as exc:
                self.problem = f"stream lost: {clean(exc, limit=300)} — retrying in {delay:.0f}s"
                self._dirty = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY)

    def take(self, kind: str, data: Any) -> None:
        """Fold one update in; the widgets follow at the next redraw."""
        view = self.view
        if view is None:
            return
        if kind == "event":
            seen = view.event_count
            view.add_event(data)
            if view.event_count != seen:
                self._new_events.append(data)
                if len(self._new_events) > 2 * LOG_LINES:  # a burst faster than the redraws
                    del self._new_events[:-LOG_LINES]
                selected = self.selected
                if selected is not None and data.get("type") in DETAIL_EVENTS and involves(data, selected):
                    self._detail_stale = True
        else:
            view.apply(kind, data)
            if kind == "agents":
                self._dirty_agents.update(str(status.get("agent_id")) for status in data)
        self._dirty = True

    async def _final_record(self) -> None:
        """The ended job's record (its result, its last update time for the elapsed time)."""
        if self.view is None:
            return
        status = self.view.status
        with contextlib.suppress(Exception):
            self.view.record.update(await self.source.job(self.job_id))
        if self.view.status not in TERMINAL:  # the stream's end said more than a stale record
            self.view.record["status"] = status
        self._dirty = self._detail_stale = True

    # -- drawing --------------------------------------------------------------------

    def _tick(self) -> None:
        """Once a second: the elapsed time moves on; stale details are read again."""
        if self.view is not None and not self.view.ended:
            self._dirty = True
        if self._detail_stale and self.selected is not None:
            self._detail_stale = False
            self.run_worker(
                later(self._load_detail, self.selected), group="detail", exclusive=True, exit_on_error=False
            )

    def _flush(self) -> None:
        """Redraw what changed since the last time (called :data:`FPS` times a second)."""
        if not self._dirty:
            if self.rows is not None:
                self.rows.catch_up()  # rows scrolled into view
            return
        self._dirty = False
        self.query_one("#summary", Static).update(self.summary())
        if self.view is None:
            return
        self._draw_agents()
        if self._new_events:
            new, self._new_events = self._new_events, []
            shown = [event for event in new if matches(event, self._needle)][-LOG_LINES:]
            if shown:
                self.query_one("#events", RichLog).write(log_text(shown))
        self._draw_detail()

    def summary(self) -> Text:
        """The header: id, status, elapsed, agents by state, traffic, why it failed."""
        line = Text()
        line.append(clean(self.job_id, limit=60), "bold")
        view = self.view
        if view is None:
            if self.problem:
                line.append("\n")
                line.append(clean(self.problem), "bold red")
            return line
        line.append("  ")
        line.append_text(status_text(view.status))
        line.append(f"  elapsed {duration(view.elapsed(self.clock()))}")
        graph = view.record.get("graph_id")
        if graph:
            line.append(f"  graph {clean(graph, limit=40)}", "bright_black")
        line.append(f"\nagents {len(view.agents)}")
        for state, n in sorted(view.counts().items(), key=lambda kv: (-kv[1], kv[0])):
            line.append(" · ")
            line.append(f"{n} {clean(state)}", STATUS_STYLE.get(state, ""))
        line.append(f"   processed {view.processed()}   queued {view.queued()}   events {view.last_seq}")
        reason = view.failure_reason()
        if reason:
            line.append("\n")
            line.append(f"failed: {clean(reason, limit=300)}", "bold red")
        if self.problem:
            line.append("\n")
            line.append(clean(self.problem), "bold yellow")
        elif view.ended and not reason:
            line.append("\n")
            line.append(f"the job has ended ({clean(view.status)})", "bright_black")
        return line

    def shown_agents(self) -> list[AgentRow]:
        assert self.view is not None
        return self.view.failures() if self.failures_only else list(self.view.agents.values())

    def _draw_agents(self) -> None:
        assert self.view is not None and self.rows is not None
        rows = self.shown_agents()
        self.rows.show(rows, self._dirty_agents, self.view.agents)
        self._dirty_agents.clear()
        shown = f"{len(rows)} of {len(self.view.agents)}, failures only" if self.failures_only else len(rows)
        self.rows.table.border_title = f"agents ({shown})"

    def _draw_detail(self) -> None:
        body = self.query_one("#detail-body", Static)
        view = self.view
        if view is None or self.selected is None or self.selected not in view.agents:
            body.update(Text("select an agent", "bright_black"))
            return
        agent, info, letters, runs, error = self._detail
        if agent != self.selected:
            info = letters = runs = None
            error = None
        row = view.agents[self.selected]
        if runs is not None and not runs and row.kind != "executor":
            runs = None
        body.update(agent_detail(row, info, letters, runs, error))
        self.query_one("#detail", VerticalScroll).border_title = title(f"agent {row.agent_id}", limit=60)

    async def _load_detail(self, agent_id: str) -> None:
        """Read the selected agent's view, dead letters and executor runs."""
        source, job_id = self.source, self.job_id
        try:
            info = await source.agent(job_id, agent_id)
            letters = [d for d in await source.dead_letters(job_id) if involves(d, agent_id)]
            runs = await source.logs(job_id, agent_id)
        except Exception as exc:
            self._detail = (agent_id, None, None, None, clean(exc, limit=300))
        else:
            self._detail = (agent_id, info, letters, runs, None)
        if self.selected == agent_id:
            self._draw_detail()

    def _rebuild_log(self) -> None:
        log = self.query_one("#events", RichLog)
        log.clear()
        self._new_events.clear()
        if self.view is not None:
            shown = self.view.events_matching(self._needle, limit=LOG_LINES)
            if shown:
                log.write(log_text(shown))
        needle = title(self._needle, limit=30)
        log.border_title = f"events (filter: {needle})" if self._needle else "events"

    # -- input ----------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        agent_id = event.row_key.value
        if agent_id is None or agent_id == self.selected:
            return
        self.selected = agent_id
        self._draw_detail()
        self._detail_stale = False
        self.run_worker(
            later(self._load_detail, agent_id), group="detail", exclusive=True, exit_on_error=False
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # enter on an agent: nothing more than selecting it

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._needle = event.value.strip().lower()
            self._rebuild_log()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one("#agents", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#agents", DataTable).focus()
            return
        self.app.pop_screen()

    def action_failures(self) -> None:
        self.failures_only = not self.failures_only
        self._dirty = True
        self._flush()
        self.notify("failures only" if self.failures_only else "all agents", timeout=2)
