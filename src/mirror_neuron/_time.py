"""Wall-clock timestamps: taken as floats on the hot path, formatted only at boundaries."""

from __future__ import annotations

import time

now = time.time

_cache_second = -1
_cache_prefix = ""


def iso(ts: float | str | None) -> str | None:
    """Format epoch seconds as ISO-8601 UTC with milliseconds (``2026-03-28T11:00:00.000Z``)."""
    global _cache_second, _cache_prefix
    if ts is None or isinstance(ts, str):
        return ts
    second = int(ts)
    if second != _cache_second:
        _cache_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _cache_second = second
    return f"{_cache_prefix}.{int((ts - second) * 1000):03d}Z"


def now_iso() -> str:
    return iso(time.time())  # type: ignore[return-value]
