"""Wall-clock timestamps: taken as floats on the hot path, formatted only at boundaries."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

now = time.time

# (millisecond, text) and (second, "YYYY-MM-DDTHH:MM:SS"): each cache is one tuple, replaced
# in a single assignment, so threads formatting at once never pair a key with another's text.
_last_ms: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-(10**12), "")


def iso(ts: float | str | None) -> str | None:
    """Format epoch seconds as ISO-8601 UTC with milliseconds (``2026-03-28T11:00:00.000Z``)."""
    global _last_ms, _last_second
    if ts is None or ts.__class__ is str:
        return ts
    ms = int(ts * 1000)
    cached = _last_ms
    if cached[0] == ms:  # events come in bursts within one millisecond
        return cached[1]
    second, millis = divmod(ms, 1000)
    prefix = _last_second
    if prefix[0] != second:
        prefix = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    text = f"{prefix[1]}.{millis:03d}Z"
    _last_ms = (ms, text)
    return text


def now_iso() -> str:
    return iso(time.time())  # type: ignore[return-value]


def epoch(stamp: Any) -> float | None:
    """Epoch seconds of an ISO-8601 stamp (``2026-03-28T11:00:00.000Z``), the inverse of
    :func:`iso`; ``None`` for anything else (no stamp, or not a time)."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
