"""The web UI against a real ``mn serve`` (a subprocess) in a real headless Chromium.

Debian's ``/usr/bin/chromium`` is driven by Playwright (no browser download); without it
the browser tests are skipped. One browser and one server for all these tests, a fresh
browser context (cookies, sessionStorage) per test. Each browser test leaves a
screenshot of its page in its ``tmp_path`` and fails on any script error or any
Content-Security-Policy violation the page reports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import aggregator, manifest, router
from security.conftest import MnServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1000}
#: A token for the server started with ``--token`` (long enough for check_token).
TOKEN = "ui-test-token-7c1f0e9d8b2a4c6e"


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One browser for all the tests of this package (the session's, when they run together).

    Package scope, not session: between its calls Playwright's sync API leaves its event
    loop marked as running in this thread, so no asyncio test may run while it is open.
    """
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} is missing: install Debian's chromium to run the web UI tests"
        if os.environ.get("CI") == "true":  # scripts/install.sh installs it: CI never skips them
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def _server(*flags: str) -> Iterator[MnServer]:
    root = Path(tempfile.mkdtemp(prefix="mn-ui-"))
    server = MnServer(root, *flags).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[MnServer]:
    yield from _server()


@pytest.fixture(scope="session")
def token_server() -> Iterator[MnServer]:
    yield from _server("--token", TOKEN)


@pytest.fixture
def api(server: MnServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def base_url(server: MnServer) -> str:
    return server.url.removesuffix("/api/v1")


class PageProblems:
    """Script errors and CSP violations a page reported."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
            self.items.append(f"console: {text}")

    def error(self, error: Any) -> None:
        self.items.append(f"page error: {error}")


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    tab = context.new_page()
    problems = PageProblems()
    tab.on("console", problems.console)
    tab.on("pageerror", problems.error)
    try:
        yield tab
    finally:
        try:
            tab.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            context.close()
    assert not problems.items, problems.items


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["job_id"])


def diamond(complete_after: int = 4) -> dict[str, Any]:
    """entry → a, b → sink: the sink gets 2 messages, so it waits for ``complete_after - 2`` more."""
    return manifest(
        [
            router("entry", emit_type="work"),
            router("a"),
            router("b"),
            aggregator("sink", complete_after=complete_after),
        ],
        [("entry", "a", "work"), ("entry", "b", "work"), ("a", "sink", "work"), ("b", "sink", "work")],
        graph_id="diamond",
        job_name="diamond",
        initial_inputs={"entry": [{"n": 0}]},
    )


def fan_out(workers: int, complete_after: int | None = None) -> dict[str, Any]:
    """dispatch → worker_0 … worker_{n-1} → collect (waits for one more message than it gets)."""
    nodes = [router("dispatch", emit_type="task")]
    nodes += [router(f"worker_{i}", emit_type="done") for i in range(workers)]
    nodes.append(aggregator("collect", complete_after=complete_after or workers + 1))
    edges = [("dispatch", f"worker_{i}", "task") for i in range(workers)]
    edges += [(f"worker_{i}", "collect", "done") for i in range(workers)]
    return manifest(
        nodes,
        edges,
        graph_id="fan_out",
        job_name=f"fan-out to {workers}",
        initial_inputs={"dispatch": [{"n": 1}]},
    )


def send(api: httpx.Client, job_id: str, agent_id: str, body: dict[str, Any]) -> None:
    response = api.post(f"/jobs/{job_id}/agents/{agent_id}/messages", json=body)
    assert response.status_code == 202, response.text
