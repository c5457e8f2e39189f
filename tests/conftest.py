"""Shared fixtures: runtimes over fresh stores and a tiny manifest builder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron import Config, Runtime
from mirror_neuron.store import MemoryStore, SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "store.db")


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
