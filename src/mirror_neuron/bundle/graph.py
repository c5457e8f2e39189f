"""A manifest's graph as data for monitors, and as Graphviz DOT or Mermaid text.

The graph is what a UI draws: the agents (id, agent type, template, role, executor pool)
and the routing edges (from, to, message type, edge id). It is derived from the
normalised manifest, so it is the same for a job run here, submitted over REST or
recovered on another node (which all keep the manifest with the job).
"""

from __future__ import annotations

import re
from typing import Any

from .model import Manifest

#: Output formats of :func:`render`.
FORMATS = ("json", "dot", "mermaid")


def graph_of(manifest: Manifest) -> dict[str, Any]:
    """``{"graph_id", "job_name", "entrypoints", "nodes": [...], "edges": [...]}``."""
    nodes = []
    for node in manifest.nodes:
        pool = None
        if node.kind == "executor":
            pool = str(node.config.get("pool") or "default")
        nodes.append(
            {
                "id": node.node_id,
                "agent_type": node.agent_type,
                "kind": node.kind,
                "type": node.type,
                "role": node.role,
                "pool": pool,
            }
        )
    edges = [
        {"from": e.from_node, "to": e.to_node, "message_type": e.message_type, "edge_id": e.edge_id}
        for e in manifest.edges
    ]
    return {
        "graph_id": manifest.graph_id,
        "job_name": manifest.job_name,
        "entrypoints": list(manifest.entrypoints),
        "nodes": nodes,
        "edges": edges,
    }


def render(graph: dict[str, Any], fmt: str) -> str:
    """The graph as DOT or Mermaid source (``json`` is the caller's to print)."""
    if fmt == "dot":
        return _dot(graph)
    if fmt == "mermaid":
        return _mermaid(graph)
    raise ValueError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _dot(graph: dict[str, Any]) -> str:
    entry = set(graph["entrypoints"])
    lines = [f"digraph {_dot_id(str(graph['graph_id']))} {{", "  rankdir=LR;", "  node [shape=box];"]
    for node in graph["nodes"]:
        label = _dot_id(node["id"])[:-1] + "\\n" + _dot_id(node["agent_type"])[1:]  # two lines
        style = ", style=bold" if node["id"] in entry else ""
        lines.append(f"  {_dot_id(node['id'])} [label={label}{style}];")
    for edge in graph["edges"]:
        ends = f"{_dot_id(edge['from'])} -> {_dot_id(edge['to'])}"
        lines.append(f"  {ends} [label={_dot_id(edge['message_type'])}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _mermaid_text(text: str) -> str:
    """Label text Mermaid shows as written (quotes and markup characters as entities)."""
    return "".join(f"#{ord(c)};" if c in '"<>#;|[](){}' else c for c in text.replace("\n", " "))


def _mermaid(graph: dict[str, Any]) -> str:
    ids: dict[str, str] = {}
    for number, node in enumerate(graph["nodes"]):  # Mermaid ids are plain words: number them
        ids[node["id"]] = f"n{number}_{_MERMAID_UNSAFE.sub('_', node['id'])[:40]}"
    lines = ["flowchart LR"]
    for node in graph["nodes"]:
        label = f"{_mermaid_text(node['id'])}<br/>{_mermaid_text(node['agent_type'])}"
        lines.append(f'  {ids[node["id"]]}["{label}"]')
    for edge in graph["edges"]:
        if edge["from"] in ids and edge["to"] in ids:
            label = _mermaid_text(edge["message_type"])
            lines.append(f'  {ids[edge["from"]]} -->|"{label}"| {ids[edge["to"]]}')
    return "\n".join(lines) + "\n"
