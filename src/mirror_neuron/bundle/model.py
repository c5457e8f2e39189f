"""Normalised records of a job bundle: :class:`Bundle` → :class:`Manifest` → :class:`Node`, :class:`Edge`.

These are produced by :mod:`mirror_neuron.bundle.normalize` and checked by
:mod:`mirror_neuron.bundle.rules`; the runtime only ever sees validated instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The agent types (and the templates each accepts) are data of their own module.
from mirror_neuron.bundle.agent_types import AGENT_ALIASES as AGENT_ALIASES
from mirror_neuron.bundle.agent_types import TEMPLATES_BY_AGENT as TEMPLATES_BY_AGENT

TEMPLATES = ("generic", "map", "reduce", "stream", "batch")
TEMPLATE_ALIASES = {"accumulator": "reduce"}
RECOVERY_MODES = ("local_restart", "cluster_recover", "manual_recover")
ROOT_ROLES = ("root", "root_coordinator")
#: Key under which a list-form ``initial_inputs`` is kept: delivered to every entrypoint.
ALL_ENTRYPOINTS = "__entrypoints__"


@dataclass(frozen=True, slots=True)
class Node:
    """One agent of the graph."""

    node_id: str
    agent_type: str  # as written in the manifest, e.g. "sandbox_worker"
    kind: str  # canonical agent type: router | executor | aggregator | sensor | module (or unknown)
    type: str  # canonical template: generic | map | reduce | stream | batch (or unknown)
    role: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tool_bindings: list[Any] = field(default_factory=list)
    retry_policy: dict[str, Any] = field(default_factory=dict)
    checkpoint_policy: dict[str, Any] = field(default_factory=dict)
    spawn_policy: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "agent_type": self.agent_type,
            "type": self.type,
            "role": self.role,
            "config": self.config,
            "tool_bindings": self.tool_bindings,
            "retry_policy": self.retry_policy,
            "checkpoint_policy": self.checkpoint_policy,
            "spawn_policy": self.spawn_policy,
        }


@dataclass(frozen=True, slots=True)
class Edge:
    """A routing rule: messages of ``message_type`` (or any, for ``*``) from one node to another."""

    from_node: str
    to_node: str
    message_type: str
    edge_id: str | None = None
    routing_mode: str = "broadcast"
    conditions: dict[str, Any] = field(default_factory=dict)

    def matches(self, message_type: str) -> bool:
        return self.message_type == message_type or self.message_type == "*"

    def to_dict(self) -> dict[str, Any]:
        return {
            "edge_id": self.edge_id,
            "from_node": self.from_node,
            "to_node": self.to_node,
            "message_type": self.message_type,
            "routing_mode": self.routing_mode,
            "conditions": self.conditions,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """A normalised ``manifest.json``."""

    manifest_version: Any
    graph_id: str
    job_name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    entrypoints: tuple[str, ...]
    #: node_id (or :data:`ALL_ENTRYPOINTS`) → list of payloads
    initial_inputs: dict[str, list[Any]] = field(default_factory=dict)
    policies: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    daemon: bool = False
    reload: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery_mode(self) -> str:
        return str(self.policies.get("recovery_mode", "local_restart"))

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def inputs_for(self, entrypoint: str) -> list[Any]:
        """Payloads seeded into ``entrypoint`` at start; at least one (possibly empty) message."""
        inputs = self.initial_inputs
        if entrypoint in inputs:
            return inputs[entrypoint]
        if ALL_ENTRYPOINTS in inputs:
            return inputs[ALL_ENTRYPOINTS]
        return [{}]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": self.manifest_version,
            "graph_id": self.graph_id,
            "job_name": self.job_name,
            "daemon": self.daemon,
            "metadata": self.metadata,
            "entrypoints": list(self.entrypoints),
            "initial_inputs": self.initial_inputs,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
            "policies": self.policies,
            "reload": self.reload,
        }


@dataclass(frozen=True, slots=True)
class Bundle:
    """A loaded job bundle. Paths are absolute, or ``None`` for a manifest given as a dict."""

    manifest: Manifest
    root_path: Path | None = None
    #: What validation found odd but accepted, e.g. unknown keys (see :mod:`mirror_neuron.bundle.keys`).
    warnings: tuple[str, ...] = ()

    @property
    def manifest_path(self) -> Path | None:
        return None if self.root_path is None else self.root_path / "manifest.json"

    @property
    def payloads_path(self) -> Path | None:
        return None if self.root_path is None else self.root_path / "payloads"
