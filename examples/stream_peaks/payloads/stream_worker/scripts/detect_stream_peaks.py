"""Streaming peak detector: one run per chunk, state carried between runs in ``next_state``.

Per invocation it reads

* ``MIRROR_NEURON_MESSAGE_FILE`` → ``stream`` (``stream_id``, ``seq``, ``open``, ``close``, ``eof``);
* ``MIRROR_NEURON_CONTEXT_FILE`` → ``agent_state``: what the previous run returned as
  ``next_state`` (``{}`` on the first run): the baseline window, counters and peaks so far;
* ``MIRROR_NEURON_BODY_FILE`` → the chunk, encoded for transport: gunzipped when
  ``MIRROR_NEURON_BODY_CONTENT_ENCODING`` is ``gzip``, then one JSON sample per line.

A sample is a peak when it exceeds the running baseline (mean of the last ``WINDOW_SIZE``
non-peak samples) by more than ``max(MIN_SPIKE_DELTA, SPIKE_MULTIPLIER · stdev)``. The first
``WARMUP_POINTS`` samples only build the baseline. Each peak becomes a ``peak_detected``
event; the closing chunk (``close`` or ``eof``) completes the job with the summary.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import sys
from typing import Any


def read_json(env_name: str) -> Any:
    with open(os.environ[env_name], encoding="utf-8") as fh:
        return json.load(fh)


def read_samples() -> list[dict[str, Any]]:
    with open(os.environ["MIRROR_NEURON_BODY_FILE"], "rb") as fh:
        raw = fh.read()
    encoding = os.environ.get("MIRROR_NEURON_BODY_CONTENT_ENCODING", "identity")
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding != "identity":
        raise SystemExit(f"unsupported content encoding {encoding!r}")
    content_type = os.environ.get("MIRROR_NEURON_BODY_CONTENT_TYPE", "")
    if content_type != "application/x-ndjson":
        raise SystemExit(f"expected an NDJSON chunk, got content type {content_type!r}")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def main() -> int:
    warmup = int(os.environ.get("WARMUP_POINTS", "10"))
    window_size = int(os.environ.get("WINDOW_SIZE", "20"))
    multiplier = float(os.environ.get("SPIKE_MULTIPLIER", "4"))
    min_delta = float(os.environ.get("MIN_SPIKE_DELTA", "8"))

    stream = read_json("MIRROR_NEURON_MESSAGE_FILE").get("stream") or {}
    state = read_json("MIRROR_NEURON_CONTEXT_FILE").get("agent_state") or {}
    samples = read_samples()

    expected = state.get("next_chunk_seq", 0)
    if stream.get("seq") != expected:
        print(f"chunk {stream.get('seq')} arrived out of order (expected {expected})", file=sys.stderr)
        return 1
    if expected == 0 and not stream.get("open"):
        print("the first chunk of a stream must be marked open", file=sys.stderr)
        return 1

    window: list[float] = list(state.get("window", []))
    seen = state.get("samples_seen", 0)
    peaks: list[dict[str, Any]] = list(state.get("peaks", []))
    events: list[dict[str, Any]] = []
    chunk_peaks = 0
    for sample in samples:
        value = float(sample["value"])
        seen += 1
        if seen <= warmup or len(window) < 2:
            window = [*window, value][-window_size:]
            continue
        baseline = statistics.fmean(window)
        threshold = max(min_delta, multiplier * statistics.pstdev(window))
        delta = value - baseline
        if delta > threshold:
            peak = {
                "seq": sample["seq"],
                "value": value,
                "baseline": round(baseline, 3),
                "delta": round(delta, 3),
            }
            peaks.append(peak)
            chunk_peaks += 1
            events.append(
                {"type": "peak_detected", "payload": {"stream_id": stream.get("stream_id"), **peak}}
            )
        else:
            # Peaks stay out of the window so one spike does not raise the baseline.
            window = [*window, value][-window_size:]

    baseline_now = round(statistics.fmean(window), 3) if window else None
    events.append(
        {
            "type": "stream_chunk_analyzed",
            "payload": {
                "chunk_seq": stream.get("seq"),
                "samples": len(samples),
                "peaks": chunk_peaks,
                "baseline": baseline_now,
            },
        }
    )
    next_state = {
        "stream_id": stream.get("stream_id"),
        "next_chunk_seq": expected + 1,
        "chunks_seen": expected + 1,
        "samples_seen": seen,
        "window": window,
        "peaks": peaks,
    }
    out: dict[str, Any] = {"next_state": next_state, "events": events}
    if stream.get("close") or stream.get("eof"):
        out["complete_job"] = {
            "stream_id": stream.get("stream_id"),
            "chunks": expected + 1,
            "samples": seen,
            "peak_count": len(peaks),
            "peak_positions": [p["seq"] for p in peaks],
            "peaks": peaks,
            "final_baseline": baseline_now,
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
