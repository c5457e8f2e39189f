"""Keys a manifest may use, and a warning for each other key (most likely a typo).

Unknown keys do not make a manifest invalid (the original ignores them, and bundles carry
keys of later MirrorNeuron versions); they are reported as warnings, with the closest known
key when there is one: ``node aggregator "reviewer" config: unknown key "complete_on_mesage"
(did you mean "complete_on_message"?)``. Checked are the top level, every node, every
edge and the config of the built-in agents (:mod:`mirror_neuron.bundle.agent_types`);
what lies inside free-form values (``metadata``, ``initial_inputs``, ``environment``, …)
never is. The known sets take in what the original and its published bundles use, the
F2 (``mn.workflow``) format included.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from mirror_neuron.bundle.agent_types import config_keys
from mirror_neuron.bundle.normalize import canonical_kind
from mirror_neuron.bundle.shapes import Doc

from ..names import quoted

#: Top-level keys of the flat format (F1) and of the ``mn.workflow`` format (F2) and its catalog.
TOP_LEVEL_KEYS = frozenset(
    {
        # F1
        "manifest_version",
        "graph_id",
        "job_name",
        "metadata",
        "nodes",
        "edges",
        "policies",
        "entrypoints",
        "initial_inputs",
        "daemon",
        "long_lived",
        "reload",
        # F2 and the blueprint catalog
        "apiVersion",
        "kind",
        "id",
        "name",
        "description",
        "version",
        "standard_version",
        "license",
        "term",
        "agents",
        "workflow",
        "runtime",
        "contract",
        "contracts",
        "requirements",
        "input_validation",
        "type",
        "services",
        "service",
        "required_services",
        "schedule",
        "triggers",
        "deployment",
        "requiredContextEngine",
        "skill_dependencies",
        "agent_dependencies",
        "agentic_research",
        "cluster_distribution",
        "config",
        "defaults",
        "identity",
        "intent",
        "knowledge_rag",
        "llm",
        "manifest",
        "standard",
        "workers",
    }
)
#: Node keys (§1.3 of the behaviour spec) and the later Core's node extras.
NODE_KEYS = frozenset(
    {
        "node_id",
        "agent_type",
        "type",
        "role",
        "config",
        "tool_bindings",
        "retry_policy",
        "checkpoint_policy",
        "spawn_policy",
        "alias",
        "display_name",
        "description",
        "label",
        "metadata",
        "resources",
        "uses",
        "with",
    }
)
#: Edge keys (§1.4), plus descriptive ones.
EDGE_KEYS = frozenset(
    {
        "edge_id",
        "from_node",
        "to_node",
        "message_type",
        "routing_mode",
        "conditions",
        "description",
        "label",
        "metadata",
    }
)
#: Keys written as comments or annotations (``_comment``, ``$schema``, ``// note``) are never reported.
ANNOTATION_PREFIXES = ("_", "$", "//")


def unknown_key(key: Any, known: Collection[str], where: str) -> str | None:
    """The warning for ``key`` in ``where``, or ``None`` when the key is known (or a comment)."""
    text = key if isinstance(key, str) else str(key)
    if text in known or text.startswith(ANNOTATION_PREFIXES):
        return None
    close = difflib.get_close_matches(text, sorted(known), n=1)
    hint = f" (did you mean {quoted(close[0])}?)" if close else ""
    return f"{where}: unknown key {quoted(text)}{hint}"


def unknown_keys_in(entry: dict[Any, Any], known: Collection[str], where: str) -> list[str]:
    return [w for key in entry if (w := unknown_key(key, known, where)) is not None]


def _label(entry: dict[str, Any], key: str, position: int) -> str:
    value = entry.get(key)
    return quoted(value) if isinstance(value, str) and value else f"#{position}"


def _node_warnings(position: int, node: dict[str, Any]) -> list[str]:
    label = _label(node, "node_id", position)
    warnings = unknown_keys_in(node, NODE_KEYS, f"node {label}")
    config, agent_type = node.get("config"), node.get("agent_type")
    known = config_keys(canonical_kind(agent_type))
    if isinstance(config, dict) and known is not None:
        warnings += unknown_keys_in(config, known, f"node {agent_type} {label} config")
    return warnings


def warnings_of(doc: Doc) -> list[str]:
    """Every unknown key of a normalised document (as written in its ``raw`` manifest), in order."""
    raw = doc["raw"]
    warnings = unknown_keys_in(raw, TOP_LEVEL_KEYS, "manifest")
    nodes, edges = raw.get("nodes"), raw.get("edges")
    for position, node in enumerate(nodes if isinstance(nodes, list) else [], 1):
        if isinstance(node, dict):
            warnings += _node_warnings(position, node)
    for position, edge in enumerate(edges if isinstance(edges, list) else [], 1):
        if isinstance(edge, dict):
            warnings += unknown_keys_in(edge, EDGE_KEYS, f"edge {_label(edge, 'edge_id', position)}")
    return warnings


__all__ = ["EDGE_KEYS", "NODE_KEYS", "TOP_LEVEL_KEYS", "unknown_key", "warnings_of"]
