"""Prime sweep summarizer: merge every worker's result and complete the job.

The incoming body is the aggregator's result ``{"messages": [...], "count": n,
"last_message": ...}``; each message is a worker's default output payload whose
``sandbox.stdout`` is the worker's plain JSON. Chunks are sorted by their start, so the
summary does not depend on the order in which the workers happened to finish. The summary
is printed as ``{"complete_job": {...}}``, the structured-stdout key that ends the job
with this value as its result.
"""

from __future__ import annotations

import itertools
import json
import os
import sys


def main() -> int:
    with open(os.environ["MIRROR_NEURON_INPUT_FILE"], encoding="utf-8") as fh:
        collected = json.load(fh)
    chunks = sorted(
        (json.loads(message["sandbox"]["stdout"]) for message in collected["messages"]),
        key=lambda chunk: (chunk["start"], chunk["worker_id"]),
    )
    # The chunks must tile one contiguous range exactly once; anything else is a bug upstream.
    for before, after in itertools.pairwise(chunks):
        if before["end"] != after["start"]:
            print(f"chunks do not tile: {before['end']} != {after['start']}", file=sys.stderr)
            return 1
    primes = [p for chunk in chunks for p in chunk["primes"]]
    summary = {
        "range": {"start": chunks[0]["start"], "end": chunks[-1]["end"]} if chunks else None,
        "workers": len(chunks),
        "numbers_checked": sum(chunk["checked"] for chunk in chunks),
        "prime_count": len(primes),
        "first_prime": primes[0] if primes else None,
        "last_prime": primes[-1] if primes else None,
        "max_gap": max((b - a for a, b in itertools.pairwise(primes)), default=None),
        "per_chunk": [
            {
                "worker_id": chunk["worker_id"],
                "start": chunk["start"],
                "end": chunk["end"],
                "prime_count": chunk["prime_count"],
            }
            for chunk in chunks
        ],
    }
    print(json.dumps({"complete_job": summary}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
