"""Stream producer: one run emits a whole telemetry stream as K chunk messages.

Each chunk is an NDJSON string (one JSON sample per line) sent with structured stdout::

    {"emit_messages": [{"type": "telemetry_chunk", "body": "<ndjson>",
                        "content_type": "application/x-ndjson", "content_encoding": "gzip",
                        "class": "stream", "stream": {"stream_id", "seq", "open", "close", "eof"}}, ...]}

The body is emitted as plain text; ``content_encoding: gzip`` asks the runtime to gzip it
when it writes the consumer's ``mirror_neuron_body.bin``. The data is deterministic: a
seeded random jitter around a slowly drifting baseline, plus spikes of ``PEAK_HEIGHT`` at
exactly ``PEAK_POSITIONS`` (sample sequence numbers).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

BASE_TIMESTAMP_MS = 1_717_200_000_000  # fixed, so reruns produce byte-identical chunks
SAMPLE_INTERVAL_MS = 100


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def generate_samples(
    count: int, baseline: float, drift: float, jitter: float, peak_height: float, peaks: set[int], seed: int
) -> list[dict[str, Any]]:
    """``count`` samples; sample ``i`` is ``baseline + drift·i + U(-jitter, jitter)`` (+ a peak)."""
    rng = random.Random(seed)
    samples = []
    for seq in range(count):
        value = baseline + drift * seq + rng.uniform(-jitter, jitter)
        if seq in peaks:
            value += peak_height
        samples.append(
            {"seq": seq, "ts_ms": BASE_TIMESTAMP_MS + seq * SAMPLE_INTERVAL_MS, "value": round(value, 3)}
        )
    return samples


def main() -> None:
    with open(os.environ["MIRROR_NEURON_CONTEXT_FILE"], encoding="utf-8") as fh:
        context = json.load(fh)
    # The trigger message's body is read only to show it is available; it carries no data here.
    with open(os.environ["MIRROR_NEURON_INPUT_FILE"], encoding="utf-8") as fh:
        json.load(fh)

    device = setting("DEVICE_ID", "device-1")
    count = int(setting("SAMPLE_COUNT", "240"))
    chunk_size = int(setting("CHUNK_SIZE", "30"))
    peaks = {int(p) for p in setting("PEAK_POSITIONS", "").split(",") if p.strip()}
    samples = generate_samples(
        count,
        baseline=float(setting("BASELINE", "50")),
        drift=float(setting("DRIFT", "0")),
        jitter=float(setting("JITTER", "1")),
        peak_height=float(setting("PEAK_HEIGHT", "20")),
        peaks=peaks,
        seed=int(setting("SIMULATION_SEED", "1")),
    )
    encoding = setting("STREAM_CONTENT_ENCODING", "gzip")
    stream_id = f"{context['job_id']}:{context['agent_id']}:{device}"

    chunks = [samples[i : i + chunk_size] for i in range(0, len(samples), chunk_size)]
    last = len(chunks) - 1
    emits = []
    for index, chunk in enumerate(chunks):
        emits.append(
            {
                "type": "telemetry_chunk",
                "body": "".join(json.dumps({"device_id": device, **s}) + "\n" for s in chunk),
                "content_type": "application/x-ndjson",
                "content_encoding": encoding,
                "class": "stream",
                "headers": {"device_id": device, "first_seq": chunk[0]["seq"], "last_seq": chunk[-1]["seq"]},
                "stream": {
                    "stream_id": stream_id,
                    "seq": index,
                    "open": index == 0,
                    "close": index == last,
                    "eof": index == last,
                    "items": len(chunk),
                },
            }
        )
    print(
        json.dumps(
            {
                "events": [
                    {
                        "type": "telemetry_stream_started",
                        "payload": {"stream_id": stream_id, "chunks": len(chunks), "samples": len(samples)},
                    }
                ],
                "emit_messages": emits,
            }
        )
    )


if __name__ == "__main__":
    main()
