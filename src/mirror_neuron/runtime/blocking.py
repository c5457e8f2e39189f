"""Calling the store from the event loop: off it, in a thread, when the store blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..store.base import Store


async def call_store(store: Store, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a store method, off the event loop when the store blocks (SQLite, Redis)."""
    if store.blocking:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)
