"""Control latency of a live 1,000-agent job: in-process versus the REST API on loopback.

    python bench/bench_control.py [--agents 1000] [--sends 2000] [--repeat 50] [--store sqlite|memory]

* send: ``send_message`` into a live agent (a different one each time, round robin), in
  process (``Runtime.send_message``) and as ``POST /jobs/{id}/agents/{agent}/messages``
  to an ``mn serve`` subprocess over a keep-alive connection; p50 / p99 of ``--sends``.
* pause / resume / cancel: the call returns once every agent is marked (and the change
  is stored); checked after each call; p50 / p99 over ``--repeat`` (cancel: one fresh
  job per repeat). Goals: send p99 <= 1 ms in process, <= 10 ms over REST; control p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from mirror_neuron import Config, Runtime
from mirror_neuron.store import MemoryStore

#: Pause before cancelling a fresh job: a few store flush intervals, so its creation is stored.
SETTLE = 0.15
GOALS_MS = {"send": (1.0, 10.0), "pause": (50.0, 50.0), "resume": (50.0, 50.0), "cancel": (50.0, 50.0)}


def job_manifest(agents: int) -> dict[str, Any]:
    """``agents`` routers with no edges (messages end there), kept alive as a daemon job."""
    nodes = [{"node_id": f"a{i}", "agent_type": "router"} for i in range(agents)]
    return {
        "manifest_version": "1.0",
        "graph_id": "control_bench",
        "nodes": nodes,
        "entrypoints": ["a0"],
        "daemon": True,
    }


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(samples, 0.50), 3), "p99_ms": round(pct(samples, 0.99), 3), "n": len(samples)}


# -- in process ----------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def settle(rt: Runtime) -> None:
    """Let the scheduler run what is runnable (not timed)."""
    for _ in range(50):
        await asyncio.sleep(0)
        if not rt.scheduler.runq:
            return


def marked(rt: Runtime, job_id: str, paused: bool) -> None:
    cells = rt.jobs[job_id].cells.values()
    assert all(c.paused is paused for c in cells), "an agent was not marked"


async def in_process(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    if args.store == "memory":
        config, store = Config(), MemoryStore()
    else:
        config, store = Config(store_url=f"sqlite:///{tmp / 'inproc.db'}"), None
    manifest = job_manifest(args.agents)
    async with Runtime(config.with_(control=False), store=store) as rt:
        job_id = await rt.submit(manifest)
        await settle(rt)
        send = []
        for i in range(args.sends):
            agent = f"a{i % args.agents}"
            message = {"n": i}
            send.append(await timed(lambda a=agent, m=message: rt.control.send_message(job_id, a, m)))
            await settle(rt)
        pause, resume = [], []
        for _ in range(args.repeat):
            pause.append(await timed(lambda: rt.control.pause(job_id)))
            marked(rt, job_id, True)
            resume.append(await timed(lambda: rt.control.resume(job_id)))
            marked(rt, job_id, False)
            await settle(rt)
        cancel = []
        for _ in range(args.repeat):
            victim = await rt.submit(manifest)
            await settle(rt)
            await asyncio.sleep(SETTLE)  # let the creation writes go out: time the cancel, not them
            job = rt.jobs[victim]
            cancel.append(await timed(lambda victim=victim: rt.control.cancel(victim)))
            assert job.terminal and all(c.status == "cancelled" for c in job.cells.values())
        await rt.control.cancel(job_id)
    return {"send": stats(send), "pause": stats(pause), "resume": stats(resume), "cancel": stats(cancel)}


# -- over REST -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp: Path, store: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp / "data")}
    env.pop("MIRROR_NEURON_API_TOKEN", None)
    if store == "memory":
        env["MIRROR_NEURON_STORE_URL"] = "memory://"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mn serve did not start")


def timed_call(api: httpx.Client, method: str, path: str, **kwargs: Any) -> float:
    start = time.perf_counter()
    response = api.request(method, path, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    return elapsed


def over_rest(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    proc, url = start_server(tmp, args.store)
    manifest = job_manifest(args.agents)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            job_id = api.post("/jobs", json=manifest).json()["job_id"]
            for i in range(50):  # warm up the connection and the handlers
                api.post(f"/jobs/{job_id}/agents/a{i}/messages", json={"warm": i}).raise_for_status()
            send = [
                timed_call(api, "POST", f"/jobs/{job_id}/agents/a{i % args.agents}/messages", json={"n": i})
                for i in range(args.sends)
            ]
            pause, resume = [], []
            for _ in range(args.repeat):
                pause.append(timed_call(api, "POST", f"/jobs/{job_id}/pause"))
                resume.append(timed_call(api, "POST", f"/jobs/{job_id}/resume"))
            cancel = []
            for _ in range(args.repeat):
                victim = api.post("/jobs", json=manifest).json()["job_id"]
                time.sleep(SETTLE)
                cancel.append(timed_call(api, "POST", f"/jobs/{victim}/cancel"))
            api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return {"send": stats(send), "pause": stats(pause), "resume": stats(resume), "cancel": stats(cancel)}


def report(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"{args.agents}-agent job, store={args.store}, {args.sends} sends, {args.repeat} control repeats")
    print(f"{'operation':<10} {'where':<11} {'p50 ms':>8} {'p99 ms':>8} {'goal p99':>9}")
    for op, (goal_in, goal_rest) in GOALS_MS.items():
        for where, goal in (("in-process", goal_in), ("REST", goal_rest)):
            r = results[where][op]
            flag = "ok" if r["p99_ms"] <= goal else "MISSED"
            print(f"{op:<10} {where:<11} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {goal:>7.0f} {flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mn-bench-control-") as tmp:
        results = {"in-process": asyncio.run(in_process(args, Path(tmp))), "REST": over_rest(args, Path(tmp))}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results, args)


if __name__ == "__main__":
    main()
