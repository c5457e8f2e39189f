"""Start-up and footprint: 1 → 1,000 → 1 fan-out/fan-in, a 100k-node job, idle agent cost, `mn run`.

    python bench/bench_scale.py [--nodes 100000] [--fanout 1000] [--repeat 5]

* fan-out/fan-in: wall time of the first round, agent creation included (submit → completed);
* large job: time for a job with N idle agents to reach ``running`` (every agent created,
  inputs seeded), and the resident memory it adds, per agent (RSS delta / N);
* CLI: wall time of ``mn run examples/research_flow --json`` (process start included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirror_neuron import Config, Runtime
from mirror_neuron.bundle import load_bundle
from mirror_neuron.store import MemoryStore

ROOT = Path(__file__).resolve().parents[1]


def fan_manifest(width: int) -> dict:
    workers = [
        {"node_id": f"w{i}", "agent_type": "router", "config": {"emit_type": "done"}} for i in range(width)
    ]
    return {
        "manifest_version": "1.0",
        "graph_id": "fan",
        "entrypoints": ["src"],
        "nodes": [
            {"node_id": "src", "agent_type": "router", "config": {"emit_type": "work"}},
            *workers,
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": width}},
        ],
        "edges": [{"from_node": "src", "to_node": f"w{i}", "message_type": "work"} for i in range(width)]
        + [{"from_node": f"w{i}", "to_node": "sink", "message_type": "done"} for i in range(width)],
    }


def idle_manifest(n: int) -> dict:
    # One entrypoint that nobody answers: every other agent stays idle.
    nodes = [{"node_id": f"a{i}", "agent_type": "router"} for i in range(n)]
    return {"manifest_version": "1.0", "graph_id": "idle", "entrypoints": ["a0"], "nodes": nodes, "edges": []}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


async def fan_round(width: int) -> float:
    bundle = load_bundle(fan_manifest(width))
    async with Runtime(Config(), store=MemoryStore()) as rt:
        start = time.perf_counter()
        job_id = await rt.submit(bundle)
        record = await rt.wait(job_id)
        elapsed = time.perf_counter() - start
        assert record["result"]["output"]["count"] == width
    return elapsed


async def large_job(n: int) -> tuple[float, float]:
    bundle = load_bundle(idle_manifest(n))
    async with Runtime(Config(), store=MemoryStore()) as rt:
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        job_id = await rt.submit(bundle)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.2)  # let the entrypoint's message and the first flush happen
        await rt.writer.flush()
        gc.collect()
        per_agent = (rss_bytes() - before) / n
        assert rt.jobs[job_id].status == "running"
    return elapsed, per_agent


def cli_run() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MIRROR_NEURON_DATA_DIR": tmp}
        start = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mirror_neuron",
                "run",
                "--json",
                str(ROOT / "examples" / "research_flow"),
            ],
            capture_output=True,
            env=env,
            check=True,
        )
        elapsed = time.perf_counter() - start
        assert json.loads(out.stdout)["status"] == "completed"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fan = [asyncio.run(fan_round(args.fanout)) for _ in range(args.repeat)]
    starts, costs = zip(*(asyncio.run(large_job(args.nodes)) for _ in range(max(1, args.repeat // 2))))
    cli = [cli_run() for _ in range(args.repeat)]
    print(
        json.dumps(
            {
                "fanout_first_round_ms": round(statistics.median(fan) * 1000, 1),
                "large_job_nodes": args.nodes,
                "large_job_start_s": round(statistics.median(starts), 3),
                "idle_agent_bytes": round(statistics.median(costs)),
                "mn_run_research_flow_s": round(statistics.median(cli), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
