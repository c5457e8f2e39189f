"""The screens' behaviour on a fake source: what they do when reads fail, how they draw many
agents, the event filter, the keys that only move between screens."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, Input

from mirror_neuron.errors import MirrorNeuronError
from mirror_neuron.monitor import tui_job, tui_jobs
from mirror_neuron.monitor.tui import JobScreen, JobsScreen, MonitorApp, run_monitor
from mirror_neuron.monitor.tui_modals import DeadLettersScreen, parse_message

from .conftest import SIZE, job_screen, log_lines, on, recording, row, shown, until
from .fake import RUNNING, FakeSource, _agent, _record, clock


def running_event(seq: int, kind: str, agent: str | None = None, **extra: Any) -> tuple[str, dict[str, Any]]:
    event = {"type": kind, "job_id": RUNNING, "timestamp": "2026-05-01T11:59:59.000Z", "seq": seq, **extra}
    if agent:
        event["agent_id"] = agent
    return ("event", event)


async def test_a_list_that_cannot_be_read_says_so_and_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tui_jobs, "REFRESH", 0.01)
    monkeypatch.setattr(tui_jobs, "MAX_RETRY", 0.02)
    source = FakeSource()
    source.fail_list = MirrorNeuronError("database is locked")
    app = MonitorApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        jobs = await on(pilot, JobsScreen)
        await until(pilot, lambda: jobs.refreshes >= 2, "two reads")
        assert shown(jobs, "#jobs-status") == "disconnected: database is locked — retrying"
        source.fail_list = None
        await until(pilot, lambda: "6 job(s)" in shown(jobs, "#jobs-status"), "the list again")
        assert jobs.query_one("#jobs", DataTable).row_count == 6


async def test_the_list_is_updated_in_place_and_keeps_the_cursor_on_its_job() -> None:
    source = FakeSource()
    app = MonitorApp(source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        jobs = await on(pilot, JobsScreen)
        await until(pilot, lambda: jobs.refreshes, "the list")
        table = jobs.query_one("#jobs", DataTable)
        table.move_cursor(row=2)
        chosen = jobs.selected()
        source.jobs[0]["status"] = "completed"  # a change of a cell
        await pilot.press("g")
        await until(pilot, lambda: row(table, RUNNING)[1] == "completed", "the new status")
        source.jobs.append(
            _record("newer-1777637000000-aaaaaaaaaaaa", "running", "11:59:00.000", "11:59:00.000", 1)
        )
        await pilot.press("g")
        await until(pilot, lambda: table.row_count == 7, "the new job")
        assert row(table, "newer-1777637000000-aaaaaaaaaaaa")[0].startswith("newer")
        assert jobs.selected() == chosen  # rows rebuilt, the cursor on the same job


async def test_a_broken_stream_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tui_job, "RETRY", 600.0)
    source = FakeSource()
    source.fail_stream = 1
    async with MonitorApp(source, RUNNING, clock=clock).run_test(size=SIZE) as pilot:
        screen = await on(pilot, JobScreen)
        await until(pilot, lambda: "stream lost" in shown(screen, "#summary"), "the problem shown")
        assert "stream lost: connection reset by peer — retrying in 600s" in shown(screen, "#summary")


async def test_a_broken_stream_is_followed_again_from_the_last_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tui_job, "RETRY", 0.01)
    source = FakeSource()
    source.fail_stream = 2
    source.scripts[RUNNING] = [
        running_event(15, "job_paused", agents=6),
        ("agents", [{"agent_id": "scorer", "status": "paused", "mailbox_depth": 3, "processed": 6}]),
    ]
    async with MonitorApp(source, RUNNING, clock=clock).run_test(size=SIZE) as pilot:
        screen = await on(pilot, JobScreen)
        await until(
            pilot, lambda: screen.view and screen.view.status == "paused", "the update after the retry"
        )
        await until(
            pilot, lambda: row(screen.query_one("#agents", DataTable), "scorer")[2] == "paused", "row"
        )
        assert source.stream_calls == 3
        assert screen.problem is None and "stream lost" not in shown(screen, "#summary")
        assert log_lines(screen)[-1].split()[:3] == ["15", "11:59:59.000", "job_paused"]


async def test_an_ended_stream_shows_the_final_status_and_is_not_followed_again() -> None:
    source = FakeSource()
    source.scripts[RUNNING] = [running_event(15, "job_completed"), ("end", {"status": "completed"})]
    source.jobs[0]["status"] = "running"
    async with MonitorApp(source, RUNNING, clock=clock).run_test(size=SIZE) as pilot:
        screen = await on(pilot, JobScreen)
        await until(pilot, lambda: screen.view and screen.view.ended, "the end")
        await until(pilot, lambda: "the job has ended (completed)" in shown(screen, "#summary"), "said so")
        await until(
            pilot, lambda: not [w for w in pilot.app.workers if w.group == "follow"], "following done"
        )
        assert source.stream_calls == 1  # no reconnecting to an ended job


async def test_a_thousand_agents_are_updated_in_place_as_they_come_into_view() -> None:
    source = FakeSource()
    ids = [f"agent-{i:04d}" for i in range(1000)]
    source.graphs[RUNNING]["nodes"] = [{"id": a, "agent_type": "router", "kind": "router"} for a in ids]
    source.agent_views[RUNNING] = [_agent(a, "router", "idle", 0) for a in ids]
    source.scripts[RUNNING] = [
        ("agents", [{"agent_id": a, "status": "running", "mailbox_depth": 1, "processed": 5} for a in ids]),
        ("agents", [{"agent_id": "agent-0500", "status": "failed", "processed": 6, "last_error": "boom"}]),
    ]
    async with MonitorApp(source, RUNNING, clock=clock).run_test(size=SIZE) as pilot:
        screen = await on(pilot, JobScreen)
        table = screen.query_one("#agents", DataTable)
        await until(pilot, lambda: table.row_count == 1000, "every agent")
        cleared = []
        table.clear = lambda *a, **k: cleared.append(1) or DataTable.clear(table, *a, **k)  # type: ignore[method-assign]
        await until(pilot, lambda: "999 running · 1 failed" in shown(screen, "#summary"), "the updates")
        await until(pilot, lambda: row(table, "agent-0000")[2:5] == ["running", "1", "5"], "a row in view")
        assert row(table, "agent-0999")[2] == "idle"  # out of view: drawn when it comes into view

        table.move_cursor(row=500)
        await until(pilot, lambda: row(table, "agent-0500")[2] == "failed", "the failed row drawn")
        assert row(table, "agent-0500")[4:] == ["6", "boom"]
        table.move_cursor(row=999)
        await until(pilot, lambda: row(table, "agent-0999")[2] == "running", "the last row drawn")
        assert cleared == []  # cells updated, the table never rebuilt

        await pilot.press("f")
        assert table.row_count == 1 and cleared == [1]
        assert row(table, "agent-0500")[2] == "failed"


async def test_the_event_filter_keeps_the_events_of_a_type_or_agent() -> None:
    source = FakeSource()
    source.scripts[RUNNING] = [
        running_event(15, "sandbox_job_completed", "scorer"),
        running_event(16, "job_heartbeat"),
    ]
    async with MonitorApp(source, RUNNING, clock=clock).run_test(size=SIZE) as pilot:
        screen = await on(pilot, JobScreen)
        await until(pilot, lambda: len(log_lines(screen)) == 16, "every event")
        await pilot.press("slash", "s", "c", "o")  # typed keys go to the filter, not to the bindings
        assert isinstance(screen.focused, Input)
        await until(pilot, lambda: len(log_lines(screen)) == 5, "scorer's events")
        assert all("scorer" in line for line in log_lines(screen))
        assert source.controls == []  # "s" sent nothing, "c" cancelled nothing
        screen.query_one("#filter", Input).value = "scorerxyz"
        await until(pilot, lambda: log_lines(screen) == [], "none")
        screen.query_one("#filter", Input).value = "SANDBOX"
        await until(pilot, lambda: len(log_lines(screen)) == 3, "the sandbox events, any case")
        await pilot.press("escape")  # leaves the filter, not the screen
        assert pilot.app.screen is screen and isinstance(screen.focused, DataTable)
        await pilot.press("backspace")
        await until(pilot, lambda: isinstance(pilot.app.screen, JobsScreen), "the job list")


async def test_a_prefix_that_names_no_job_says_so_on_the_job_list() -> None:
    app = MonitorApp(FakeSource(), "ghost", clock=clock)
    said = recording(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: said, "a notification")
        assert said[0].startswith("no job ghost:")
        assert isinstance(app.screen, JobsScreen)


async def test_the_dead_letters_dialog_redrives_the_selected_one() -> None:
    app = MonitorApp(FakeSource(), RUNNING, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        said = recording(app)
        screen = await on(pilot, JobScreen)
        await until(pilot, lambda: screen.selected == "dispatcher", "the first agent selected")
        await pilot.press("d")
        dialog = await on(pilot, DeadLettersScreen)
        await until(pilot, lambda: dialog.query_one(DataTable).row_count == 1, "the letter")
        assert row(dialog.query_one(DataTable), "12")[:3] == ["12", "scorer", "archive"]
        await pilot.press("enter")
        await until(pilot, lambda: said, "the outcome")
        assert said == ["dead letter #12 redriven to archive: enqueued"]
        await pilot.press("a")
        await until(pilot, lambda: len(said) == 2, "the outcome")
        assert said[1] == "dead letter #12 redriven to dispatcher: enqueued"
        await pilot.press("escape")
        assert app.screen is screen


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_q_and_ctrl_c_quit(key: str) -> None:
    app = MonitorApp(FakeSource(), RUNNING, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await job_screen(pilot)
        await pilot.press(key)
        await until(pilot, lambda: not app.is_running, "the app ended")


def test_run_monitor_closes_the_source_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[MonitorApp] = []

    async def run_async(self: MonitorApp) -> None:
        ran.append(self)
        assert not source.closed

    monkeypatch.setattr(MonitorApp, "run_async", run_async)
    source = FakeSource()
    run_monitor(source, "fan_review")
    assert [(app.source, app.job_id) for app in ran] == [(source, "fan_review")]
    assert source.closed


def test_a_message_must_be_a_json_object() -> None:
    assert parse_message('{"type": "note"}') == {"type": "note"}
    with pytest.raises(ValueError, match="invalid JSON: Expecting"):
        parse_message("{type: note}")
    with pytest.raises(ValueError, match="a message is a JSON object"):
        parse_message('"note"')
