"""One big store write: 10,000 events in one ``write_batch``, against the bare client, in one run.

    python bench/bench_store_batch.py [--events 10000] [--repeat 5]

Each durable store (SQLite, and Redis when ``redis-server`` is installed) writes one batch of
N ``agent_message_received`` events of one job, then reads the last ones back to check them.
The baselines are the bare clients doing the least the same write needs, in the same run:
SQLite, one transaction of ``executemany`` into a table keyed by (job, seq) in a WAL file;
Redis, one pipeline of ``RPUSH`` of the encoded events. Reported, as medians: events/s for
each, and each store's ratio to its baseline. The goal is 100k events/s for the Redis store
(the test suite once asserted more than 20k).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from bench_pipeline import redis_server

from mirror_neuron import _json
from mirror_neuron.events import Event
from mirror_neuron.store import SQLiteStore, Store, WriteBatch
from mirror_neuron.store.redis import RedisStore

SUMMARY = (7, "runtime", "a", "init", "command", "application/json", "identity", None)


def batch(job_id: str, n: int) -> list[Event]:
    now = time.time()
    return [Event(seq, "agent_message_received", job_id, now, "a", SUMMARY) for seq in range(1, n + 1)]


def timed(write: Callable[[], None]) -> float:
    start = time.perf_counter()
    write()
    return time.perf_counter() - start


def store_rate(store: Store, job_id: str, n: int) -> float:
    events = batch(job_id, n)
    seconds = timed(lambda: store.write_batch(WriteBatch(events={job_id: events})))
    assert store.count_events(job_id) == n, store
    assert [e["seq"] for e in store.read_events(job_id, after=n - 3)] == [n - 2, n - 1, n]
    return n / seconds


def bare_sqlite_rate(path: Path, job_id: str, n: int) -> float:
    events = batch(job_id, n)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (job_id TEXT, seq INTEGER, data BLOB, PRIMARY KEY (job_id, seq))"
    )

    def write() -> None:
        with conn:
            conn.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?)",
                [(job_id, e.seq, _json.dumps(e.to_dict())) for e in events],
            )

    seconds = timed(write)
    conn.close()
    return n / seconds


def bare_redis_rate(url: str, job_id: str, n: int) -> float:
    events = batch(job_id, n)
    client = redis.Redis.from_url(url)

    def write() -> None:
        pipe = client.pipeline(transaction=True)
        pipe.rpush(f"bench:{job_id}", *(_json.dumps(e.to_dict()) for e in events))
        pipe.execute()

    seconds = timed(write)
    assert client.llen(f"bench:{job_id}") == n
    client.close()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.events
    results: dict[str, list[float]] = {"bare_sqlite": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        if redis_url:
            results["bare_redis"], results["redis"] = [], []
        sqlite_store = SQLiteStore(Path(tmp) / "store.db")
        redis_store = RedisStore(redis_url, namespace="bench_store_batch") if redis_url else None
        try:
            for r in range(args.repeat):
                job_id = f"j{r}"
                results["bare_sqlite"].append(bare_sqlite_rate(Path(tmp) / "bare.db", job_id, n))
                results["sqlite"].append(store_rate(sqlite_store, job_id, n))
                if redis_url and redis_store is not None:
                    results["bare_redis"].append(bare_redis_rate(redis_url, job_id, n))
                    results["redis"].append(store_rate(redis_store, job_id, n))
        finally:
            sqlite_store.close()
            if redis_store is not None:
                redis_store.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "events": n,
        "repeat": args.repeat,
        "median_events_per_s": {k: round(v) for k, v in med.items()},
        "ratio_sqlite_vs_bare": round(med["sqlite"] / med["bare_sqlite"], 3),
    }
    if "redis" in med:
        report["ratio_redis_vs_bare"] = round(med["redis"] / med["bare_redis"], 3)
        report["redis_goal_100k_met"] = med["redis"] >= 100_000
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
