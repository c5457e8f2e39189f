"""Validation of a normalised manifest: one small function per rule (behaviour spec §1.5).

All problems are collected, never just the first. Structural checks (wrong JSON shapes,
which the original crashed on or silently ignored) come first; then the original rule
groups in their original order and wording, except that a missing value is said to be
missing and a node or edge without an id is named by its position (``node #2``); then the
few extra checks; finally the extra node checks the caller passes (``node_checks``: the
bundle layer cannot import the executor's checks, so :mod:`mirror_neuron.validation`
passes them in). Nothing is registered anywhere and nothing here has side effects beyond
reading ``payloads_path`` in those checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mirror_neuron.bundle._render import inspect, show
from mirror_neuron.bundle.model import (
    AGENT_ALIASES,
    ALL_ENTRYPOINTS,
    RECOVERY_MODES,
    ROOT_ROLES,
    TEMPLATES,
    TEMPLATES_BY_AGENT,
    Node,
)
from mirror_neuron.bundle.normalize import (
    NODE_LIST_FIELDS,
    NODE_MAP_FIELDS,
    build_node,
    normalize_document,
)
from mirror_neuron.bundle.shapes import (
    Doc,
    check_edge_shapes,
    check_input_shapes,
    check_node_shapes,
    check_policies_shape,
    check_top_level_types,
    is_id,
    items,
    name_of,
    not_an_object,
)

from ..names import path_id_problem, quoted, text_problem

Rule = Callable[[Doc], list[str]]

#: Fields of a node's config that name the type of the messages it emits.
CONFIG_MESSAGE_TYPES = ("emit_type", "output_message_type")
#: An extra check of one node: ``(node, payloads_path) -> errors``.
NodeCheck = Callable[[Node, Path | None], list[str]]
#: Extra node checks by agent type (aliases accepted), run only on sound nodes.
NodeChecks = Mapping[str, Sequence[NodeCheck]]

NO_ENTRYPOINT = "manifest must define at least one entrypoint or one node with role root/root_coordinator"

# -- helpers ------------------------------------------------------------------------------


def _node_ids(doc: Doc) -> set[str]:
    return {n["node_id"] for _, n in items(doc, "nodes") if is_id(n["node_id"])}


def _allowed_templates(kind: str | None) -> tuple[str, ...]:
    return TEMPLATES_BY_AGENT.get(kind, ("generic",)) if kind is not None else ("generic",)


# -- the original rules, in their original order and wording ------------------------------


def check_required(doc: Doc) -> list[str]:
    errors: list[str] = []
    if doc["manifest_version"] is None:
        errors.append("manifest_version is required")
    if doc["graph_id"] is None or doc["graph_id"] == "":
        errors.append("graph_id is required")
    if doc["nodes"] == []:
        errors.append("nodes must not be empty")
    return errors


def check_duplicate_ids(doc: Doc) -> list[str]:
    seen: set[str] = set()
    repeated: dict[str, None] = {}  # ordered by first repeat
    for _, node in items(doc, "nodes"):
        node_id = node["node_id"]
        if is_id(node_id):
            if node_id in seen:
                repeated[node_id] = None
            seen.add(node_id)
    return [f"duplicate node_id {node_id}" for node_id in repeated]


def _has_agent_type(node: dict[str, Any]) -> bool:
    return node["agent_type"] not in (None, "")


def _agent_type_error(position: int, node: dict[str, Any]) -> str:
    name = name_of(node, "node_id", position)
    if not _has_agent_type(node):
        return f"node {name} has no agent_type"
    return f"unsupported agent_type {inspect(node['agent_type'])} for node {name}"


def check_agent_types(doc: Doc) -> list[str]:
    return [
        _agent_type_error(position, n)
        for position, n in items(doc, "nodes")
        if n["kind"] not in TEMPLATES_BY_AGENT
    ]


def check_template_types(doc: Doc) -> list[str]:
    return [
        f"unsupported template type {inspect(n['type'])} for node {name_of(n, 'node_id', position)}"
        for position, n in items(doc, "nodes")
        if n["type"] not in TEMPLATES
    ]


def check_template_compatibility(doc: Doc) -> list[str]:
    """Templates against the agent type (a node without one has that error only)."""
    return [
        f"template type {inspect(n['type'])} is not supported for agent_type "
        f"{inspect(n['agent_type'])} on node {name_of(n, 'node_id', position)}"
        for position, n in items(doc, "nodes")
        if _has_agent_type(n) and n["type"] not in _allowed_templates(n["kind"])
    ]


def check_node_ids_present(doc: Doc) -> list[str]:
    return [
        "node_id is required for every node"
        for _, n in items(doc, "nodes")
        if n["node_id"] is None or n["node_id"] == ""
    ]


def check_edges(doc: Doc) -> list[str]:
    known = _node_ids(doc)
    errors: list[str] = []
    for position, edge in items(doc, "edges"):
        name = name_of(edge, "edge_id", position)
        if edge["message_type"] is None or edge["message_type"] == "":
            errors.append(f"edge {name} must define message_type")
        for end in ("to_node", "from_node"):
            value = edge[end]
            if value is None or value == "":
                errors.append(f"edge {name} has no {end}")
            elif isinstance(value, str) and value not in known:
                errors.append(f"edge {name} references missing {end} {value}")
    return errors


def check_entrypoints(doc: Doc) -> list[str]:
    known = _node_ids(doc)
    errors: list[str] = []
    has_root = any(n["role"] in ROOT_ROLES for _, n in items(doc, "nodes"))
    if doc["entrypoints"] == [] and not has_root:
        errors.append(NO_ENTRYPOINT)
    errors.extend(
        f"entrypoint {entry} does not reference a known node"
        for entry in doc["entrypoints"]
        if isinstance(entry, str) and entry not in known
    )
    return errors


def check_initial_inputs(doc: Doc) -> list[str]:
    known = _node_ids(doc)
    return [
        f"initial_inputs key {inspect(key)} does not reference a known node"
        for key in doc["initial_inputs"]
        if key != ALL_ENTRYPOINTS and not (isinstance(key, str) and key in known)
    ]


def check_recovery_mode(doc: Doc) -> list[str]:
    policies = doc["policies"] if isinstance(doc["policies"], dict) else {}
    mode = policies.get("recovery_mode", "local_restart")
    return [] if mode in RECOVERY_MODES else [f"unsupported recovery_mode {inspect(mode)}"]


def check_restart_attempts(doc: Doc) -> list[str]:
    policies = doc["policies"] if isinstance(doc["policies"], dict) else {}
    value = policies.get("max_agent_restart_attempts")
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return []
    return [f"policies.max_agent_restart_attempts must be a non-negative integer, got {show(value)}"]


def check_daemon_flags(doc: Doc) -> list[str]:
    return [
        f"{key} must be a boolean"
        for key in ("daemon", "long_lived")
        if doc[key] is not None and not isinstance(doc[key], bool)
    ]


# -- ids that reach REST paths, job ids, events and terminals ----------------------------


def check_graph_id(doc: Doc) -> list[str]:
    graph_id = doc["graph_id"]
    problem = path_id_problem(graph_id) if is_id(graph_id) else None
    return [] if problem is None else [f"graph_id {quoted(graph_id)} is not a valid id: {problem}"]


def check_node_id_syntax(doc: Doc) -> list[str]:
    errors: list[str] = []
    for position, node in items(doc, "nodes"):
        node_id = node["node_id"]
        problem = path_id_problem(node_id) if is_id(node_id) else None
        if problem is not None:
            errors.append(f"node_id {quoted(node_id)} of node #{position} is not a valid id: {problem}")
    return errors


def check_message_types(doc: Doc) -> list[str]:
    """Edge ids and message types appear in events: the text rules, not the path rules."""
    errors: list[str] = []
    for position, edge in items(doc, "edges"):
        edge_id = edge["edge_id"]
        problem = text_problem(edge_id) if is_id(edge_id) else None
        if problem is not None:
            errors.append(f"edge_id {quoted(edge_id)} of edge #{position} is not a valid id: {problem}")
        label = edge_id if is_id(edge_id) and problem is None else f"#{position}"
        kind = edge["message_type"]
        problem = text_problem(kind) if is_id(kind) else None
        if problem is not None:
            errors.append(
                f"message_type {quoted(kind)} of edge {label} is not a valid message type: {problem}"
            )
    for position, node in items(doc, "nodes"):
        config = node["config"]
        node_id = node["node_id"]
        label = node_id if is_id(node_id) and path_id_problem(node_id) is None else f"#{position}"
        for key in CONFIG_MESSAGE_TYPES if isinstance(config, dict) else ():
            kind = config.get(key)
            problem = text_problem(kind) if is_id(kind) else None
            if problem is not None:
                errors.append(
                    f"config.{key} {quoted(kind)} of node {label} is not a valid message type: {problem}"
                )
    return errors


#: Every core rule, in reporting order.
CORE_RULES: tuple[Rule, ...] = (
    check_top_level_types,
    check_node_shapes,
    check_edge_shapes,
    check_input_shapes,
    check_policies_shape,
    check_required,
    check_duplicate_ids,
    check_agent_types,
    check_template_types,
    check_template_compatibility,
    check_node_ids_present,
    check_edges,
    check_entrypoints,
    check_initial_inputs,
    check_recovery_mode,
    check_restart_attempts,
    check_daemon_flags,
    check_graph_id,
    check_node_id_syntax,
    check_message_types,
)


# -- extra node checks given by the caller ------------------------------------------------


def is_sound_node(node: Any) -> bool:
    """Whether a normalised node passes every core rule that concerns it alone."""
    return (
        isinstance(node, dict)
        and is_id(node["node_id"])
        and node["kind"] in TEMPLATES_BY_AGENT
        and node["type"] in _allowed_templates(node["kind"])
        and (node["role"] is None or isinstance(node["role"], str))
        and all(isinstance(node[name], dict) for name in NODE_MAP_FIELDS)
        and all(isinstance(node[name], list) for name in NODE_LIST_FIELDS)
    )


def by_kind(node_checks: NodeChecks) -> dict[str, list[NodeCheck]]:
    """``node_checks`` keyed by canonical agent type (aliases merged, each check once)."""
    merged: dict[str, list[NodeCheck]] = {}
    for kind, checks in node_checks.items():
        kept = merged.setdefault(AGENT_ALIASES.get(kind, kind), [])
        kept.extend(check for check in checks if check not in kept)
    return merged


def check_nodes(doc: Doc, payloads_path: Path | None, node_checks: NodeChecks) -> list[str]:
    """The errors of ``node_checks`` on every sound node of its agent type."""
    if not node_checks:
        return []
    checks_of = by_kind(node_checks)
    errors: list[str] = []
    for _, node in items(doc, "nodes"):
        checks = checks_of.get(node["kind"], []) if is_sound_node(node) else []
        for check in checks:
            errors.extend(check(build_node(node), payloads_path))
    return errors


def validate_document(
    doc: Doc, payloads_path: Path | None = None, *, node_checks: NodeChecks | None = None
) -> list[str]:
    """Every error of a normalised document, in reporting order (empty when valid).

    ``node_checks`` adds checks by agent type; without it only the bundle's own rules run.
    """
    errors = [message for rule in CORE_RULES for message in rule(doc)]
    return errors + check_nodes(doc, payloads_path, node_checks or {})


def validate(
    raw: Any, payloads_path: Path | None = None, *, node_checks: NodeChecks | None = None
) -> list[str]:
    """Every error of a decoded manifest (any JSON value); never raises for JSON input."""
    if not isinstance(raw, dict):
        return [not_an_object(raw)]
    return validate_document(normalize_document(raw), payloads_path, node_checks=node_checks)
