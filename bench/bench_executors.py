"""Executor throughput: a 1 → N → 1 fan-out of trivial Python executors with a pool of 4.

    python bench/bench_executors.py [--workers 500] [--repeat 3]

Reports runs/s (N / wall time from submit to completion) for the sandbox runner and the
host runner, next to a bare-asyncio baseline that starts the same command N times with at
most 4 at once, all in one run, as medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from mirror_neuron import Config, Runtime
from mirror_neuron.store import MemoryStore
from mirror_neuron.validation import load_bundle

COMMAND = ["python3", "-c", "import json; print(json.dumps({'ok': True}))"]
# The sandbox sees the system interpreter; make the host runner and the baseline use it too,
# so the comparison measures the runtime, not two interpreters' start-up (a virtualenv or
# pyenv python with many packages can take 5x longer to start).
os.environ["PATH"] = "/usr/bin:" + os.environ.get("PATH", "")


def fan_manifest(n: int, runner: str) -> dict:
    workers = [
        {"node_id": f"w{i}", "agent_type": "executor", "config": {"command": COMMAND, "runner": runner}}
        for i in range(n)
    ]
    return {
        "manifest_version": "1.0",
        "graph_id": "exec_fan",
        "entrypoints": ["src"],
        "nodes": [
            {"node_id": "src", "agent_type": "router", "config": {"emit_type": "go"}},
            *workers,
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": n}},
        ],
        "edges": [{"from_node": "src", "to_node": f"w{i}", "message_type": "go"} for i in range(n)]
        + [{"from_node": f"w{i}", "to_node": "sink", "message_type": "executor_result"} for i in range(n)],
    }


async def bare(n: int, concurrency: int = 4) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            await proc.communicate()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


async def mirror_neuron(n: int, runner: str) -> float:
    bundle = load_bundle(fan_manifest(n, runner))
    async with Runtime(Config(executor_max_concurrency=4), store=MemoryStore()) as rt:
        start = time.perf_counter()
        job_id = await rt.submit(bundle)
        record = await rt.wait(job_id)
        elapsed = time.perf_counter() - start
    assert record["status"] == "completed", record.get("result")
    assert record["result"]["output"]["count"] == n
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"bare_subprocess": [], "host_local": [], "sandbox": []}
    for _ in range(args.repeat):
        runs["bare_subprocess"].append(asyncio.run(bare(args.workers)))
        runs["host_local"].append(asyncio.run(mirror_neuron(args.workers, "host_local")))
        runs["sandbox"].append(asyncio.run(mirror_neuron(args.workers, "sandbox")))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        json.dumps(
            {
                "workers": args.workers,
                "pool": 4,
                "median_runs_per_s": {k: round(v, 1) for k, v in med.items()},
                "sandbox_vs_bare": round(med["sandbox"] / med["bare_subprocess"], 3),
                "host_local_vs_bare": round(med["host_local"] / med["bare_subprocess"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
