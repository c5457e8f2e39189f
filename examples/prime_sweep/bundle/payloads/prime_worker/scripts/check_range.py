"""Prime sweep worker: find the primes in one half-open range ``[start, end)``.

Driven by argv only (``python3 scripts/check_range.py <worker_id> <start> <end>``); the
generator bakes each worker's range into its command, so every worker can receive the
same broadcast request. The result is printed as plain JSON, which the runtime does not
interpret: it reaches the aggregator inside this executor's ``sandbox.stdout``.
"""

from __future__ import annotations

import json
import sys


def is_prime(n: int) -> bool:
    """Deterministic trial division by 2, 3 and 6k ± 1 (fast enough for 7-digit numbers)."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    k = 5
    while k * k <= n:
        if n % k == 0 or n % (k + 2) == 0:
            return False
        k += 6
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: check_range.py <worker_id> <start> <end>", file=sys.stderr)
        return 2
    worker_id, start, end = argv[1], int(argv[2]), int(argv[3])
    if end < start:
        print(f"empty range: end {end} < start {start}", file=sys.stderr)
        return 2
    primes = [n for n in range(start, end) if is_prime(n)]
    print(
        json.dumps(
            {
                "worker_id": worker_id,
                "start": start,
                "end": end,
                "checked": end - start,
                "prime_count": len(primes),
                "primes": primes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
