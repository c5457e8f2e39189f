"""The jobs page, the API token in the browser, and untrusted text shown as text."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from playwright.sync_api import Response, expect

from builders import router
from mirror_neuron.execution import sandbox_available
from security.conftest import MnServer, upload

from .conftest import TOKEN, base_url, diamond, send, submit

pytestmark = pytest.mark.slow

#: Markup in agent ids, names, payloads and logs: it must show as these very characters.
HOSTILE = "<img src=x onerror=window.__xss=1>"
SCRIPT = "<script>window.__xss=2</script>"


def test_the_jobs_page_lists_jobs_live_and_shows_when_it_cannot_refresh(
    page: Any, api: httpx.Client, server: MnServer
) -> None:
    first = submit(api, diamond(complete_after=2))
    page.goto(f"{base_url(server)}/ui")
    row = page.locator(f'#jobs tr[data-job-id="{first}"]')
    expect(row).to_be_visible()
    expect(row.locator("a")).to_have_attribute("href", f"/ui/jobs/{first}")
    expect(page.locator("#conn")).to_have_attribute("data-conn", "ok")

    second = submit(api, diamond(complete_after=3))  # shows up without a reload, as running
    expect(page.locator(f'#jobs tr[data-job-id="{second}"]')).to_have_attribute("data-status", "running")
    expect(page.locator(f'#jobs tr[data-job-id="{second}"] td').nth(4)).to_have_text("5")  # processed

    # The API stops answering: the page says so (and keeps trying), then recovers.
    page.route("**/api/v1/jobs?*", lambda route: route.abort())
    expect(page.locator("#conn")).to_have_attribute("data-conn", "retrying")
    expect(page.locator("#conn")).to_contain_text("retrying in")
    page.unroute("**/api/v1/jobs?*")
    send(api, second, "sink", {"n": 3})
    expect(page.locator("#conn")).to_have_attribute("data-conn", "ok", timeout=30_000)
    expect(page.locator(f'#jobs tr[data-job-id="{second}"]')).to_have_attribute("data-status", "completed")

    page.locator("#status-filter").select_option("running")
    expect(page.locator(f'#jobs tr[data-job-id="{second}"]')).to_have_count(0)
    page.locator("#status-filter").select_option("")
    page.locator(f'#jobs tr[data-job-id="{second}"] a').click()
    expect(page).to_have_url(f"{base_url(server)}/ui/jobs/{second}")
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "completed")


def test_with_a_token_the_page_asks_for_it_once_then_works(page: Any, token_server: MnServer) -> None:
    url = base_url(token_server)
    with token_server.client(headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        job_id = submit(api, diamond(complete_after=4))
        refused: list[str] = []
        streams: list[Response] = []

        def seen(response: Response) -> None:
            if response.status == 401:
                refused.append(response.url)
            if "/stream?" in response.url:
                streams.append(response)

        page.on("response", seen)
        page.goto(f"{url}/ui/jobs/{job_id}")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        refused_before = len(refused)
        assert refused_before >= 1
        page.locator("#token-input").fill(TOKEN)
        page.locator("#token-form button[type=submit]").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#graph[data-ready]")).to_be_attached()
        expect(page.locator("#conn")).to_have_attribute("data-conn", "live")  # the stream, by its ticket
        expect(page.locator('#graph [data-agent-id="sink"]')).to_have_attribute("data-state", "idle")
        assert streams and streams[0].status == 200
        assert streams[0].request.headers.get("authorization") is None
        assert "ticket=" in streams[0].url and TOKEN not in streams[0].url  # never the token itself
        assert not page.context.cookies()  # nor in a cookie (cookies go to every port of the host)

        for n in (3, 4):
            send(api, job_id, "sink", {"n": n})
        expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "completed")
        expect(page.locator('#graph [data-agent-id="sink"]')).to_have_attribute("data-state", "completed")

        # Another page of the same tab: no question asked again.
        page.locator("header a.brand").click()
        expect(page.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_be_visible()
        expect(dialog).to_be_hidden()
        assert len(refused) == refused_before, refused
        assert page.evaluate("window.__mnTokenPrompts") is None  # none on this page


@pytest.fixture
def sandboxed() -> None:
    ok, why = sandbox_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the web UI tests: {why}")
        pytest.skip(why)


def test_untrusted_text_shows_as_text(
    page: Any, api: httpx.Client, server: MnServer, sandboxed: None
) -> None:
    agent = f"run{HOSTILE}"
    script = (
        "import sys\n"
        f"print({'out ' + HOSTILE + SCRIPT!r})\n"
        f"print({'err ' + HOSTILE!r}, file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    node = {
        "node_id": agent,
        "agent_type": "executor",
        "config": {"upload_path": "run.py", "command": ["python3", "run.py"], "complete_job": True},
    }
    body = {
        "manifest_version": "1.0",
        "graph_id": "hostile_text",
        "job_name": f"<b>{SCRIPT}</b>",
        "entrypoints": ["entry"],
        "initial_inputs": {"entry": [{"note": HOSTILE}]},
        "nodes": [router("entry", emit_type="go"), node],
        "edges": [{"edge_id": "e0", "from_node": "entry", "to_node": agent, "message_type": "go"}],
    }
    response = upload(api, body, {"run.py": script})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 60}).json()["status"] == "failed"

    page.goto(f"{base_url(server)}/ui/jobs/{job_id}")
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "failed")
    expect(page.locator("#job-title")).to_have_text(f"<b>{SCRIPT}</b>")
    failure = page.locator("#failure")
    expect(failure).to_contain_text(f"at agent {agent}: command exited with status 3: err {HOSTILE}")
    node_el = page.locator("#graph [data-agent-id]").filter(has_text="run<img")
    expect(node_el).to_have_attribute("data-agent-id", agent)
    expect(node_el).to_have_attribute("data-state", "failed")
    expect(page.locator('#events [data-type="job_failed"]')).to_contain_text(HOSTILE)

    failure.locator("button").click()  # the failed agent, with its logs
    expect(page.locator("#detail-title")).to_have_text(agent)
    expect(page.locator("#detail-logs pre.stdout")).to_have_text(f"out {HOSTILE}{SCRIPT}\n")
    expect(page.locator("#detail-logs pre.stderr")).to_have_text(f"err {HOSTILE}\n")
    expect(page.locator("#detail-error")).to_contain_text(HOSTILE)
    page.locator("#event-search").fill("onerror")
    expect(page.locator("#events [data-seq]").first).to_contain_text(HOSTILE)

    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("b").count() == 0


def test_dead_letters_are_listed_and_redriven_to_another_agent(
    page: Any, api: httpx.Client, server: MnServer, sandboxed: None
) -> None:
    lost = {"emit_messages": [{"to": "ghost", "type": "lost", "body": {"k": 1}}]}
    script = f"import json\nprint(json.dumps({lost!r}))\n"
    node = {
        "node_id": "stray",
        "agent_type": "executor",
        "config": {"upload_path": "stray.py", "command": ["python3", "stray.py"]},
    }
    body = {
        "manifest_version": "1.0",
        "graph_id": "dead_letters",
        "entrypoints": ["entry"],
        "initial_inputs": {"entry": [{"go": True}]},
        "nodes": [
            router("entry", emit_type="go"),
            node,
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": 1}},
        ],
        "edges": [{"edge_id": "e0", "from_node": "entry", "to_node": "stray", "message_type": "go"}],
    }
    response = upload(api, body, {"stray.py": script})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]

    page.goto(f"{base_url(server)}/ui/jobs/{job_id}")
    letter = page.locator("#dead-letters tr[data-letter]")
    expect(letter).to_have_count(1)  # listed as it happens (the page follows dead_letter events)
    expect(letter).to_contain_text("ghost")
    expect(letter).to_contain_text("is not part of job")
    assert status_of(api, job_id) == "running"
    letter.locator("input").fill("sink")
    letter.locator("[data-redrive]").click()
    expect(page.locator("[data-job-status]")).to_have_attribute("data-job-status", "completed")
    expect(page.locator('#graph [data-agent-id="sink"]')).to_have_attribute("data-state", "completed")
    assert api.get(f"/jobs/{job_id}").json()["result"]["output"]["last_message"] == {"k": 1}


def status_of(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}").json()["status"])
