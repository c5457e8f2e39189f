#!/usr/bin/env python3
"""Write a complete prime-sweep job bundle: one dispatcher, N workers, an aggregator, a summarizer.

    python3 examples/prime_sweep/generate_bundle.py --workers 4 --start 1000003 --chunk-size 100 \\
        --out examples/prime_sweep/bundle

Graph (every arrow is an edge routed by ``message_type``)::

    dispatcher ──prime_range_request──▶ prime_worker_1 ─┐
               ──prime_range_request──▶ prime_worker_2 ─┤ prime_chunk_done
               ...                                       ├──────────────────▶ collector
               ──prime_range_request──▶ prime_worker_N ─┘                       │ prime_sweep_collected
                                                                                 ▼
                                                                             summarizer  (complete_job)

The dispatcher is a router: it sends one copy of the request along each of its N
same-typed edges. Worker ``i`` checks ``[start + (i-1)·C, start + i·C)``; its range is in
its argv, so the broadcast request itself needs no per-worker data. The collector waits
for N results (``complete_after``) and, because it has an ``output_message_type``, passes
them on instead of completing the job; the summarizer ends the job with the summary.

Standard library only. The scripts copied into ``payloads/`` live next to this file under
``templates/``. The output is deterministic: generating twice gives identical files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"

DEFAULT_WORKERS = 4
DEFAULT_START = 1_000_003
DEFAULT_CHUNK_SIZE = 100


def worker_id(index: int) -> str:
    return f"prime_worker_{index}"


def build_manifest(workers: int, start: int, chunk_size: int) -> dict[str, Any]:
    """The manifest as a dict (JSON-ready)."""
    end = start + workers * chunk_size
    nodes: list[dict[str, Any]] = [
        {
            "node_id": "dispatcher",
            "agent_type": "router",
            "type": "map",
            "role": "root_coordinator",
            "config": {"emit_type": "prime_range_request"},
        }
    ]
    edges: list[dict[str, Any]] = []
    for index in range(1, workers + 1):
        lo = start + (index - 1) * chunk_size
        hi = lo + chunk_size
        wid = worker_id(index)
        nodes.append(
            {
                "node_id": wid,
                "agent_type": "executor",
                "type": "map",
                "role": "prime_worker",
                "config": {
                    "upload_path": "prime_worker",
                    "upload_as": "prime_worker",
                    "workdir": "/sandbox/job/prime_worker",
                    "command": ["python3", "scripts/check_range.py", wid, str(lo), str(hi)],
                    "output_message_type": "prime_chunk_done",
                },
            }
        )
        edges.append(
            {
                "edge_id": f"dispatch_to_{wid}",
                "from_node": "dispatcher",
                "to_node": wid,
                "message_type": "prime_range_request",
            }
        )
        edges.append(
            {
                "edge_id": f"{wid}_to_collector",
                "from_node": wid,
                "to_node": "collector",
                "message_type": "prime_chunk_done",
            }
        )
    nodes.append(
        {
            "node_id": "collector",
            "agent_type": "aggregator",
            "type": "reduce",
            "config": {"complete_after": workers, "output_message_type": "prime_sweep_collected"},
        }
    )
    nodes.append(
        {
            "node_id": "summarizer",
            "agent_type": "executor",
            "type": "reduce",
            "role": "result_sink",
            "config": {
                "upload_path": "summary_worker",
                "upload_as": "summary_worker",
                "workdir": "/sandbox/job/summary_worker",
                "command": ["python3", "scripts/summarize_sweep.py"],
                # The summary is the job result (structured complete_job); no default emit.
                "output_message_type": None,
            },
        }
    )
    edges.append(
        {
            "edge_id": "collector_to_summarizer",
            "from_node": "collector",
            "to_node": "summarizer",
            "message_type": "prime_sweep_collected",
        }
    )
    return {
        "manifest_version": "1.0",
        "graph_id": "prime_sweep",
        "job_name": f"primes in [{start}, {end}) across {workers} workers",
        "metadata": {
            "owner": "examples",
            "generated_by": "examples/prime_sweep/generate_bundle.py",
            "parameters": {"workers": workers, "start": start, "chunk_size": chunk_size},
        },
        "entrypoints": ["dispatcher"],
        "initial_inputs": {
            "dispatcher": [
                {
                    "sweep_id": f"primes-{start}-{end}",
                    "start": start,
                    "end": end,
                    "chunk_size": chunk_size,
                    "workers": workers,
                }
            ]
        },
        "nodes": nodes,
        "edges": edges,
        "policies": {"recovery_mode": "local_restart"},
    }


def write_bundle(out: Path, workers: int, start: int, chunk_size: int) -> Path:
    """Create (or regenerate) the bundle folder ``out``; returns its manifest path."""
    if out.exists():
        unexpected = sorted(p.name for p in out.iterdir() if p.name not in ("manifest.json", "payloads"))
        if unexpected:
            raise SystemExit(f"refusing to overwrite {out}: it holds more than a bundle ({unexpected})")
        shutil.rmtree(out / "payloads", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(TEMPLATES, out / "payloads", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps(build_manifest(workers, start, chunk_size), indent=2) + "\n")
    return manifest


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a prime-sweep MirrorNeuron job bundle.")
    parser.add_argument(
        "--workers", type=positive, default=DEFAULT_WORKERS, help="number of worker nodes (N)"
    )
    parser.add_argument("--start", type=non_negative, default=DEFAULT_START, help="first number checked")
    parser.add_argument(
        "--chunk-size", type=positive, default=DEFAULT_CHUNK_SIZE, help="numbers per worker (C)"
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    args = parser.parse_args(argv)
    manifest = write_bundle(args.out, args.workers, args.start, args.chunk_size)
    end = args.start + args.workers * args.chunk_size
    print(f"wrote {manifest} ({args.workers} workers, [{args.start}, {end}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
