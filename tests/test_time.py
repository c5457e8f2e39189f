"""Timestamp formatting: the original's ISO-8601 UTC with milliseconds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from mirror_neuron._time import iso


@given(st.floats(min_value=-1e9, max_value=4e9, allow_nan=False))
def test_iso_matches_datetime_truncated_to_the_millisecond(ts: float) -> None:
    ms = int(ts * 1000)
    expected = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
    assert iso(ts) == expected


def test_iso_passes_text_and_none_through() -> None:
    assert iso("2026-01-01T00:00:00.000Z") == "2026-01-01T00:00:00.000Z"
    assert iso(None) is None


def test_iso_is_consistent_across_threads() -> None:
    stamps = [1774695600.0 + i * 0.0013 for i in range(2000)]
    expected = [iso(t) for t in stamps]
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(offset, len(stamps), 3):
            if iso(stamps[i]) != expected[i]:
                failures.append(f"{stamps[i]}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
