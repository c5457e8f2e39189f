"""The job screen's agents table, kept in step with a :class:`~.state.JobView` cheaply.

A job may have thousands of agents whose counts change several times a second. Rows are
never rebuilt for that: a changed agent's cells are updated in place by key, and only
while its row is in view; the rows out of view are marked stale and brought up to date
when they scroll in. The table is rebuilt only when the set of rows shown changes (a new
agent, the failures-only filter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice

from rich.text import Text
from textual.widgets import DataTable

from .state import AgentRow
from .tui_format import status_text, text

COLUMNS = (
    ("agent", "agent", None),
    ("type", "type", 12),
    ("state", "state", 12),
    ("mailbox", "mailbox", 7),
    ("processed", "processed", 9),
    ("last error", "error", None),
)
#: Rows beyond the visible ones kept up to date (a page of scrolling).
MARGIN = 20

Row = tuple[Text, ...]


def agent_cells(row: AgentRow) -> Row:
    return (
        text(row.agent_id, "bold", limit=40),
        text(row.agent_type, limit=12),
        status_text(row.status),
        Text(str(row.mailbox_depth), justify="right"),
        Text(str(row.processed), justify="right"),
        text(row.last_error or "", "red", limit=60),
    )


class AgentRows:
    """What ``table`` shows of the agents: :meth:`show` after updates, :meth:`catch_up` after scrolls."""

    def __init__(self, table: DataTable[Text]) -> None:
        self.table = table
        #: The cells in the table, by agent id, in table order.
        self.shown: dict[str, Row] = {}
        #: Agents whose row is out of date (out of view when they changed).
        self.stale: set[str] = set()
        self.agents: Mapping[str, AgentRow] = {}
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)

    def show(self, rows: list[AgentRow], changed: Iterable[str], agents: Mapping[str, AgentRow]) -> None:
        """Show ``rows``, in this order; ``changed``: the agents whose status changed since the
        last call; ``agents``: every agent by id."""
        self.agents = agents
        if [row.agent_id for row in rows] != list(self.shown):
            self._rebuild(rows)
            return
        self.stale.update(agent_id for agent_id in changed if agent_id in self.shown)
        self.catch_up()

    def catch_up(self) -> None:
        """Update the stale rows in view (and :data:`MARGIN` rows around it)."""
        if not self.stale:
            return
        top = max(0, int(self.table.scroll_y) - MARGIN)
        bottom = int(self.table.scroll_y) + self.table.size.height + MARGIN
        for agent_id in islice(self.shown, top, bottom):
            if agent_id in self.stale:
                self.stale.discard(agent_id)
                self._update(self.agents[agent_id])

    def _update(self, row: AgentRow) -> None:
        new = agent_cells(row)
        old = self.shown[row.agent_id]
        for (_, column, _), cell, was in zip(COLUMNS, new, old):
            if cell != was:
                self.table.update_cell(row.agent_id, column, cell, update_width=column == "error")
        self.shown[row.agent_id] = new

    def _rebuild(self, rows: list[AgentRow]) -> None:
        table = self.table
        selected = self.selected()
        table.clear()
        self.shown = {row.agent_id: agent_cells(row) for row in rows}
        self.stale.clear()
        for key, cells in self.shown.items():
            table.add_row(*cells, key=key)
        if selected in self.shown:
            self.select(selected)

    def selected(self) -> str | None:
        """The agent under the cursor."""
        if not self.table.row_count:
            return None
        row_key, _ = self.table.coordinate_to_cell_key(self.table.cursor_coordinate)
        return row_key.value

    def select(self, agent_id: str) -> None:
        if agent_id in self.shown:
            self.table.move_cursor(row=list(self.shown).index(agent_id), animate=False)
