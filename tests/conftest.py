"""Shared fixtures: runtimes over fresh stores and a tiny manifest builder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron import Config, Runtime
from mirror_neuron.store import MemoryStore, SQLiteStore
from redis_server import RedisServer, RedisServerMissing


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every store the runtime runs on; Redis is a real ``redis-server`` (one per session)."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "store.db")
    from mirror_neuron.store.redis import RedisStore

    server = request.getfixturevalue("redis_server")
    return RedisStore(server.url, namespace=f"mn_rt_{os.getpid()}_{tmp_path.name}")


@pytest.fixture
async def runtime(store: Any) -> AsyncIterator[Runtime]:
    async with Runtime(Config(store_url=store.url), store=store) as rt:
        yield rt


@pytest.fixture
async def memory_runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Config(), store=MemoryStore()) as rt:
        yield rt


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default (environment-configured) store at a fresh directory."""
    path = tmp_path / "data"
    monkeypatch.setenv("MIRROR_NEURON_DATA_DIR", str(path))
    monkeypatch.delenv("MIRROR_NEURON_STORE_URL", raising=False)
    return path


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
def fresh_redis_server() -> Iterator[RedisServer]:
    """A server of the test's own: empty, and free to be killed or restarted."""
    try:
        server = RedisServer()
    except RedisServerMissing as exc:
        _redis_unavailable(str(exc))
    with server:
        yield server
