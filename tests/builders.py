"""Tiny manifest builders for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def manifest(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]] = (), **top: Any
) -> dict[str, Any]:
    """A manifest dict; ``edges`` as ``(from, to, message_type)``; first node is the entrypoint."""
    data: dict[str, Any] = {
        "manifest_version": "1.0",
        "graph_id": top.pop("graph_id", "test_graph"),
        "nodes": nodes,
        "edges": [
            {"edge_id": f"e{i}", "from_node": a, "to_node": b, "message_type": t}
            for i, (a, b, t) in enumerate(edges)
        ],
    }
    data.setdefault("entrypoints", [nodes[0]["node_id"]])
    data.update(top)
    return data


def router(node_id: str, **config: Any) -> dict[str, Any]:
    return {"node_id": node_id, "agent_type": "router", "config": config}


def aggregator(node_id: str, **config: Any) -> dict[str, Any]:
    return {"node_id": node_id, "agent_type": "aggregator", "config": config}


def sensor(node_id: str, **config: Any) -> dict[str, Any]:
    return {"node_id": node_id, "agent_type": "sensor", "config": config}
