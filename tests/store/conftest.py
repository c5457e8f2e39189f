"""Store fixtures: a real ``redis-server`` for the Redis store, started once per session.

Without ``redis-server`` the Redis tests are skipped, except under CI (``CI=true``), where
they fail: CI installs it (``scripts/install.sh``), so its absence there is a bug.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.store import MemoryStore, SQLiteStore, Store
from redis_server import RedisServer

_namespaces = itertools.count(1)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store, empty; every store test runs on all three (they must be interchangeable)."""
    if request.param == "redis":
        # A real redis-server, a fresh namespace per test.
        yield request.getfixturevalue("make_redis_store")()
        return
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()


@pytest.fixture
def redis_namespace(request: pytest.FixtureRequest) -> str:
    """A namespace no other test uses, so tests sharing the server never see each other's keys."""
    return f"mn_test_{os.getpid()}_{next(_namespaces)}"


@pytest.fixture
def make_redis_store(redis_server: RedisServer, redis_namespace: str) -> Iterator[Callable[..., object]]:
    """Open RedisStores on the session server (default: the test's namespace); all closed at the end."""
    from mirror_neuron.store.redis import RedisStore

    opened: list[RedisStore] = []

    def make(url: str | None = None, **kwargs: object) -> RedisStore:
        kwargs.setdefault("namespace", redis_namespace)
        store = RedisStore(url or redis_server.url, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def raw_redis(redis_server: RedisServer) -> Iterator[Any]:
    """A plain redis-py client on the session server, to look at keys as another tool would."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
