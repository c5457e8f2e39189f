"""The asyncio runtime: jobs, agent cells, the run queue and batched persistence.

Modules, lowest first (imports only go down this list): ``mailbox``, ``scheduler``,
``batches``, ``writer``, ``remote``, ``host``, ``cell``, ``job``, ``control``, ``reads``,
``recovery``, ``controller``, ``runtime``, ``cluster``.
"""

from __future__ import annotations

from .cluster import ClusterNode, NodeSettings, check_join
from .job import JobRun
from .placement import Placer, runtime_nodes
from .reads import JobReader, final_agent_views, orphaned
from .remote import live_runtimes
from .runtime import Runtime
from .watch import Update

__all__ = [
    "ClusterNode",
    "JobReader",
    "JobRun",
    "NodeSettings",
    "Placer",
    "Runtime",
    "Update",
    "check_join",
    "final_agent_views",
    "live_runtimes",
    "orphaned",
    "runtime_nodes",
]
