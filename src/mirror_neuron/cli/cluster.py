"""``mn node …``: the nodes of the cluster on the configured store, and draining one."""

from __future__ import annotations

import asyncio
from typing import Any

from ..config import Config
from . import lookup, render


def node_list_command(config: Config, *, as_json: bool) -> None:
    """The cluster's nodes (``mn serve`` processes, from the store, on any machine), then the
    other runtimes of this machine (``mn run``); when none runs, this machine's pools, idle."""
    from ..runtime import Runtime

    async def listed() -> list[dict[str, Any]]:
        async with Runtime(config.with_(control=False), store=lookup.open_existing(config)) as rt:
            return await rt.inspect_nodes(local=True)

    nodes = asyncio.run(listed())
    if not nodes:
        pools = {
            name: {"capacity": c, "in_use": 0, "available": c, "queued": 0, "active": 0}
            for name, c in config.pools().items()
        }
        nodes = [
            {"name": config.node_name, "pid": None, "control": None, "jobs": [], "executor_pools": pools}
        ]
    if as_json:
        render.print_json(nodes)
    else:
        render.print_nodes(nodes)


def node_drain_command(config: Config, name: str, *, as_json: bool) -> None:
    """Ask a node to hand its jobs to the others; it acts within a heartbeat (about a second)."""
    from ..runtime import Runtime

    async def drain() -> None:
        async with Runtime(config.with_(control=False), store=lookup.open_existing(config)) as rt:
            await rt.drain_node(name)

    asyncio.run(drain())
    if as_json:
        render.print_json({"node": name, "drain": True})
    else:
        render.echo(
            f"node {name} is draining: its jobs move to the other nodes within a few seconds "
            "(`mn node list` shows it draining; `mn job list --live` where they went)",
            one_line=True,
        )
