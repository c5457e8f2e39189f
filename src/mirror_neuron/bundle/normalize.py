"""Normalisation of a decoded ``manifest.json`` (behaviour spec §1.2 to 1.7).

Normalisation never raises, whatever JSON it is given: values it cannot make sense of
are kept as written so that :mod:`mirror_neuron.bundle.rules` can report them. The
result is a plain "document" dict; :func:`build_manifest` turns a document that passed
validation into the frozen :class:`~mirror_neuron.bundle.model.Manifest`.
"""

from __future__ import annotations

from typing import Any

from mirror_neuron.bundle.model import (
    AGENT_ALIASES,
    ALL_ENTRYPOINTS,
    ROOT_ROLES,
    TEMPLATE_ALIASES,
    Edge,
    Manifest,
    Node,
)

#: Node fields that default to an empty container when missing or null.
NODE_LIST_FIELDS = ("tool_bindings",)
NODE_MAP_FIELDS = ("config", "retry_policy", "checkpoint_policy", "spawn_policy")
DEFAULT_RELOAD_MODE = "manual"
DEFAULT_RELOAD_INTERVAL = 60


def _or(value: Any, default: Any) -> Any:
    """``default`` when the value is missing or JSON null, else the value as written."""
    return default if value is None else value


def canonical_kind(agent_type: Any) -> str | None:
    """Canonical agent type (aliases resolved); ``None`` when the value is not a string."""
    if not isinstance(agent_type, str):
        return None
    return AGENT_ALIASES.get(agent_type, agent_type)


def canonical_type(template: Any) -> Any:
    """Canonical template: null, ``""`` and non-strings mean ``generic``; aliases resolved."""
    if not isinstance(template, str) or template == "":
        return "generic"
    return TEMPLATE_ALIASES.get(template, template)


def normalize_node(raw: Any) -> Any:
    """A node as a dict with every field present; a non-object is returned unchanged."""
    if not isinstance(raw, dict):
        return raw
    node: dict[str, Any] = {
        "node_id": raw.get("node_id"),
        "agent_type": raw.get("agent_type"),
        "kind": canonical_kind(raw.get("agent_type")),
        "type": canonical_type(raw.get("type")),
        "role": raw.get("role"),
    }
    for name in NODE_MAP_FIELDS:
        node[name] = _or(raw.get(name), {})
    for name in NODE_LIST_FIELDS:
        node[name] = _or(raw.get(name), [])
    return node


def normalize_edge(raw: Any) -> Any:
    """An edge as a dict with every field present; a non-object is returned unchanged."""
    if not isinstance(raw, dict):
        return raw
    return {
        "edge_id": raw.get("edge_id"),
        "from_node": raw.get("from_node"),
        "to_node": raw.get("to_node"),
        "message_type": raw.get("message_type"),
        "routing_mode": _or(raw.get("routing_mode"), "broadcast"),
        "conditions": _or(raw.get("conditions"), {}),
    }


def normalize_entrypoints(value: Any, raw_nodes: Any) -> list[Any]:
    """§1.6: absent/null → ids of root-role nodes in order; list verbatim; string → [it]."""
    if value is None:
        if not isinstance(raw_nodes, list):
            return []
        return [
            node["node_id"]
            for node in raw_nodes
            if isinstance(node, dict)
            and node.get("role") in ROOT_ROLES
            and isinstance(node.get("node_id"), str)
            and node["node_id"] != ""
        ]
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return [value]
    return []


def normalize_initial_inputs(value: Any) -> dict[Any, list[Any]]:
    """§1.7: map values wrapped in lists; a list goes to every entrypoint; else empty."""
    if isinstance(value, dict):
        return {key: (list(v) if isinstance(v, list) else [v]) for key, v in value.items()}
    if isinstance(value, list):
        return {ALL_ENTRYPOINTS: list(value)}
    return {}


def normalize_reload(value: Any) -> dict[str, Any]:
    """``{mode, interval_seconds}`` with defaults ``manual`` / 60; a non-object gives the defaults."""
    reload = value if isinstance(value, dict) else {}
    return {
        "mode": _or(reload.get("mode"), DEFAULT_RELOAD_MODE),
        "interval_seconds": _or(reload.get("interval_seconds"), DEFAULT_RELOAD_INTERVAL),
    }


def normalize_document(raw: dict[str, Any]) -> dict[str, Any]:
    """The whole manifest normalised; ``raw`` stays available under ``"raw"`` for the rules."""
    raw_nodes = raw.get("nodes")
    raw_edges = raw.get("edges")
    nodes = [normalize_node(n) for n in raw_nodes] if isinstance(raw_nodes, list) else raw_nodes
    edges = [normalize_edge(e) for e in raw_edges] if isinstance(raw_edges, list) else raw_edges
    graph_id = raw.get("graph_id")
    return {
        "raw": raw,
        "manifest_version": raw.get("manifest_version"),
        "graph_id": graph_id,
        "job_name": _or(raw.get("job_name"), graph_id),
        "metadata": _or(raw.get("metadata"), {}),
        "nodes": _or(nodes, []),
        "edges": _or(edges, []),
        "policies": _or(raw.get("policies"), {}),
        "entrypoints": normalize_entrypoints(raw.get("entrypoints"), raw_nodes),
        "initial_inputs": normalize_initial_inputs(raw.get("initial_inputs")),
        "daemon": raw.get("daemon"),
        "long_lived": raw.get("long_lived"),
        "reload": normalize_reload(raw.get("reload")),
    }


def build_node(node: dict[str, Any]) -> Node:
    """A :class:`Node` from a normalised node that passed validation."""
    return Node(
        node_id=node["node_id"],
        agent_type=node["agent_type"],
        kind=node["kind"],
        type=node["type"],
        role=node["role"],
        config=dict(node["config"]),
        tool_bindings=list(node["tool_bindings"]),
        retry_policy=dict(node["retry_policy"]),
        checkpoint_policy=dict(node["checkpoint_policy"]),
        spawn_policy=dict(node["spawn_policy"]),
    )


def build_edge(edge: dict[str, Any]) -> Edge:
    """An :class:`Edge` from a normalised edge that passed validation."""
    return Edge(
        from_node=edge["from_node"],
        to_node=edge["to_node"],
        message_type=edge["message_type"],
        edge_id=edge["edge_id"],
        routing_mode=edge["routing_mode"],
        conditions=dict(edge["conditions"]),
    )


def build_manifest(doc: dict[str, Any]) -> Manifest:
    """The frozen :class:`Manifest` of a validated document (either flag true → daemon)."""
    return Manifest(
        manifest_version=doc["manifest_version"],
        graph_id=doc["graph_id"],
        job_name=doc["job_name"],
        nodes=tuple(build_node(n) for n in doc["nodes"]),
        edges=tuple(build_edge(e) for e in doc["edges"]),
        entrypoints=tuple(doc["entrypoints"]),
        initial_inputs=doc["initial_inputs"],
        policies=dict(doc["policies"]),
        metadata=dict(doc["metadata"]),
        daemon=doc["daemon"] is True or doc["long_lived"] is True,
        reload=doc["reload"],
    )
