"""The job screen's controls: pause, resume, cancel, send a message, dead letters, logs.

Each acts through the :class:`~.source.Source` in a worker (the screen never waits on it)
and says what happened, or why not, in a notification.
"""

from __future__ import annotations

from typing import Any, Literal

from textual.screen import Screen

from .source import Source
from .tui_format import clean, later
from .tui_modals import ConfirmScreen, DeadLettersScreen, LogsScreen, SendScreen

Op = Literal["pause", "resume", "cancel"]


class JobControls(Screen[None]):
    """The actions of a screen showing job ``job_id``, agent ``selected`` under the cursor
    (its subclass binds the keys)."""

    def __init__(self, source: Source, job_id: str) -> None:
        super().__init__()
        self.source = source
        self.job_id = job_id
        #: The agent under the cursor (the one ``s`` and ``l`` act on).
        self.selected: str | None = None

    def action_control(self, op: Op) -> None:
        self.run_worker(later(self._control, op), group="control", exit_on_error=False)

    async def _control(self, op: Op) -> None:
        try:
            result = await self.source.control(op, self.job_id)
        except Exception as exc:
            self.notify(f"{op} failed: {clean(exc, limit=300)}", severity="error", markup=False)
            return
        said = ", ".join(
            f"{k} {clean(v, limit=40)}" for k, v in result.items() if k not in ("job_id", "status")
        )
        status = clean(result.get("status", "ok"))
        self.notify(f"{op}: job {status}{f' ({said})' if said else ''}", markup=False)

    def action_cancel(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.action_control("cancel")

        question = f"Cancel job {clean(self.job_id)}? Running scripts are killed."
        self.app.push_screen(ConfirmScreen(question), answered)

    def _agent(self) -> str | None:
        if self.selected is None:
            self.notify("select an agent first", severity="warning")
        return self.selected

    def action_send(self) -> None:
        agent_id = self._agent()
        if agent_id is None:
            return

        async def send(message: dict[str, Any]) -> dict[str, Any]:
            return await self.source.send(self.job_id, agent_id, message)

        def sent(result: dict[str, Any] | None) -> None:
            if result is not None:
                self.notify(
                    f"sent to {clean(agent_id)}: {clean(result.get('status'))} "
                    f"(message {clean(result.get('message_id'))})",
                    markup=False,
                )

        self.app.push_screen(SendScreen(agent_id, send), sent)

    def action_dead_letters(self) -> None:
        self.app.push_screen(DeadLettersScreen(self.source, self.job_id, self.selected))

    def action_logs(self) -> None:
        agent_id = self._agent()
        if agent_id is not None:
            self.app.push_screen(LogsScreen(self.source, self.job_id, agent_id))
