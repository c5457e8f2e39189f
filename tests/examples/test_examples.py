"""The example bundles end to end: exact results, event counts, and the prime-sweep generator.

Executors run in the real bubblewrap sandbox (the default runner), as a user would run them.
Expected values are computed here independently of the bundles' scripts (text metrics with
Python string methods, primes with a sieve), so a wrong script or a wrong runtime fails.
"""

from __future__ import annotations

import collections
import filecmp
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from builders import EXAMPLES
from mirror_neuron import Runtime
from mirror_neuron.execution import sandbox_available

PRIME_SWEEP = EXAMPLES / "prime_sweep"
GENERATOR = PRIME_SWEEP / "generate_bundle.py"
NEW_EXAMPLES = {
    # folder: (nodes, edges)
    "report_chain": (3, 2),
    "prime_sweep/bundle": (7, 9),
    "stream_peaks": (2, 1),
    "direct_messages": (2, 0),
    "slow_squares": (3, 2),
}
TIMEOUT = 30


@pytest.fixture
def sandbox() -> None:
    """The examples run in the bubblewrap sandbox: fail in CI without it, skip elsewhere."""
    ok, why = sandbox_available()
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the example bundles: {why}")
    pytest.skip(why)


# -- helpers ---------------------------------------------------------------------------


def mn(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MIRROR_NEURON_STORE_URL", "MN_STORE_URL")}
    if data_dir is not None:
        env["MIRROR_NEURON_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def received(events: list[dict[str, Any]], agent_id: str) -> list[dict[str, Any]]:
    """Summaries of the messages ``agent_id`` processed, in order."""
    return [
        e["payload"] for e in events if e["type"] == "agent_message_received" and e["agent_id"] == agent_id
    ]


def payloads_of(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["type"] == event_type]


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ inside bundles
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


def primes_below(limit: int) -> list[int]:
    """Sieve of Eratosthenes: an independent check of the workers' trial division."""
    if limit < 3:
        return []
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return [n for n in range(limit) if sieve[n]]


def expected_sweep(workers: int, start: int, chunk: int) -> dict[str, Any]:
    end = start + workers * chunk
    primes = [p for p in primes_below(end) if p >= start]
    per_chunk = []
    for i in range(workers):
        lo, hi = start + i * chunk, start + (i + 1) * chunk
        count = sum(1 for p in primes if lo <= p < hi)
        per_chunk.append({"worker_id": f"prime_worker_{i + 1}", "start": lo, "end": hi, "prime_count": count})
    return {
        "range": {"start": start, "end": end},
        "workers": workers,
        "numbers_checked": end - start,
        "prime_count": len(primes),
        "first_prime": primes[0] if primes else None,
        "last_prime": primes[-1] if primes else None,
        "max_gap": max((b - a for a, b in itertools.pairwise(primes)), default=None),
        "per_chunk": per_chunk,
    }


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(NEW_EXAMPLES))
def test_each_example_validates_with_mn_validate(folder: str) -> None:
    proc = mn("validate", "--json", str(EXAMPLES / folder))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is True
    assert (summary["nodes"], summary["edges"]) == NEW_EXAMPLES[folder]


def test_examples_use_the_default_sandbox_runner() -> None:
    for folder in NEW_EXAMPLES:
        manifest = json.loads((EXAMPLES / folder / "manifest.json").read_text())
        for node in manifest["nodes"]:
            config = node.get("config", {})
            assert "runner" not in config and "runner_module" not in config, (folder, node["node_id"])


# -- report_chain ----------------------------------------------------------------------


def expected_metrics(text: str) -> dict[str, Any]:
    words = re.findall(r"[a-z']+", text.lower())
    top_word, top_count = min(collections.Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "lines": text.count("\n"),
        "words": len(text.split()),
        "chars": len(text),
        "bytes": len(text.encode("utf-8")),
        "unique_words": len(set(words)),
        "top_word": top_word,
        "top_word_count": top_count,
        "tool": "wc/tr/sort/uniq",
    }


async def test_report_chain_shell_then_python_then_aggregator(sandbox: None, memory_runtime: Runtime) -> None:
    request = json.loads((EXAMPLES / "report_chain" / "manifest.json").read_text())["initial_inputs"][
        "word_count"
    ][0]
    job_id, job = await memory_runtime.run(str(EXAMPLES / "report_chain"), timeout=TIMEOUT)
    assert job["status"] == "completed", job.get("result")
    assert job["result"]["agent_id"] == "collector"
    output = job["result"]["output"]
    assert output["count"] == 1
    report_payload = output["last_message"]
    assert report_payload["agent_id"] == "report"
    assert report_payload["sandbox"]["exit_code"] == 0

    metrics = expected_metrics(request["text"])
    assert metrics["chars"] != metrics["bytes"]  # the text has a multi-byte character on purpose
    # The report's input is the shell stage's payload; its stdout is plain JSON, passed on verbatim.
    assert json.loads(report_payload["input"]["sandbox"]["stdout"]) == metrics
    assert report_payload["input"]["input"] == request
    report = json.loads(report_payload["sandbox"]["stdout"])
    words = metrics["words"]
    assert report == {
        "request_id": "rpt-2024-017",
        "headline": f"{words} words, {metrics['lines']} lines, {metrics['unique_words']} distinct words",
        "explanation": (
            f"The most frequent word is {metrics['top_word']!r} ({metrics['top_word_count']} times); "
            f"{metrics['chars']} characters in {metrics['bytes']} UTF-8 bytes."
        ),
        "reading_time_seconds": -(-words * 60 // 200),
        "lexical_density": round(metrics["unique_words"] / words, 3),
        "metrics": metrics,
        "metrics_from": "word_count",
        "text_preview": request["text"].splitlines()[0],
    }
    assert (metrics["words"], metrics["lines"], metrics["top_word"]) == (50, 4, "the")

    events = await memory_runtime.events(job_id)
    assert [(m["from"], m["type"]) for m in received(events, "report")] == [("word_count", "metrics_ready")]
    assert [(m["from"], m["type"], m["class"]) for m in received(events, "collector")] == [
        ("report", "report_ready", "event")
    ]
    completed = [e["agent_id"] for e in events if e["type"] == "sandbox_job_completed"]
    assert completed == ["word_count", "report"]


# -- prime_sweep -----------------------------------------------------------------------


async def test_prime_sweep_default_bundle_summary_is_exact(sandbox: None, memory_runtime: Runtime) -> None:
    job_id, job = await memory_runtime.run(str(PRIME_SWEEP / "bundle"), timeout=TIMEOUT)
    assert job["status"] == "completed", job.get("result")
    assert job["result"]["agent_id"] == "summarizer"
    summary = job["result"]["output"]
    assert summary == expected_sweep(workers=4, start=1_000_003, chunk=100)
    assert (summary["prime_count"], summary["first_prime"], summary["last_prime"]) == (
        32,
        1_000_003,
        1_000_397,
    )

    events = await memory_runtime.events(job_id)
    workers = [f"prime_worker_{i}" for i in range(1, 5)]
    for worker in workers:
        assert [(m["from"], m["type"]) for m in received(events, worker)] == [
            ("dispatcher", "prime_range_request")
        ]
    assert sorted(m["from"] for m in received(events, "collector")) == workers
    assert [p["count"] for p in payloads_of(events, "aggregator_received")] == [1, 2, 3, 4]
    assert [(m["from"], m["type"]) for m in received(events, "summarizer")] == [
        ("collector", "prime_sweep_collected")
    ]
    assert len([e for e in events if e["type"] == "sandbox_job_completed"]) == 5


def test_committed_prime_bundle_is_the_generators_default_output(tmp_path: Path) -> None:
    generator = load_module(GENERATOR, "prime_sweep_generator")
    out = tmp_path / "bundle"
    assert generator.main(["--out", str(out)]) == 0
    committed = PRIME_SWEEP / "bundle"
    assert tree(out) == tree(committed)
    files = [p for p in tree(out) if (out / p).is_file()]
    _, mismatch, errors = filecmp.cmpfiles(out, committed, files, shallow=False)
    assert (mismatch, errors) == ([], []), "regenerate examples/prime_sweep/bundle with generate_bundle.py"
    # The payload scripts are the templates, copied verbatim.
    assert tree(out / "payloads") == tree(PRIME_SWEEP / "templates")


def test_generator_rejects_bad_arguments_and_foreign_folders(tmp_path: Path) -> None:
    generator = load_module(GENERATOR, "prime_sweep_generator_args")
    for bad in (["--workers", "0"], ["--chunk-size", "-5"], ["--start", "-1"], []):
        with pytest.raises(SystemExit) as exc:
            generator.main([*bad, "--out", str(tmp_path / "x")] if bad else bad)
        assert exc.value.code == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        generator.main(["--out", str(foreign)])
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not (foreign / "manifest.json").exists()


def test_generated_bundle_with_other_parameters_validates_and_runs(sandbox: None, tmp_path: Path) -> None:
    # Worker 1's range [1328, 1361) lies inside the prime gap after 1327: it finds nothing.
    workers, start, chunk = 3, 1328, 33
    out = tmp_path / "sweep"
    gen = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--workers",
            str(workers),
            "--start",
            str(start),
            "--chunk-size",
            str(chunk),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert gen.returncode == 0, gen.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    worker_nodes = [n for n in manifest["nodes"] if n["node_id"].startswith("prime_worker_")]
    assert len(worker_nodes) == workers
    assert [n["config"]["command"][2:] for n in worker_nodes] == [
        [f"prime_worker_{i + 1}", str(start + i * chunk), str(start + (i + 1) * chunk)]
        for i in range(workers)
    ]
    collector = next(n for n in manifest["nodes"] if n["node_id"] == "collector")
    assert collector["config"]["complete_after"] == workers

    validated = mn("validate", "--json", str(out))
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["nodes"] == workers + 3

    proc = mn("run", "--json", "--timeout", str(TIMEOUT), str(out), data_dir=tmp_path / "data")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert record["ok"] is True and record["status"] == "completed"
    summary = record["result"]["output"]
    assert summary == expected_sweep(workers, start, chunk)
    assert [c["prime_count"] for c in summary["per_chunk"]] == [0, 4, 3]
    assert summary["first_prime"] == 1361
    assert sum(c["prime_count"] for c in summary["per_chunk"]) == summary["prime_count"]


# -- stream_peaks ----------------------------------------------------------------------


async def test_stream_peaks_finds_the_planted_peaks(sandbox: None, memory_runtime: Runtime) -> None:
    bundle = EXAMPLES / "stream_peaks"
    env = json.loads((bundle / "manifest.json").read_text())["nodes"][0]["config"]["environment"]
    planted = [int(p) for p in env["PEAK_POSITIONS"].split(",")]
    chunks = -(-env["SAMPLE_COUNT"] // env["CHUNK_SIZE"])
    assert (planted, chunks) == ([47, 121, 122, 203], 8)

    job_id, job = await memory_runtime.run(str(bundle), timeout=TIMEOUT)
    assert job["status"] == "completed", job.get("result")
    assert job["result"]["agent_id"] == "peak_detector"
    result = job["result"]["output"]
    assert result["peak_positions"] == planted
    assert (result["chunks"], result["samples"], result["peak_count"]) == (chunks, env["SAMPLE_COUNT"], 4)
    assert result["stream_id"] == f"{job_id}:telemetry_source:pump-7"

    # Peak values are the producer's samples, so the detector read the gzip bodies correctly.
    producer = load_module(
        bundle / "payloads/stream_worker/scripts/emit_telemetry_stream.py", "stream_producer"
    )
    samples = producer.generate_samples(
        env["SAMPLE_COUNT"],
        baseline=env["BASELINE"],
        drift=env["DRIFT"],
        jitter=env["JITTER"],
        peak_height=env["PEAK_HEIGHT"],
        peaks=set(planted),
        seed=env["SIMULATION_SEED"],
    )
    assert [p["value"] for p in result["peaks"]] == [samples[i]["value"] for i in planted]
    assert all(p["delta"] > 8 for p in result["peaks"])

    events = await memory_runtime.events(job_id)
    chunk_msgs = received(events, "peak_detector")
    assert [m["stream"]["seq"] for m in chunk_msgs] == list(range(chunks))
    assert {(m["type"], m["class"], m["content_type"], m["content_encoding"]) for m in chunk_msgs} == {
        ("telemetry_chunk", "stream", "application/x-ndjson", "gzip")
    }
    assert [m["stream"]["open"] for m in chunk_msgs] == [True] + [False] * (chunks - 1)
    assert [m["stream"]["close"] for m in chunk_msgs] == [False] * (chunks - 1) + [True]
    assert [m["stream"]["eof"] for m in chunk_msgs] == [False] * (chunks - 1) + [True]
    assert {m["stream"]["stream_id"] for m in chunk_msgs} == {result["stream_id"]}

    assert [p["seq"] for p in payloads_of(events, "peak_detected")] == planted
    analyzed = payloads_of(events, "stream_chunk_analyzed")
    assert [a["chunk_seq"] for a in analyzed] == list(range(chunks))
    assert [a["peaks"] for a in analyzed] == [0, 1, 0, 0, 2, 0, 1, 0]
    assert payloads_of(events, "telemetry_stream_started") == [
        {"stream_id": result["stream_id"], "chunks": chunks, "samples": env["SAMPLE_COUNT"]}
    ]

    agents = {a["agent_id"]: a for a in await memory_runtime.inspect_agents(job_id)}
    state = agents["peak_detector"]["current_state"]
    assert state["runs"] == chunks
    assert state["agent_state"]["next_chunk_seq"] == chunks
    assert state["agent_state"]["samples_seen"] == env["SAMPLE_COUNT"]
    assert len(state["agent_state"]["window"]) == 20


# -- direct_messages -------------------------------------------------------------------


def expected_schedule(ticks: int) -> dict[str, Any]:
    return {
        "job": "nightly-compaction",
        "ticks": ticks,
        "invocations": ticks + 1,
        "tick_senders": ["scheduler"] * ticks,
    }


async def test_direct_messages_tick_to_self_then_to_the_sink(sandbox: None, runtime: Runtime) -> None:
    job_id, job = await runtime.run(str(EXAMPLES / "direct_messages"), timeout=TIMEOUT)
    assert job["status"] == "completed", job.get("result")
    assert job["result"] == {"agent_id": "sink", "output": {"count": 1, "last_message": expected_schedule(5)}}

    events = await runtime.events(job_id)
    assert [(m["from"], m["type"]) for m in received(events, "scheduler")] == [("runtime", "init")] + [
        ("scheduler", "tick")
    ] * 5
    assert [(m["from"], m["to"], m["type"]) for m in received(events, "sink")] == [
        ("scheduler", "sink", "schedule_finished")
    ]
    assert payloads_of(events, "tick_processed") == [{"tick": n, "from": "scheduler"} for n in range(1, 6)]
    assert payloads_of(events, "schedule_started") == [{"total_ticks": 5}]
    assert payloads_of(events, "sensor_observed") == [{"count": 1}]
    assert not [e for e in events if e["type"] == "dead_letter"]


async def test_direct_messages_tick_count_follows_the_configuration(
    sandbox: None, memory_runtime: Runtime, tmp_path: Path
) -> None:
    bundle = tmp_path / "direct_messages"
    shutil.copytree(EXAMPLES / "direct_messages", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["nodes"][0]["config"]["environment"]["TOTAL_TICKS"] = 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))

    job_id, job = await memory_runtime.run(str(bundle), timeout=TIMEOUT)
    assert job["status"] == "completed", job.get("result")
    assert job["result"]["output"]["last_message"] == expected_schedule(2)
    events = await memory_runtime.events(job_id)
    assert len(payloads_of(events, "tick_processed")) == 2
    assert len(received(events, "scheduler")) == 3
