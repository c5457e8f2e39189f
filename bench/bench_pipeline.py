"""Throughput of a manifest-routed 3-stage router pipeline, against bare asyncio, in one run.

    python bench/bench_pipeline.py [--messages 200000] [--repeat 3]

Stages: ingress router → stage2 router → stage3 router → sensor sink that completes
the job after N messages. Reports messages/s (input messages fully through the
pipeline per second, seeding and completion included) as medians, for the bare-asyncio
baseline, the in-memory store and the SQLite store (every event persisted), and the
ratios between them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mirror_neuron import Config, Runtime
from mirror_neuron.bundle import load_bundle
from mirror_neuron.store import open_store


def pipeline_manifest(n: int) -> dict:
    routers = ["ingress", "stage2", "stage3"]
    nodes = [{"node_id": r, "agent_type": "router", "config": {"emit_type": "work"}} for r in routers] + [
        {"node_id": "sink", "agent_type": "sensor", "config": {"complete_after": n, "complete_job": True}}
    ]
    chain = [*routers, "sink"]
    edges = [{"from_node": a, "to_node": b, "message_type": "work"} for a, b in itertools.pairwise(chain)]
    return {
        "manifest_version": "1.0",
        "graph_id": "bench_pipeline",
        "entrypoints": ["ingress"],
        "initial_inputs": {"ingress": [{"i": i} for i in range(n)]},
        "nodes": nodes,
        "edges": edges,
    }


async def bare_asyncio(n: int) -> float:
    """The same shape with asyncio.Queue per stage and one task per stage."""
    queues = [asyncio.Queue() for _ in range(4)]
    done = asyncio.get_running_loop().create_future()

    async def stage(i: int) -> None:
        q_in, q_out = queues[i], queues[i + 1]
        while True:
            item = await q_in.get()
            q_out.put_nowait({"type": "work", "body": item["body"]})

    async def sink() -> None:
        count = 0
        while True:
            await queues[3].get()
            count += 1
            if count == n:
                done.set_result(count)

    start = time.perf_counter()
    tasks = [asyncio.create_task(stage(i)) for i in range(3)] + [asyncio.create_task(sink())]
    for i in range(n):
        queues[0].put_nowait({"type": "init", "body": {"i": i}})
    await done
    elapsed = time.perf_counter() - start
    for t in tasks:
        t.cancel()
    return n / elapsed


async def mirror_neuron(n: int, store_url: str) -> tuple[float, int]:
    bundle = load_bundle(pipeline_manifest(n))
    store = open_store(store_url)
    async with Runtime(Config(store_url=store_url), store=store) as rt:
        start = time.perf_counter()
        job_id = await rt.submit(bundle)
        record = await rt.wait(job_id)
        elapsed = time.perf_counter() - start
        assert record["status"] == "completed", record
        assert record["result"]["output"]["count"] == n
        events = store.count_events(job_id)
    return n / elapsed, events


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str | None]:
    """A throwaway redis-server on a free loopback port, when one is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    results: dict[str, list[float]] = {"bare_asyncio": [], "memory": [], "sqlite": []}
    events = {}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        if redis_url:
            results["redis"] = []
        for r in range(args.repeat):
            results["bare_asyncio"].append(asyncio.run(bare_asyncio(n)))
            rate, events["memory"] = asyncio.run(mirror_neuron(n, "memory://"))
            results["memory"].append(rate)
            db = Path(tmp) / f"bench{r}.db"
            rate, events["sqlite"] = asyncio.run(mirror_neuron(n, f"sqlite:///{db}"))
            results["sqlite"].append(rate)
            if redis_url:
                rate, events["redis"] = asyncio.run(mirror_neuron(n, redis_url))
                results["redis"].append(rate)
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "messages": n,
        "repeat": args.repeat,
        "median_msgs_per_s": {k: round(v) for k, v in med.items()},
        "events_persisted": events,
        "ratio_memory_vs_bare": round(med["memory"] / med["bare_asyncio"], 3),
        "ratio_sqlite_vs_memory": round(med["sqlite"] / med["memory"], 3),
    }
    if "redis" in med:
        report["ratio_redis_vs_memory"] = round(med["redis"] / med["memory"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
