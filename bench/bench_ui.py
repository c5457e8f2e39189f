"""The web UI (``/ui``) against a real ``mn serve`` in headless Chromium: latency, load, server cost.

    python bench/bench_ui.py [--messages 300] [--rate 100] [--window 10] [--sizes 100,1000,10000]

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (``.[test]``); not run in CI.

(a) event → page: a 1,000-worker fan-out job stays running; ``--messages`` messages are
    POSTed to its workers at ``--rate`` per second. A MutationObserver in the page notes
    ``Date.now()`` when each event's row appears in the timeline; the latency of an event is
    that minus its stored ``timestamp`` (set by the runtime when the event is made, just
    before its group commit), and, for the workers' ``agent_message_received`` events, minus
    the moment the POST returned (the message is stored then). Same machine, same clock.
(b) page load for 100 / 1,000 / 10,000 workers: a fresh browser context opens the job's
    page; ``window.__mnTimings`` (set by app.js) gives the layout and drawing time and when
    the graph was ready and the first agent states drawn (ms since navigation started).
    Median of 3.
(c) server CPU of one open page: the job takes ``--rate`` messages per second throughout;
    the CPU seconds (utime + stime from ``/proc/<pid>/stat``) of the ``mn serve`` process
    over ``--window`` seconds without a page, then with the job's page open (the event
    stream with agent statuses, the pools poll every 5 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from security.conftest import MnServer  # noqa: E402
from ui.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, fan_out  # noqa: E402

OBSERVE = """() => {
  window.__seen = new Map();
  const list = document.querySelector('#events');
  new MutationObserver((changes) => {
    const now = Date.now();
    for (const change of changes) for (const node of change.addedNodes) {
      const seq = node.dataset && node.dataset.seq;
      if (seq && !window.__seen.has(seq)) window.__seen.set(seq, now);
    }
  }).observe(list, { childList: true });
}"""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def submit(api: httpx.Client, workers: int, complete_after: int | None = None) -> str:
    response = api.post("/jobs", json=fan_out(workers, complete_after))
    response.raise_for_status()
    return str(response.json()["job_id"])


def last_seq(api: httpx.Client, job_id: str) -> int:
    seq = 0
    while True:
        page = api.get(f"/jobs/{job_id}/events", params={"after": seq, "limit": 100_000}).json()
        if page["data"]:
            seq = page["data"][-1]["seq"]
        if page["next"] is None:
            return seq


def wait_idle(api: httpx.Client, job_id: str, processed: int, timeout: float = 120) -> None:
    """Until the job's collector has ``processed`` messages (the fan-out has run through)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agents = api.get(f"/jobs/{job_id}/agents", params={"limit": 1}).json()["data"]
        if agents and agents[0]["agent_id"] == "collect" and agents[0]["processed_messages"] >= processed:
            return
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not settle")


class Load(threading.Thread):
    """POSTs messages to the job's workers, round robin, at ``rate`` per second."""

    def __init__(self, server: MnServer, job_id: str, rate: float, count: int | None = None) -> None:
        super().__init__(daemon=True)
        self.server, self.job_id, self.rate, self.count = server, job_id, rate, count
        self.stop = threading.Event()
        self.returned: dict[str, float] = {}  # message id → epoch ms when its POST returned

    def run(self) -> None:
        with self.server.client() as api:
            start = time.monotonic()
            n = 0
            while not self.stop.is_set() and (self.count is None or n < self.count):
                due = start + n / self.rate
                if (delay := due - time.monotonic()) > 0:
                    time.sleep(delay)
                worker = f"worker_{n % 1000}"
                answer = api.post(
                    f"/jobs/{self.job_id}/agents/{worker}/messages", json={"type": "task", "n": n}
                )
                self.returned[answer.json()["message_id"]] = time.time() * 1000
                n += 1


def open_job(browser: Any, base: str, job_id: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{base}/ui/jobs/{job_id}")
    page.wait_for_selector("#graph[data-ready]", state="attached", timeout=120_000)
    page.wait_for_function("() => document.querySelector('#conn').dataset.conn === 'live'", timeout=120_000)
    return context, page


def latency(browser: Any, server: MnServer, base: str, messages: int, rate: float) -> dict[str, Any]:
    with server.client() as api:
        job_id = submit(api, 1000, complete_after=10**9)
        wait_idle(api, job_id, 1000)
        context, page = open_job(browser, base, job_id)
        page.wait_for_function("() => window.__mnTimings.statesAt !== undefined")
        start_seq = last_seq(api, job_id)
        page.wait_for_function(
            "(seq) => document.querySelector('#events [data-seq]')?.dataset.seq === String(seq)",
            arg=start_seq,
        )  # the page has caught up with the job's past
        page.evaluate(OBSERVE)
        load = Load(server, job_id, rate, messages)
        load.start()
        load.join()
        deadline = time.monotonic() + 60
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:  # every event of the load, stored
            events = api.get(f"/jobs/{job_id}/events", params={"after": start_seq, "limit": 100_000}).json()[
                "data"
            ]
            received = [e for e in events if e["type"] == "agent_message_received"]
            if sum(e["payload"]["message_id"] in load.returned for e in received) == messages:
                break
            time.sleep(0.2)
        final = str(events[-1]["seq"])
        page.wait_for_function("(seq) => window.__seen.has(seq)", arg=final, timeout=60_000)
        seen: dict[str, float] = dict(page.evaluate("[...window.__seen.entries()]"))
        context.close()
        api.post(f"/jobs/{job_id}/cancel")

    def epoch_ms(iso: str) -> float:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000

    by_timestamp = [seen[str(e["seq"])] - epoch_ms(e["timestamp"]) for e in events if str(e["seq"]) in seen]
    by_post = [
        seen[str(e["seq"])] - load.returned[e["payload"]["message_id"]]
        for e in events
        if e["type"] == "agent_message_received"
        and e["payload"]["message_id"] in load.returned
        and str(e["seq"]) in seen
    ]
    return {
        "events": len(events),
        "drawn": len(by_timestamp),
        "ts_p50": pct(by_timestamp, 0.5),
        "ts_p99": pct(by_timestamp, 0.99),
        "post_p50": pct(by_post, 0.5),
        "post_p99": pct(by_post, 0.99),
    }


def load_times(browser: Any, server: MnServer, base: str, sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    with server.client(timeout=300) as api:
        for size in sizes:
            job_id = submit(api, size)
            wait_idle(api, job_id, size, timeout=600)
            runs = []
            for _ in range(3):
                context, page = open_job(browser, base, job_id)
                page.wait_for_function("() => window.__mnTimings.statesAt !== undefined", timeout=120_000)
                runs.append(page.evaluate("window.__mnTimings"))
                context.close()
            api.post(f"/jobs/{job_id}/cancel")
            med = {
                k: statistics.median(r[k] for r in runs)
                for k in ("layoutMs", "renderMs", "readyAt", "statesAt")
            }
            rows.append({"agents": runs[0]["agents"], "drawn": runs[0]["drawn"], **med})
    return rows


def server_cpu(browser: Any, server: MnServer, base: str, window: float, rate: float) -> dict[str, float]:
    assert server.proc is not None
    pid = server.proc.pid
    with server.client() as api:
        job_id = submit(api, 1000, complete_after=10**9)
        wait_idle(api, job_id, 1000)
        load = Load(server, job_id, rate)
        load.start()
        time.sleep(2)  # warm
        before = cpu_seconds(pid)
        time.sleep(window)
        without = cpu_seconds(pid) - before
        context, _ = open_job(browser, base, job_id)
        before = cpu_seconds(pid)
        time.sleep(window)
        with_page = cpu_seconds(pid) - before
        context.close()
        load.stop.set()
        load.join()
        api.post(f"/jobs/{job_id}/cancel")
    return {"without": without, "with": with_page}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="mn-bench-ui-") as tmp:
        server = MnServer(Path(tmp)).start()
        base = server.url.removesuffix("/api/v1")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                a = latency(browser, server, base, args.messages, args.rate)
                b = load_times(browser, server, base, [int(s) for s in args.sizes.split(",")])
                c = server_cpu(browser, server, base, args.window, args.rate)
                browser.close()
        finally:
            server.stop()

    print(
        f"\n(a) event -> page, 1,000-worker job, {args.messages} messages at {args.rate:g}/s "
        f"({a['events']} events, {a['drawn']} drawn)"
    )
    print(f"    {'from':<32}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"    {'event timestamp':<32}{a['ts_p50']:>9.1f}{a['ts_p99']:>9.1f}")
    print(f"    {'POST /messages returned':<32}{a['post_p50']:>9.1f}{a['post_p99']:>9.1f}")
    print("\n(b) job page load (ms; ready/states: since navigation start; median of 3)")
    print(f"    {'agents':>7}{'drawn':>7}{'layout':>9}{'render':>9}{'ready':>9}{'states':>9}")
    for row in b:
        print(
            f"    {row['agents']:>7}{row['drawn']:>7}{row['layoutMs']:>9.1f}{row['renderMs']:>9.1f}"
            f"{row['readyAt']:>9.0f}{row['statesAt']:>9.0f}"
        )
    print(f"\n(c) mn serve CPU over {args.window:g} s, 1,000-worker job taking {args.rate:g} messages/s")
    print(f"    without a page {c['without']:.2f} s ({100 * c['without'] / args.window:.1f}% of a core)")
    print(f"    with the page  {c['with']:.2f} s ({100 * c['with'] / args.window:.1f}% of a core)")
    extra = c["with"] - c["without"]
    print(f"    one open page  {extra:+.2f} s ({100 * extra / args.window:+.1f}% of a core)")


if __name__ == "__main__":
    main()
