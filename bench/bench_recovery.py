"""Recovery speed: restoring a 10,000-agent job from the store after its runtime died.

    python bench/bench_recovery.py [--agents 10000] [--repeat 3]

A job of N agents (N-2 idle routers, an entry router and an aggregator waiting for a second
message) is committed to SQLite; its runtime then "dies" (the job is dropped without being
ended). A new runtime recovers it. Reported, as medians: agents restored per second, and the
time from the start of recovery until the job makes progress again (a message sent to the
recovered aggregator completes it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from mirror_neuron import Config, Runtime


def big_manifest(n: int) -> dict:
    idle = [{"node_id": f"idle{i}", "agent_type": "router"} for i in range(n - 2)]
    return {
        "manifest_version": "1.0",
        "graph_id": "big",
        "entrypoints": ["entry"],
        "nodes": [
            {"node_id": "entry", "agent_type": "router"},
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": 2}},
            *idle,
        ],
        "edges": [{"from_node": "entry", "to_node": "sink", "message_type": "init"}],
    }


async def one(n: int, tmp: Path) -> tuple[float, float]:
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    first = Runtime(Config(store_url=url, control=False))
    await first.start()
    job_id = await first.submit(big_manifest(n))
    async for event in first.follow(job_id):  # until the sink has its first message
        if event["type"] == "aggregator_received":
            break
    await first.writer.flush()
    first.jobs.pop(job_id)  # the runtime dies; the job stays "running" in the store
    await first.close()

    async with Runtime(Config(store_url=url, control=False)) as second:
        start = time.perf_counter()
        await second.recover(job_id)
        restored = time.perf_counter() - start
        await second.send_message(job_id, "sink", {"after": "restart"})
        record = await second.wait(job_id, timeout=60)
        progress = time.perf_counter() - start
    assert record["status"] == "completed" and record["result"]["output"]["count"] == 2
    return n / restored, progress


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates, progress = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rate, seconds = asyncio.run(one(args.agents, Path(tmp)))
        rates.append(rate)
        progress.append(seconds)
    print(
        json.dumps(
            {
                "agents": args.agents,
                "agents_restored_per_s": round(statistics.median(rates)),
                "progress_after_restart_s": round(statistics.median(progress), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
