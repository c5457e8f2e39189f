"""Structural checks: JSON shapes the original crashed on or silently ignored.

These run before the original rules (see :mod:`mirror_neuron.bundle.rules`) and name the
offending field, node or edge; nodes and edges without an id are named by 1-based position.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mirror_neuron.bundle._render import kind_name, show
from mirror_neuron.bundle.normalize import NODE_LIST_FIELDS, NODE_MAP_FIELDS

Doc = dict[str, Any]


def items(doc: Doc, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based position, entry) of the object entries of ``nodes`` or ``edges``."""
    entries = doc[key]
    if isinstance(entries, list):
        for position, entry in enumerate(entries, 1):
            if isinstance(entry, dict):
                yield position, entry


def is_id(value: Any) -> bool:
    """A usable id: a non-empty string."""
    return isinstance(value, str) and value != ""


def name_of(entry: dict[str, Any], key: str, position: int) -> str:
    return entry[key] if is_id(entry[key]) else f"#{position}"


def not_an_object(raw: Any) -> str:
    return f"manifest must be a JSON object, got {kind_name(raw)}"


def check_top_level_types(doc: Doc) -> list[str]:
    raw = doc["raw"]
    errors = [
        f"{key} must be a string, got {show(raw[key])}"
        for key in ("graph_id", "job_name")
        if raw.get(key) is not None and not isinstance(raw[key], str)
    ]
    if not isinstance(doc["metadata"], dict):
        errors.append(f"metadata must be a JSON object, got {kind_name(doc['metadata'])}")
    return errors


def check_node_shapes(doc: Doc) -> list[str]:
    nodes = doc["nodes"]
    if not isinstance(nodes, list):
        return [f"nodes must be a list, got {kind_name(nodes)}"]
    errors: list[str] = []
    for position, node in enumerate(nodes, 1):
        if not isinstance(node, dict):
            errors.append(f"node #{position} must be a JSON object, got {kind_name(node)}")
            continue
        if node["node_id"] is not None and not isinstance(node["node_id"], str):
            errors.append(f"node_id must be a string for node #{position}, got {show(node['node_id'])}")
        label = name_of(node, "node_id", position)
        if node["role"] is not None and not isinstance(node["role"], str):
            errors.append(f"role of node {label} must be a string, got {show(node['role'])}")
        for name in NODE_MAP_FIELDS:
            if not isinstance(node[name], dict):
                errors.append(f"{name} of node {label} must be a JSON object, got {kind_name(node[name])}")
        for name in NODE_LIST_FIELDS:
            if not isinstance(node[name], list):
                errors.append(f"{name} of node {label} must be a list, got {kind_name(node[name])}")
    return errors


def check_edge_shapes(doc: Doc) -> list[str]:
    edges = doc["edges"]
    if not isinstance(edges, list):
        return [f"edges must be a list, got {kind_name(edges)}"]
    errors: list[str] = []
    for position, edge in enumerate(edges, 1):
        if not isinstance(edge, dict):
            errors.append(f"edge #{position} must be a JSON object, got {kind_name(edge)}")
            continue
        if edge["edge_id"] is not None and not isinstance(edge["edge_id"], str):
            errors.append(f"edge_id must be a string for edge #{position}, got {show(edge['edge_id'])}")
        label = name_of(edge, "edge_id", position)
        for name in ("from_node", "to_node", "message_type", "routing_mode"):
            if edge[name] is not None and not isinstance(edge[name], str):
                errors.append(f"{name} must be a string for edge {label}, got {show(edge[name])}")
        if not isinstance(edge["conditions"], dict):
            got = kind_name(edge["conditions"])
            errors.append(f"conditions of edge {label} must be a JSON object, got {got}")
    return errors


def check_input_shapes(doc: Doc) -> list[str]:
    raw = doc["raw"]
    errors: list[str] = []
    entrypoints = raw.get("entrypoints")
    if entrypoints is not None and not isinstance(entrypoints, list | str):
        errors.append(f"entrypoints must be a list or a string, got {kind_name(entrypoints)}")
    for position, entry in enumerate(doc["entrypoints"], 1):
        if not isinstance(entry, str):
            errors.append(f"entrypoint #{position} must be a string, got {show(entry)}")
    inputs = raw.get("initial_inputs")
    if inputs is not None and not isinstance(inputs, dict | list):
        errors.append(f"initial_inputs must be a JSON object or a list, got {kind_name(inputs)}")
    return errors


def check_policies_shape(doc: Doc) -> list[str]:
    policies = doc["policies"]
    if isinstance(policies, dict):
        return []
    return [f"policies must be a JSON object, got {kind_name(policies)}"]
