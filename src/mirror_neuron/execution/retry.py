"""When a failed run is worth another attempt, and how long to wait first.

The original retried when *any* captured text (stdout included) contained a transient
marker, so a script printing "service unavailable" as data was re-run. Here only the
process's own error channel counts: its stderr and the runner's error (e.g. a timeout).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Lower-case substrings that mark a failure as transient (network-ish), as in the original.
TRANSIENT_MARKERS = (
    "h2 protocol error",
    "peer closed connection",
    "status: unknown",
    "error reading a body from connection",
    "tls close_notify",
    "transport error",
    "connection reset",
    "connection refused",
    "timed out",
    "deadline exceeded",
    "unavailable",
)
MAX_BACKOFF_MS = 30_000.0


def is_transient(texts: Iterable[str | None]) -> bool:
    """True when any of ``texts`` (stderr, runner error) contains a transient marker."""
    for text in texts:
        if text:
            lowered = text.lower()
            if any(marker in lowered for marker in TRANSIENT_MARKERS):
                return True
    return False


def backoff_seconds(attempt: int, base_ms: float, cap_ms: float = MAX_BACKOFF_MS) -> float:
    """``base · 2^(attempt-1)`` milliseconds, capped, in seconds (``attempt`` is 1-based)."""
    exponent = min(max(attempt - 1, 0), 32)
    return float(min(base_ms * (2**exponent), cap_ms)) / 1000.0
