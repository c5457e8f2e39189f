"""The job page: the live graph, the controls, the stream's life and big graphs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Request, expect

from security.conftest import MnServer

from .conftest import base_url, diamond, fan_out, send, submit

pytestmark = pytest.mark.slow


def open_job(page: Any, server: MnServer, job_id: str) -> None:
    page.goto(f"{base_url(server)}/ui/jobs/{job_id}")
    expect(page.locator("#graph[data-ready]")).to_be_attached()


def status_of(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}").json()["status"])


def test_a_running_job_shows_every_agent_and_edge_and_its_states_change_live(
    page: Any, api: httpx.Client, server: MnServer
) -> None:
    job_id = submit(api, diamond(complete_after=4))
    agent_reads: list[str] = []
    page.on("request", lambda r: agent_reads.append(r.url) if "/agents?" in r.url else None)
    open_job(page, server, job_id)

    graph = api.get(f"/jobs/{job_id}/graph").json()
    nodes = page.locator("#graph [data-agent-id]")
    expect(nodes).to_have_count(len(graph["nodes"]))
    drawn = sorted(nodes.evaluate_all("els => els.map(e => e.dataset.agentId)"))
    assert drawn == sorted(n["id"] for n in graph["nodes"])
    edges = page.locator("#graph [data-edge]")
    expect(edges).to_have_count(len(graph["edges"]))
    pairs = edges.evaluate_all("els => els.map(e => [e.dataset.from, e.dataset.to, e.dataset.messageType])")
    assert sorted(map(tuple, pairs)) == sorted(
        (e["from"], e["to"], e["message_type"]) for e in graph["edges"]
    )
    expect(page.locator("#graph .edge-label").first).to_have_text("work")

    # The sink got 2 of its 4 messages: the job runs and waits for it.
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "running")
    sink = page.locator('#graph [data-agent-id="sink"]')
    expect(sink).to_have_attribute("data-state", "idle")
    expect(sink).to_contain_text("2 processed")
    expect(page.locator("#stalled")).to_contain_text("2 of complete_after=4")
    assert agent_reads == [], "the page polled /agents while its stream was live"

    # One message from the page's form (the detail pane), one over REST: the job completes.
    sink.click()
    expect(page.locator("#detail-title")).to_have_text("sink")
    page.locator("#message-body").fill('{"type": "manual", "payload": {"from": "the page"}}')
    page.locator("#send-message button[type=submit]").click()
    expect(page.locator("#message-result")).to_contain_text("mailbox")
    expect(sink).to_contain_text("3 processed")
    send(api, job_id, "sink", {"n": 4})

    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "completed")
    expect(sink).to_have_attribute("data-state", "completed")
    expect(page.locator('#agents [data-agent-id="sink"]')).to_have_attribute("data-state", "completed")
    expect(page.locator('#graph [data-agent-id="entry"]')).to_have_attribute("data-state", "stopped")
    expect(page.locator('#events [data-type="job_completed"]')).to_have_count(1)
    stored = api.get(f"/jobs/{job_id}/events").json()["data"]
    expect(page.locator("#events [data-seq]")).to_have_count(len(stored))
    expect(page.locator("#conn")).to_have_attribute("data-conn", "ended")


def test_pause_leaves_the_job_paused_and_resume_completes_it(
    page: Any, api: httpx.Client, server: MnServer
) -> None:
    job_id = submit(api, diamond(complete_after=4))
    open_job(page, server, job_id)
    status = page.locator("[data-job-status]")
    expect(status).to_have_attribute("data-job-status", "running")
    expect(page.locator('[data-action="resume"]')).to_be_disabled()

    page.locator('[data-action="pause"]').click()
    expect(status).to_have_attribute("data-job-status", "paused")
    assert status_of(api, job_id) == "paused"
    expect(page.locator('#graph [data-agent-id="sink"]')).to_have_attribute("data-state", "paused")
    for n in (3, 4):  # queued while paused: nothing runs
        send(api, job_id, "sink", {"n": n})
    expect(page.locator('#graph [data-agent-id="sink"]')).to_contain_text("2 queued")
    assert status_of(api, job_id) == "paused"

    page.locator('[data-action="resume"]').click()
    expect(status).to_have_attribute("data-job-status", "completed")
    assert status_of(api, job_id) == "completed"
    expect(page.locator('[data-action="pause"]')).to_be_disabled()
    expect(page.locator('[data-action="cancel"]')).to_be_disabled()


def test_a_finished_job_does_not_keep_reconnecting(page: Any, api: httpx.Client, server: MnServer) -> None:
    job_id = submit(api, diamond(complete_after=2))
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 30}).json()["status"] == "completed"
    streams: list[Request] = []
    summaries: list[Request] = []
    page.on("request", lambda r: streams.append(r) if "/stream?" in r.url else None)
    page.on("request", lambda r: summaries.append(r) if r.url.endswith("/system/summary") else None)
    open_job(page, server, job_id)
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "completed")
    expect(page.locator("#conn")).to_have_attribute("data-conn", "ended")
    stored = api.get(f"/jobs/{job_id}/events").json()["data"]
    expect(page.locator("#events [data-seq]")).to_have_count(len(stored))

    # Live on until the page polls the pools again, 5 s after it started (and ~5 times the stream's
    # retry delay after the end): a browser reconnecting by itself would have done so by then.
    while len(summaries) < 2:
        page.wait_for_event("request", lambda r: r.url.endswith("/system/summary"), timeout=15_000)
    assert 1 <= len(streams) <= 2, [r.url for r in streams]
    assert page.evaluate("window.__mnStream.readyState") == 2  # EventSource.CLOSED
    expect(page.locator('#graph [data-agent-id="sink"]')).to_have_attribute("data-state", "completed")


def test_a_1000_worker_fan_out_renders_collapsed(page: Any, api: httpx.Client, server: MnServer) -> None:
    job_id = submit(api, fan_out(1000))
    open_job(page, server, job_id)
    groups = page.locator("#graph [data-group]")
    expect(groups).to_have_count(1)
    expect(groups).to_have_attribute("data-count", "1000")
    expect(groups).to_contain_text("worker \u00d71000")  # the multiplication sign
    drawn = page.locator("#graph [data-agent-id], #graph [data-group]").count()
    assert drawn < 50
    assert page.locator("#graph [data-edge]").count() == 2  # dispatch → workers → collect, merged
    # Each agent's state lives in its table row; the group counts them by state.
    rows = page.locator("#agents [data-agent-id]")
    expect(rows).to_have_count(1002)
    expect(page.locator('#agents [data-agent-id="worker_999"]')).to_have_attribute("data-state", "idle")
    expect(groups).to_contain_text("idle 1000")
    expect(groups).to_contain_text("1000 processed")
    expect(page.locator('#graph [data-agent-id="collect"]')).to_contain_text("1000 processed")

    # Clicking the group lists its members; cancelling asks first.
    groups.click()
    expect(page.locator("#detail .members li")).to_have_count(300)
    page.locator('[data-action="cancel"]').click()
    expect(page.locator("#cancel-confirm")).to_be_visible()
    assert status_of(api, job_id) == "running"
    page.locator('[data-confirm="cancel"]').click()
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "cancelled")
    assert status_of(api, job_id) == "cancelled"
    expect(page.locator('#agents [data-agent-id="worker_0"]')).to_have_attribute("data-state", "cancelled")
    expect(groups).to_contain_text("cancelled 1000")


def test_an_unknown_job_says_so(page: Any, server: MnServer) -> None:
    page.goto(f"{base_url(server)}/ui/jobs/no-such-job")
    expect(page.locator("h1")).to_have_text("No such job")
    expect(page.locator("#conn")).to_have_attribute("data-conn", "error")
