"""Run the public MirrorNeuron bundles (P1–P7 of shared/reference/public-examples.md) and check results.

The bundles are not part of this repository. Extract them (see the reference) under one
directory, keeping their repository paths, then:

    python scripts/conformance.py /tmp/conf [P1 P2 ...]

Each bundle runs through ``mn run --json`` in a fresh data directory; the script prints one
line per bundle (PASS/FAIL and why) and exits non-zero if any failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BUNDLES = {
    "P1": "examples/research_flow",
    "P2": "examples/openshell_worker_demo",
    "P3": "prime_sweep_scale/generated/prime_sweep_4_workers_from_1000003_chunk_100",
    "P4": "examples/streaming_peak_demo/generated/streaming_peak_demo_24_samples_4_chunk_gzip",
    "P5": "prime_sweep_scale/generated/prime_sweep_4_workers_from_1000003",
    "P6": "ecosystem_simulation/generated/ecosystem_simulation_240_animals_6_regions_60s",
    "P7": "general_stream_live_backpressure",
}


def mn(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def events_of(job_id: str, env: dict[str, str]) -> list[dict[str, Any]]:
    return json.loads(mn("job", "events", job_id, "--json", env=env).stdout)


def count(events: list[dict[str, Any]], name: str) -> int:
    return sum(1 for e in events if e["type"] == name)


def check_p1(job: dict, events: list) -> None:
    body = {
        "topic": "electric vehicle charging adoption in New England",
        "text": "Collect a short research summary.",
    }
    assert job["result"] == {
        "agent_id": "reviewer",
        "output": {"messages": [body], "count": 1, "last_message": body},
    }
    received = Counter(e["agent_id"] for e in events if e["type"] == "agent_message_received")
    assert received == {"ingress": 1, "retriever": 1, "reviewer": 1}, received


def check_p2(job: dict, events: list) -> None:
    out = job["result"]["output"]
    assert job["result"]["agent_id"] == "result_sink" and out["count"] == 1
    last = out["last_message"]
    assert last["agent_id"] == "python_worker" and last["sandbox"]["exit_code"] == 0
    assert json.loads(last["sandbox"]["stdout"]) == {
        "request_id": "demo-quick-001",
        "headline": "quick-signal: 7 words, 61 chars",
        "explanation": (
            "BEAM orchestrated the flow and OpenShell executed the worker payload folders "
            "inside isolated sandboxes."
        ),
        "text_preview": "BEAM orchestrates workers while OpenShel",
    }
    assert last["input"]["agent_id"] == "shell_worker"
    assert json.loads(last["input"]["sandbox"]["stdout"]) == {
        "text": "BEAM orchestrates workers while OpenShell isolates execution.",
        "word_count": 7,
        "char_count": 61,
    }


def committed_result(root: Path) -> dict:
    """The bundle's committed ``result.json``, which may start with log lines."""
    text = (root / "result.json").read_text()
    return json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)["result"]["output"]


def check_p3(job: dict, events: list, root: Path) -> None:
    assert job["result"]["agent_id"] == "summarizer"
    expected = committed_result(root)
    assert job["result"]["output"] == expected, job["result"]["output"]


def check_p4(job: dict, events: list, root: Path) -> None:
    out = dict(job["result"]["output"])
    assert job["result"]["agent_id"] == "peak_detector"
    assert out.pop("stream_id") == f"{job['job_id']}:telemetry_source:telemetry"
    expected = dict(committed_result(root))
    expected.pop("stream_id", None)
    assert out == expected, out
    chunks = [e["payload"]["chunks_received"] for e in events if e["type"] == "stream_chunk_processed"]
    assert chunks == [1, 2, 3, 4, 5, 6], chunks
    assert count(events, "stream_peak_detected") == 2


def check_p5(job: dict, events: list) -> None:
    out = job["result"]["output"]
    assert job["result"]["agent_id"] == "result_sink" and out["count"] == 4
    by_agent = {m["agent_id"]: m for m in out["messages"]}
    assert set(by_agent) == {f"prime_worker_000{i}" for i in range(1, 5)}
    stdout = {k: json.loads(v["sandbox"]["stdout"]) for k, v in by_agent.items()}
    assert stdout["prime_worker_0001"] == {"candidate": 1000003, "is_prime": True, "checked_limit": 1000}
    assert stdout["prime_worker_0003"]["smallest_divisor"] == 29
    assert stdout["prime_worker_0004"]["smallest_divisor"] == 293
    for m in out["messages"]:
        assert m["input"] == {
            "benchmark": "prime_sweep",
            "worker_count": 4,
            "candidate_start": 1000003,
            "candidate_end": 1000009,
        }


def check_p6(job: dict, events: list) -> None:
    out = job["result"]["output"]
    assert job["result"]["agent_id"] == "summarizer" and out["mode"] == "ecosystem_simulation"
    assert out["region_count"] == 6 and out["regions"] == [f"region_0{i}" for i in range(6)]
    assert (
        out["population_alive"]
        == 240 + out["births"] - out["deaths"] + out["migrants_in"] - out["migrants_out"]
    )
    assert 0 <= out["migrants_in"] <= out["migrants_out"]
    assert len(out["top_10_dna"]) <= 10
    assert count(events, "region_initialized") == 6 and count(events, "region_tick_processed") == 72


def run_p7(root: Path, env: dict[str, str], observe: float) -> None:
    started = mn("run", "--no-wait", "--json", str(root), env=env)
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    time.sleep(observe)
    job = json.loads(mn("job", "inspect", job_id, "--json", env=env).stdout)
    assert job["status"] == "running", job["status"]
    events = events_of(job_id, env)
    burst = [e for e in events if e["type"] == "source_burst_emitted"]
    assert len(burst) == 1 and burst[0]["payload"]["count"] == 48
    seqs = sorted(e["payload"]["seq"] for e in events if e["type"] == "slow_event_processed")
    assert seqs == list(range(1, 49)), seqs
    assert count(events, "stream_metrics_updated") == 48
    cancel = mn("job", "cancel", job_id, "--json", env=env)
    assert cancel.returncode == 0, cancel.stderr
    job = json.loads(mn("job", "inspect", job_id, "--json", env=env).stdout)
    assert job["status"] == "cancelled" and job["result"]["reason"] == "cancelled by operator"


def main() -> int:
    base = Path(sys.argv[1])
    wanted = sys.argv[2:] or list(BUNDLES)
    failed = 0
    for pid in wanted:
        root = base / BUNDLES[pid]
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "MIRROR_NEURON_DATA_DIR": tmp}
            start = time.perf_counter()
            try:
                if pid == "P7":
                    run_p7(root, env, float(os.environ.get("P7_OBSERVE", "90")))
                else:
                    out = mn("run", "--json", "--timeout", "60", str(root), env=env)
                    job = json.loads(out.stdout) if out.stdout.strip() else {"stderr": out.stderr}
                    assert job.get("status") == "completed", job
                    events = events_of(job["job_id"], env)
                    check = globals()[f"check_{pid.lower()}"]
                    check(job, events, root) if pid in ("P3", "P4") else check(job, events)
                print(f"PASS {pid} {BUNDLES[pid]} ({time.perf_counter() - start:.1f}s)")
            except Exception as exc:
                failed += 1
                print(f"FAIL {pid} {BUNDLES[pid]}: {type(exc).__name__}: {str(exc)[:800]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
