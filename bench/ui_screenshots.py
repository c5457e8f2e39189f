"""The README's screenshots of the web UI, from real jobs on a real ``mn serve``.

    python bench/ui_screenshots.py [--out docs/images]

Writes ``web-jobs.png`` (the jobs page: jobs in several states) and ``web-job.png`` (the
page of a running job: executors running in the sandbox, some done, the aggregator
waiting; one agent's logs open). Needs Debian's ``/usr/bin/chromium``, ``playwright``
and bubblewrap (the executors run sandboxed). Not run in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from builders import aggregator, router  # noqa: E402
from security.conftest import MnServer, upload  # noqa: E402
from ui.conftest import CHROMIUM, CHROMIUM_ARGS, diamond, fan_out, send, submit  # noqa: E402

REVIEW = """\
import json, os, sys, time
name, seconds = sys.argv[1], float(sys.argv[2])
job = json.load(open(os.environ["MIRROR_NEURON_INPUT_FILE"]))
print(f"{name}: reviewing {job.get('document', '?')} ({job.get('pages', '?')} pages)")
time.sleep(seconds)
print(f"{name}: 0 blocking issues, 2 notes")
print(json.dumps({"reviewer": name, "verdict": "approve"}))
"""
FAIL = """\
import sys
print("loading the Q3 ledger…")
print("ledger.csv: no such file or directory", file=sys.stderr)
sys.exit(2)
"""
#: Reviewer → seconds its review takes: two finish at once, four keep running.
REVIEWERS = {
    "legal": 0.2,
    "finance": 0.4,
    "security": 300,
    "privacy": 300,
    "style": 300,
    "accessibility": 300,
}


def reviewer(name: str, seconds: float) -> dict[str, Any]:
    config = {
        "upload_path": "review.py",
        "command": ["python3", "review.py", name, str(seconds)],
        "output_message_type": "review_done",
    }
    return {"node_id": name, "agent_type": "executor", "config": config}


def review_job() -> dict[str, Any]:
    nodes = [router("intake", emit_type="review_request"), *(reviewer(n, s) for n, s in REVIEWERS.items())]
    nodes += [
        aggregator("collector", complete_after=len(REVIEWERS), output_message_type="reviewed"),
        router("publish"),
    ]
    edges = [{"from_node": "intake", "to_node": n, "message_type": "review_request"} for n in REVIEWERS]
    edges += [{"from_node": n, "to_node": "collector", "message_type": "review_done"} for n in REVIEWERS]
    edges.append({"from_node": "collector", "to_node": "publish", "message_type": "reviewed"})
    for i, edge in enumerate(edges):
        edge["edge_id"] = f"e{i}"
    return {
        "manifest_version": "1.0",
        "graph_id": "document_review",
        "job_name": "review the quarterly report",
        "entrypoints": ["intake"],
        "initial_inputs": {"intake": [{"document": "q3-report.pdf", "pages": 42}]},
        "nodes": nodes,
        "edges": edges,
    }


def failing_job() -> dict[str, Any]:
    node = {
        "node_id": "load_ledger",
        "agent_type": "executor",
        "config": {"upload_path": "fail.py", "command": ["python3", "fail.py"]},
    }
    return {
        "manifest_version": "1.0",
        "graph_id": "ledger_import",
        "job_name": "import the Q3 ledger",
        "entrypoints": ["start"],
        "initial_inputs": {"start": [{"quarter": "Q3"}]},
        "nodes": [router("start", emit_type="load"), node],
        "edges": [{"edge_id": "e0", "from_node": "start", "to_node": "load_ledger", "message_type": "load"}],
    }


def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def make_jobs(api: httpx.Client) -> str:
    done = submit(api, diamond(complete_after=2))
    until(lambda: api.get(f"/jobs/{done}").json()["status"] == "completed", "the diamond to complete")
    failed = upload(api, failing_job(), {"fail.py": FAIL}).json()["job_id"]
    until(lambda: api.get(f"/jobs/{failed}").json()["status"] == "failed", "the ledger import to fail")
    cancelled = submit(api, fan_out(40))
    api.post(f"/jobs/{cancelled}/cancel").raise_for_status()
    paused = submit(api, diamond(complete_after=5))
    send(api, paused, "sink", {"n": 3})
    api.post(f"/jobs/{paused}/pause").raise_for_status()
    response = upload(api, review_job(), {"review.py": REVIEW})
    response.raise_for_status()
    return str(response.json()["job_id"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing")
    from playwright.sync_api import expect, sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mn-shots-") as tmp:
        server = MnServer(Path(tmp)).start()
        base = server.url.removesuffix("/api/v1")
        try:
            with server.client() as api, sync_playwright() as playwright:
                review = make_jobs(api)
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1440, "height": 640}, device_scale_factor=1)
                page.goto(f"{base}/ui")
                expect(page.locator("#jobs tr[data-job-id]")).to_have_count(5)
                expect(page.locator("#jobs td.num").filter(has_text="…")).to_have_count(0)
                page.screenshot(path=str(args.out / "web-jobs.png"))

                page.set_viewport_size({"width": 1440, "height": 1180})
                page.goto(f"{base}/ui/jobs/{review}")
                running = page.locator('#graph [data-state="running"]')
                expect(running).to_have_count(4, timeout=60_000)
                expect(page.locator('#graph [data-agent-id="collector"]')).to_contain_text("2 processed")
                page.locator('#graph [data-agent-id="finance"]').click()
                expect(page.locator("#detail-logs details.run")).to_have_count(1)
                page.screenshot(path=str(args.out / "web-job.png"))
                browser.close()
                api.post(f"/jobs/{review}/cancel")
        finally:
            server.stop()
    print(f"wrote {args.out / 'web-jobs.png'} and {args.out / 'web-job.png'}")


if __name__ == "__main__":
    main()
