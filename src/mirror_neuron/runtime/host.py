"""What a hosted job gets from the runtime that hosts it, and nothing more.

A :class:`~.job.JobRun` and its cells reach the runtime only through this record, so
they never import the runtime (and the runtime's parts form no import cycle).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..store.base import Store
from .blocking import call_store
from .leases import LeaseKeeper
from .remote import NodeClient
from .scheduler import Scheduler
from .writer import StoreWriter


@dataclass(slots=True, eq=False)
class Host:
    config: Config
    store: Store
    writer: StoreWriter
    scheduler: Scheduler
    #: Runtime-wide services agents use (the executor lease manager, …).
    services: dict[str, Any]
    #: Runs a runtime-owned background task (kept referenced until done).
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
    #: Called with a job id when the job leaves this runtime (ended or suspended).
    release: Callable[[str], None]
    #: Where other processes reach this runtime's jobs (``None``: nowhere).
    control_endpoint: Callable[[], str | None]
    #: The leases of the jobs hosted here (``None``: a memory store, nothing to own).
    leases: LeaseKeeper | None = None
    #: Calls to the other nodes of a cluster.
    nodes: NodeClient = field(default_factory=NodeClient)

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a store read, off the event loop when the store blocks."""
        return await call_store(self.store, fn, *args, **kwargs)
