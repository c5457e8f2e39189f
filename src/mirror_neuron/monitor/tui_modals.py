"""The dialogs of ``mn monitor``'s job screen: confirm, send a message, dead letters, logs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from .source import Source
from .tui_format import clean, clock_time, involves, later, letter_sender, letter_type, run_lines, text

MODAL_CSS = """
.dialog {
    width: 80%;
    max-width: 110;
    height: auto;
    max-height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 1 2;
}
.dialog .title { text-style: bold; margin-bottom: 1; }
.dialog .error { color: $error; height: auto; }
.dialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
.dialog Button { margin-left: 2; }
.dialog DataTable { height: auto; max-height: 20; }
.dialog VerticalScroll { height: auto; max-height: 30; }
"""


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: ``y`` (True) or ``n`` / escape (False)."""

    DEFAULT_CSS = "ConfirmScreen { align: center middle; }" + MODAL_CSS
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(self.question), classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def parse_message(raw: str) -> dict[str, Any]:
    """A message typed as JSON: an object (``ValueError`` saying what is wrong otherwise)."""
    try:
        message = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError('a message is a JSON object, e.g. {"type": "note", "payload": {}}')
    return message


class SendScreen(ModalScreen[dict[str, Any] | None]):
    """A JSON message for one agent; dismissed with the send's result once it went out."""

    DEFAULT_CSS = "SendScreen { align: center middle; }" + MODAL_CSS
    BINDINGS = [Binding("escape", "close", "Close")]
    TEMPLATE = '{"type": "operator_note", "payload": {}}'

    def __init__(self, agent_id: str, send: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
        super().__init__()
        self.agent_id = agent_id
        self._send = send

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(f"Send a message to agent {self.agent_id}"), classes="title")
            yield Input(self.TEMPLATE, placeholder="a JSON object", id="message")
            yield Static("", id="send-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send", variant="primary", id="send")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#message", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def action_close(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        try:
            message = parse_message(self.query_one("#message", Input).value)
        except ValueError as exc:
            self._error(str(exc))
            return
        self._error("")
        self.run_worker(later(self._deliver, message), group="send", exclusive=True, exit_on_error=False)

    async def _deliver(self, message: dict[str, Any]) -> None:
        try:
            result = await self._send(message)
        except Exception as exc:
            self._error(f"not sent: {exc}")
            self.notify(f"send to {self.agent_id} failed: {clean(exc)}", severity="error", markup=False)
            return
        self.dismiss(result)

    def _error(self, message: str) -> None:
        self.query_one("#send-error", Static).update(text(message, "red"))


class DeadLettersScreen(ModalScreen[None]):
    """A job's dead letters (the selected agent's first); enter or ``r`` re-drives one."""

    DEFAULT_CSS = "DeadLettersScreen { align: center middle; }" + MODAL_CSS
    BINDINGS = [
        Binding("r", "redrive", "Redrive"),
        Binding("a", "redrive_here", "Redrive to the selected agent"),
        Binding("escape,d,q", "close", "Close"),
    ]

    def __init__(self, source: Source, job_id: str, agent_id: str | None) -> None:
        super().__init__()
        self.source = source
        self.job_id = job_id
        self.agent_id = agent_id
        self.letters: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(f"Dead letters of job {self.job_id}"), classes="title")
            yield DataTable(id="letters", cursor_type="row")
            yield Static("loading…", id="letters-note")

    def on_mount(self) -> None:
        table = self.query_one("#letters", DataTable)
        for label in ("id", "from", "to", "reason", "message", "time"):
            table.add_column(label, key=label)
        table.focus()
        self.run_worker(later(self._load), group="letters", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        note = self.query_one("#letters-note", Static)
        try:
            self.letters = await self.source.dead_letters(self.job_id)
        except Exception as exc:
            note.update(text(f"could not read the dead letters: {exc}", "red"))
            return
        table = self.query_one("#letters", DataTable)
        table.clear()
        first = None
        for index, letter in enumerate(self.letters):
            table.add_row(
                text(letter.get("id")),
                text(letter_sender(letter), limit=20),
                text(letter.get("agent_id"), "bold", limit=20),
                text(letter.get("reason"), "red", limit=44),
                text(letter_type(letter), limit=20),
                text(clock_time(letter.get("timestamp"))),
                key=str(letter.get("id")),
            )
            if first is None and self.agent_id is not None and involves(letter, self.agent_id):
                first = index
        if first is not None:
            table.move_cursor(row=first)
        count = len(self.letters)
        note.update(
            Text("no dead letters", "bright_black")
            if not count
            else Text(
                f"{count} dead letter(s) · enter or r: redrive the selected one to its agent"
                + (f" · a: to {clean(self.agent_id, limit=30)}" if self.agent_id else "")
                + " · escape: close"
            )
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_redrive()

    def action_redrive(self, to: str | None = None) -> None:
        table = self.query_one("#letters", DataTable)
        if not self.letters or table.cursor_row < 0:
            return
        letter = self.letters[min(table.cursor_row, len(self.letters) - 1)]
        self.run_worker(later(self._redrive, int(letter["id"]), to), group="redrive", exit_on_error=False)

    def action_redrive_here(self) -> None:
        if self.agent_id is None:
            self.notify("no agent is selected on the job screen", severity="warning")
            return
        self.action_redrive(self.agent_id)

    async def _redrive(self, letter_id: int, to: str | None) -> None:
        try:
            result = await self.source.redrive(self.job_id, letter_id, to)
        except Exception as exc:
            self.notify(f"redrive of #{letter_id} failed: {clean(exc)}", severity="error", markup=False)
            return
        self.notify(
            f"dead letter #{letter_id} redriven to {clean(result.get('agent_id'))}: "
            f"{clean(result.get('status'))}",
            markup=False,
        )
        await self._load()

    def action_close(self) -> None:
        self.dismiss(None)


class LogsScreen(ModalScreen[None]):
    """Every kept executor run of one agent, its whole stdout and stderr; ``r`` reloads."""

    DEFAULT_CSS = "LogsScreen { align: center middle; }" + MODAL_CSS
    BINDINGS = [
        Binding("r", "reload", "Reload"),
        Binding("escape,l,q", "close", "Close"),
    ]

    def __init__(self, source: Source, job_id: str, agent_id: str) -> None:
        super().__init__()
        self.source = source
        self.job_id = job_id
        self.agent_id = agent_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(f"Executor logs of {self.agent_id}"), classes="title")
            with VerticalScroll(id="logs-scroll"):
                yield Static("loading…", id="logs")

    def on_mount(self) -> None:
        self.query_one("#logs-scroll", VerticalScroll).focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(later(self._load), group="logs", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        body = self.query_one("#logs", Static)
        try:
            runs = await self.source.logs(self.job_id, self.agent_id)
        except Exception as exc:
            body.update(text(f"could not read the logs: {exc}", "red"))
            return
        if not runs:
            body.update(Text("no executor runs kept for this agent", "bright_black"))
            return
        parts: list[RenderableType] = []
        for run in runs:
            parts.extend([run_lines(run), Text("")])
        body.update(Group(*parts))
        self.query_one("#logs-scroll", VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
