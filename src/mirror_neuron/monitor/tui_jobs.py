"""``mn monitor``'s first screen: every job of the store or server, refreshed every second."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from .._time import epoch
from .source import Source
from .tui_format import STATUS_STYLE, ago, clean, job_note, later, status_text, text

#: Seconds between two reads of the job list, and the longest wait after failed reads.
REFRESH = 1.0
MAX_RETRY = 5.0
#: Jobs listed (the most recently updated).
LIMIT = 200
COLUMNS = (
    ("job", "job", None),
    ("status", "status", 10),
    ("graph", "graph", None),
    ("agents", "agents", 6),
    ("updated", "updated", 9),
    ("age", "age", 9),
    ("note", "note", None),
)

Row = tuple[Text, ...]


def job_row(record: dict[str, Any], now: float, note: int = 80) -> Row:
    """The cells of one job (see :data:`COLUMNS`), its note cut to ``note`` characters."""
    agents = record.get("agent_count")
    return (
        text(record.get("job_id"), "bold", limit=48),
        status_text(record.get("status")),
        text(record.get("graph_id") or record.get("job_name"), limit=28),
        Text("" if agents is None else str(agents), justify="right"),
        Text(ago(record.get("updated_at"), now), justify="right"),
        Text(ago(record.get("submitted_at"), now), justify="right"),
        job_note(record, note),
    )


def note_room(rows: list[Row], width: int) -> int:
    """The characters left for the last column (the note) in a table ``width`` wide."""
    used = sum(
        2 + (fixed or max([len(label), *(len(row[i].plain) for row in rows)]))
        for i, (label, _, fixed) in enumerate(COLUMNS[:-1])
    )
    return max(12, width - used - 4)


def newest_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs by submission, newest first: a stable order (updates do not move rows)."""
    return sorted(records, key=lambda r: (-(epoch(r.get("submitted_at")) or 0.0), str(r.get("job_id"))))


class JobsScreen(Screen[None]):
    """The job list; enter opens a job."""

    DEFAULT_CSS = """
    JobsScreen #jobs-status { height: 1; padding: 0 1; }
    JobsScreen #jobs { height: 1fr; overflow-x: hidden; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open job", priority=True),
        Binding("g", "refresh", "Refresh"),
    ]

    def __init__(self, source: Source, clock: Callable[[], float], open_job: Callable[[str], None]) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        self.open_job = open_job
        self.records: dict[str, dict[str, Any]] = {}
        self.error: str | None = None
        self._rows: dict[str, Row] = {}
        self._wake = asyncio.Event()
        #: Completed reads of the list (tests wait on it).
        self.refreshes = 0

    def compose(self) -> ComposeResult:
        yield Header(icon="●")
        yield Static(Text("loading jobs…", "bright_black"), id="jobs-status")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#jobs", DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        self.run_worker(later(self._poll), group="jobs", exclusive=True, exit_on_error=False)

    def on_screen_resume(self) -> None:
        self._wake.set()

    def action_refresh(self) -> None:
        self._wake.set()

    async def _poll(self) -> None:
        """Read the list every :data:`REFRESH` s while this screen shows; after a failure, say
        so and retry (backing off), never stop."""
        delay = REFRESH
        while True:
            if self.is_current or self.refreshes == 0:
                try:
                    jobs = await self.source.list_jobs(limit=LIMIT)
                except Exception as exc:
                    self.error = clean(exc, limit=200)
                    delay = min(delay * 2, MAX_RETRY)
                else:
                    self.error = None
                    delay = REFRESH
                    self.show(jobs)
                self.refreshes += 1
                self._status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    def show(self, jobs: list[dict[str, Any]]) -> None:
        """Put ``jobs`` in the table: cells updated in place; rows rebuilt only when the set of
        jobs (or their order) changed, the cursor staying on its job."""
        table = self.query_one("#jobs", DataTable)
        now = self.clock()
        ordered = newest_first(jobs)
        self.records = {str(r.get("job_id")): r for r in ordered}
        rows = {job_id: job_row(r, now) for job_id, r in self.records.items()}
        room = note_room(list(rows.values()), table.size.width or self.app.size.width)
        rows = {job_id: (*cells[:-1], job_note(self.records[job_id], room)) for job_id, cells in rows.items()}
        if list(rows) == list(self._rows):
            for job_id, cells in rows.items():
                old = self._rows[job_id]
                for (_, key, _), new, was in zip(COLUMNS, cells, old):
                    if new != was:
                        table.update_cell(job_id, key, new, update_width=True)
        else:
            selected = self.selected()
            table.clear()
            for job_id, cells in rows.items():
                table.add_row(*cells, key=job_id)
            if selected in rows:
                table.move_cursor(row=list(rows).index(selected), animate=False)
        self._rows = rows

    def _status(self) -> None:
        status = self.query_one("#jobs-status", Static)
        if self.error is not None:
            status.update(text(f"disconnected: {self.error} — retrying", "bold red"))
            return
        counts = Counter(str(r.get("status")) for r in self.records.values())
        line = Text(f"{len(self.records)} job(s)", "bold")
        for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            line.append(" · ")
            line.append(f"{n} {clean(state)}", STATUS_STYLE.get(state, ""))
        status.update(line)

    def selected(self) -> str | None:
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.open_job(event.row_key.value)

    def action_open(self) -> None:
        job_id = self.selected()
        if job_id is not None:
            self.open_job(job_id)
