"""Store fixtures: a real ``redis-server`` for the Redis store, started once per session.

Without ``redis-server`` the Redis tests are skipped, except under CI (``CI=true``), where
they fail: CI installs it (``scripts/install.sh``), so its absence there is a bug.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_server import RedisServer, RedisServerMissing

_namespaces = itertools.count(1)


def _redis_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the Redis store must be tested in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One ``redis-server`` on a free loopback port for the whole session."""
    try:
        server = RedisServer()
    except RedisServerMissing as exc:
        _redis_unavailable(str(exc))
    with server:
        yield server


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
def fresh_redis_server() -> Iterator[RedisServer]:
    """A server of the test's own: empty, and free to be killed or restarted."""
    try:
        server = RedisServer()
    except RedisServerMissing as exc:
        _redis_unavailable(str(exc))
    with server:
        yield server


@pytest.fixture
def raw_redis(redis_server: RedisServer) -> Iterator[Any]:
    """A plain redis-py client on the session server, to look at keys as another tool would."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
