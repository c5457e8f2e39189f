"""The monitor on real jobs: a runtime of the test hosts them; the app reads the same SQLite
store through its own :class:`LocalSource` and controls them over the host's control socket,
as ``mn monitor`` beside ``mn run`` does."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from builders import aggregator, manifest, router
from mirror_neuron import Runtime
from mirror_neuron.monitor import LocalSource
from mirror_neuron.monitor.tui import JobScreen, JobsScreen, MonitorApp
from mirror_neuron.monitor.tui_modals import ConfirmScreen, DeadLettersScreen, LogsScreen, SendScreen

from .conftest import SIZE, job_screen, log_lines, on, recording, row, shown, until


def collect(n: int) -> dict[str, Any]:
    """entry router → sink aggregator that completes after ``n`` messages (1 comes from the start)."""
    return manifest([router("entry"), aggregator("sink", complete_after=n)], [("entry", "sink", "init")])


def with_executor(script: str, *, to_sink: bool = True) -> dict[str, Any]:
    """A ``host_local`` executor ``worker`` running ``script`` (then, with ``to_sink``, a sink done
    after its output)."""
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {"runner": "host_local", "command": [sys.executable, "-c", script]},
    }
    if to_sink:
        worker["config"]["output_message_type"] = "done"
    edges = [("worker", "sink", "done")] if to_sink else []
    return manifest([worker, aggregator("sink", complete_after=1)], edges)


async def select(pilot: Pilot[Any], screen: JobScreen, agent_id: str) -> None:
    table = screen.query_one("#agents", DataTable)
    table.move_cursor(row=table.get_row_index(agent_id))
    await until(pilot, lambda: screen.selected == agent_id, f"{agent_id} selected")


async def test_the_job_list_shows_a_running_job_and_enter_opens_it(
    host: Runtime, source: LocalSource
) -> None:
    job_id = await host.submit(collect(3))
    app = MonitorApp(source)
    async with app.run_test(size=SIZE) as pilot:
        jobs = await on(pilot, JobsScreen)
        table = jobs.query_one("#jobs", DataTable)
        await until(pilot, lambda: job_id in jobs.records and row(table, job_id)[1] == "running", "it listed")
        assert row(table, job_id)[:4] == [job_id, "running", "test_graph", "2"]
        assert "1 job(s) · 1 running" in shown(jobs, "#jobs-status")

        await pilot.press("enter")
        screen = await job_screen(pilot, job_id)
        table = screen.query_one("#agents", DataTable)
        await until(pilot, lambda: row(table, "sink")[4] == "1", "the sink's first message counted")
        assert row(table, "entry")[:5] == ["entry", "router", "idle", "0", "1"]
        summary = shown(screen, "#summary")
        assert f"{job_id}  running  elapsed" in summary and "agents 2 · 2 idle" in summary
        assert "processed 2   queued 0" in summary
        lines = log_lines(screen)
        assert any("job_running" in line for line in lines)
        assert any("aggregator_received" in line and "sink" in line for line in lines)

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is jobs, "back on the job list")


@pytest.mark.slow  # ~2-3 s: three controls, each seen in the store
async def test_pause_resume_and_cancel_from_the_keyboard(host: Runtime, source: LocalSource) -> None:
    job_id = await host.submit(collect(3))
    app = MonitorApp(source, job_id[:18])  # a prefix opens the job at once
    async with app.run_test(size=SIZE) as pilot:
        said = recording(app)
        screen = await job_screen(pilot, job_id)
        assert screen.view is not None

        await pilot.press("p")
        await until(pilot, lambda: screen.view and screen.view.status == "paused", "the job paused")
        assert (await host.inspect_job(job_id))["status"] == "paused"
        await until(pilot, lambda: "paused" in shown(screen, "#summary"), "the header saying so")
        assert any(s.startswith("pause: job paused") for s in said)

        await pilot.press("r")
        await until(pilot, lambda: screen.view and screen.view.status == "running", "the job running again")
        assert (await host.inspect_job(job_id))["status"] == "running"

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "Running scripts are killed." in shown(app.screen, "Label")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, "the question gone")
        assert (await host.inspect_job(job_id))["status"] == "running"

        await pilot.press("c", "y")
        await until(pilot, lambda: screen.view and screen.view.ended, "the job ended")
        assert (await host.inspect_job(job_id))["status"] == "cancelled"
        await until(pilot, lambda: "cancelled" in shown(screen, "#summary"), "the header saying so")


async def test_a_message_typed_as_json_reaches_the_selected_agent(host: Runtime, source: LocalSource) -> None:
    job_id = await host.submit(collect(2))  # the sink waits for one more message
    app = MonitorApp(source, job_id)
    async with app.run_test(size=SIZE) as pilot:
        said = recording(app)
        screen = await job_screen(pilot, job_id)
        await select(pilot, screen, "sink")

        await pilot.press("s")
        dialog = await on(pilot, SendScreen)
        dialog.query_one(Input).value = '{"type": "note", "payload": '
        await pilot.press("enter")
        await until(pilot, lambda: "invalid JSON" in shown(dialog, "#send-error"), "the error, inline")
        assert app.screen is dialog

        dialog.query_one(Input).value = "[1, 2]"
        await pilot.press("enter")
        await until(pilot, lambda: "a message is a JSON object" in shown(dialog, "#send-error"), "the error")

        dialog.query_one(Input).value = '{"type": "note", "payload": {"from": "the monitor"}}'
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen, "the dialog closed")
        await until(pilot, lambda: screen.view and screen.view.status == "completed", "the job completed")
        assert any(s.startswith("sent to sink:") for s in said)
    record = await host.inspect_job(job_id)
    assert record["status"] == "completed"
    assert record["result"]["output"]["last_message"] == {"from": "the monitor"}


async def test_a_failed_job_shows_why_its_failures_and_its_logs(host: Runtime, source: LocalSource) -> None:
    script = "import sys; print('working'); print('the real reason', file=sys.stderr); sys.exit(3)"
    job_id, record = await host.run(with_executor(script), timeout=30)
    assert record["status"] == "failed"
    app = MonitorApp(source, job_id)
    async with app.run_test(size=SIZE) as pilot:
        screen = await job_screen(pilot, job_id)
        summary = shown(screen, "#summary")
        assert "failed: worker: " in summary and "status 3" in summary
        await until(pilot, lambda: screen.selected == "worker", "the failed agent selected first")
        await until(pilot, lambda: "executor runs (1)" in shown(screen, "#detail-body"), "its run")
        detail = shown(screen, "#detail-body")
        assert "run #1 failed  exit 3" in detail and "working" in detail and "the real reason" in detail

        table = screen.query_one("#agents", DataTable)
        assert table.row_count == 2
        await pilot.press("f")
        assert table.row_count == 1 and row(table, "worker")[2] == "failed"
        assert "failures only" in str(table.border_title)
        await pilot.press("f")
        assert table.row_count == 2


async def test_an_executors_logs_show_in_the_detail_pane_and_on_l(host: Runtime, source: LocalSource) -> None:
    job_id, record = await host.run(with_executor("print('hi')"), timeout=30)
    assert record["status"] == "completed"
    app = MonitorApp(source, job_id)
    async with app.run_test(size=SIZE) as pilot:
        screen = await job_screen(pilot, job_id)
        await select(pilot, screen, "worker")
        await until(pilot, lambda: "executor runs (1)" in shown(screen, "#detail-body"), "the run")
        detail = shown(screen, "#detail-body")
        assert "run #1 ok  exit 0" in detail and "-- stdout\nhi" in detail

        await pilot.press("l")
        logs = await on(pilot, LogsScreen)
        await until(pilot, lambda: "-- stdout\nhi" in shown(logs, "#logs"), "the whole run")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the logs closed")


async def test_a_dead_letter_is_listed_and_redriven_to_the_selected_agent(
    host: Runtime, source: LocalSource
) -> None:
    script = 'import json; print(json.dumps({"emit_messages": [{"type": "lost", "to": "ghost", "body": 1}]}))'
    job_id = await host.submit(with_executor(script, to_sink=False))
    app = MonitorApp(source, job_id)
    async with app.run_test(size=SIZE) as pilot:
        said = recording(app)
        screen = await job_screen(pilot, job_id)
        await select(pilot, screen, "worker")
        await until(pilot, lambda: "worker → ghost" in shown(screen, "#detail-body"), "the dead letter")
        assert "dead letters (1)\n#" in shown(screen, "#detail-body")
        assert "worker → ghost agent ghost is not part of job" in shown(screen, "#detail-body")

        await select(pilot, screen, "sink")
        await pilot.press("d")
        letters = await on(pilot, DeadLettersScreen)
        table = letters.query_one("#letters", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the dead letter listed")
        [key] = list(table.rows)
        assert row(table, str(key.value))[1:3] == ["worker", "ghost"]

        await pilot.press("r")  # to its own agent: the job has none such
        await until(pilot, lambda: any("failed" in s for s in said), "the redrive refused")
        await pilot.press("a")  # to the agent selected on the job screen
        await until(pilot, lambda: any("redriven to sink" in s for s in said), "the redrive done")
        await pilot.press("escape")
        await until(pilot, lambda: screen.view and screen.view.status == "completed", "the job completed")


async def test_markup_in_an_agent_id_or_the_filter_is_shown_as_text(
    host: Runtime, source: LocalSource
) -> None:
    """Textual reads border titles as markup: an id like ``x[b=$]`` once crashed the monitor."""
    hostile = "x[b=$]"
    job_id = await host.submit(
        manifest([router("entry"), aggregator(hostile, complete_after=3)], [("entry", hostile, "init")])
    )
    app = MonitorApp(source, job_id)
    async with app.run_test(size=SIZE) as pilot:
        screen = await job_screen(pilot, job_id)
        await until(
            pilot, lambda: hostile in (screen.view.agents if screen.view else {}), "the agents listed"
        )
        await select(pilot, screen, hostile)
        await pilot.press("slash")
        for key in "[/]":
            await pilot.press(key)
        await until(pilot, lambda: screen.query_one("#filter", Input).value == "[/]", "the filter typed")
        assert app.is_running and app.screen is screen
