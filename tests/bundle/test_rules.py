"""Every validation rule with its exact message, and the reporting order (spec §1.5, M2 to M5, M8, M9,
M12, M13)."""

from __future__ import annotations

from typing import Any

import pytest

from mirror_neuron.bundle import manifest_from_data, validate_manifest_data
from mirror_neuron.bundle.model import TEMPLATES, TEMPLATES_BY_AGENT
from mirror_neuron.errors import ManifestError

NO_ENTRY = "manifest must define at least one entrypoint or one node with role root/root_coordinator"


def raw_manifest(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "manifest_version": "1.0",
        "graph_id": "g",
        "entrypoints": ["router"],
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "sink", "agent_type": "aggregator"},
        ],
        "edges": [{"edge_id": "e1", "from_node": "router", "to_node": "sink", "message_type": "m"}],
    }
    base.update(overrides)
    return base


def errors_of(**overrides: Any) -> list[str]:
    return validate_manifest_data(raw_manifest(**overrides))


def node(node_id: Any = "router", agent_type: Any = "router", **fields: Any) -> dict[str, Any]:
    return {"node_id": node_id, "agent_type": agent_type, **fields}


def test_valid_manifest_has_no_errors() -> None:
    assert errors_of() == []


def test_m2_executor_stream_and_aggregator_reduce_are_accepted() -> None:
    nodes = [node("router", "executor", type="stream"), node("sink", "aggregator", type="reduce")]
    assert errors_of(nodes=nodes) == []


def test_required_fields() -> None:
    assert validate_manifest_data({"entrypoints": "x"}) == [
        "manifest_version is required",
        "graph_id is required",
        "nodes must not be empty",
        "entrypoint x does not reference a known node",
    ]
    assert errors_of(manifest_version=None, graph_id="", nodes=None, edges=[], entrypoints=[]) == [
        "manifest_version is required",
        "graph_id is required",
        "nodes must not be empty",
        NO_ENTRY,
    ]


def test_m5_duplicates_reported_once_per_id_ordered_by_first_repeat() -> None:
    nodes = [node("a"), node("b"), node("b"), node("a"), node("a"), node("router")]
    assert errors_of(nodes=nodes, edges=[]) == ["duplicate node_id b", "duplicate node_id a"]


@pytest.mark.parametrize("agent_type", [None, ""])
def test_m12_a_node_without_agent_type_says_so(agent_type: Any) -> None:
    assert errors_of(nodes=[{"node_id": "router"}], edges=[]) == ["node router has no agent_type"]
    assert errors_of(nodes=[node(agent_type=agent_type, type="batch")], edges=[]) == [
        "node router has no agent_type"
    ]


def test_errors_never_use_elixir_renderings() -> None:
    nodes = [{"agent_type": None, "type": "map"}, node(agent_type=None)]
    edges = [{"edge_id": None, "from_node": None, "to_node": ""}]
    errors = errors_of(nodes=nodes, edges=edges, policies={"recovery_mode": None})
    assert errors == [
        "node #1 has no agent_type",
        "node router has no agent_type",
        "node_id is required for every node",
        "edge #1 must define message_type",
        "edge #1 has no to_node",
        "edge #1 has no from_node",
        "unsupported recovery_mode null",
    ]
    assert not [e for e in errors if "nil" in e or "%{" in e]


@pytest.mark.parametrize(("agent_type", "shown"), [("wizard", '"wizard"'), (5, "5"), (True, "true")])
def test_unsupported_agent_type_uses_inspect_rendering(agent_type: Any, shown: str) -> None:
    assert errors_of(nodes=[node(agent_type=agent_type)], edges=[]) == [
        f"unsupported agent_type {shown} for node router"
    ]


@pytest.mark.parametrize("alias", ["relay", "sandbox_worker", "collector", "module", "sensor"])
def test_aliases_and_other_kinds_are_supported(alias: str) -> None:
    assert errors_of(nodes=[node(agent_type=alias)], edges=[]) == []


def test_m3_unknown_template_gives_both_template_errors() -> None:
    assert errors_of(nodes=[node(type="mystery")], edges=[]) == [
        'unsupported template type "mystery" for node router',
        'template type "mystery" is not supported for agent_type "router" on node router',
    ]


def test_m4_aggregator_stream_is_incompatible() -> None:
    assert errors_of(nodes=[node("x", "aggregator", type="stream")], edges=[], entrypoints=["x"]) == [
        'template type "stream" is not supported for agent_type "aggregator" on node x'
    ]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("kind", [*TEMPLATES_BY_AGENT, "relay", "collector", "sandbox_worker", "wizard"])
def test_template_compatibility_table(kind: str, template: str) -> None:
    canonical = {"relay": "router", "collector": "aggregator", "sandbox_worker": "executor"}.get(kind, kind)
    allowed = TEMPLATES_BY_AGENT.get(canonical, ("generic",))
    message = f'template type "{template}" is not supported for agent_type "{kind}" on node router'
    assert (message in errors_of(nodes=[node(agent_type=kind, type=template)], edges=[])) is (
        template not in allowed
    )


def test_node_rules_are_grouped_by_rule_across_nodes() -> None:
    nodes = [node("a", "wizard", type="map"), node("b", None, type="batch"), {"agent_type": "router"}]
    nodes.append(node("c", "router", type="mystery"))
    assert errors_of(nodes=nodes, edges=[], entrypoints=["a"]) == [
        'unsupported agent_type "wizard" for node a',
        "node b has no agent_type",
        'unsupported template type "mystery" for node c',
        'template type "map" is not supported for agent_type "wizard" on node a',
        'template type "mystery" is not supported for agent_type "router" on node c',
        "node_id is required for every node",
    ]


def test_node_id_required_once_per_node_missing_null_or_empty() -> None:
    nodes = [node(), {"agent_type": "router"}, node(None), node("")]
    assert errors_of(nodes=nodes, edges=[]) == ["node_id is required for every node"] * 3


def test_m8_m9_edge_errors_in_original_order() -> None:
    edges = [
        {"edge_id": "e1", "from_node": "x", "to_node": "missing"},
        {"from_node": "router", "to_node": "sink", "message_type": ""},
        {"edge_id": "e3", "message_type": "m"},
    ]
    assert errors_of(edges=edges) == [
        "edge e1 must define message_type",
        "edge e1 references missing to_node missing",
        "edge e1 references missing from_node x",
        "edge #2 must define message_type",
        "edge e3 has no to_node",
        "edge e3 has no from_node",
    ]


def test_entrypoint_rules() -> None:
    assert errors_of(entrypoints=[]) == [NO_ENTRY]
    assert errors_of(entrypoints=None) == [NO_ENTRY]
    assert errors_of(entrypoints=["router", "ghost", "sink", "nope"]) == [
        "entrypoint ghost does not reference a known node",
        "entrypoint nope does not reference a known node",
    ]
    assert errors_of(entrypoints=[], nodes=[node(role="root_coordinator"), node("sink")]) == []


@pytest.mark.parametrize("mode", ["local_restart", "cluster_recover", "manual_recover"])
def test_supported_recovery_modes(mode: str) -> None:
    assert errors_of(policies={"recovery_mode": mode}) == []


@pytest.mark.parametrize(("mode", "shown"), [("x", '"x"'), (None, "null"), (3, "3"), ([1], "[1]")])
def test_unsupported_recovery_mode(mode: Any, shown: str) -> None:
    assert errors_of(policies={"recovery_mode": mode}) == [f"unsupported recovery_mode {shown}"]


@pytest.mark.parametrize("key", ["daemon", "long_lived"])
def test_m13_daemon_flags_must_be_boolean(key: str) -> None:
    assert errors_of(**{key: True}) == []
    assert errors_of(**{key: "yes"}) == [f"{key} must be a boolean"]
    assert errors_of(**{key: 0}) == [f"{key} must be a boolean"]


def test_the_full_reporting_order() -> None:
    raw = {
        "graph_id": 7,
        "nodes": [node("a", "wizard", type="mystery"), node("a"), 3, {"node_id": 5, "agent_type": "router"}],
        "edges": [{"edge_id": "e", "from_node": "a", "to_node": "zz"}, "edge"],
        "entrypoints": ["ghost"],
        "initial_inputs": {"nope": 1},
        "policies": {"recovery_mode": "x", "max_agent_restart_attempts": -1},
        "daemon": "yes",
        "long_lived": 1,
    }
    assert validate_manifest_data(raw) == [
        "graph_id must be a string, got 7",
        "node #3 must be a JSON object, got a number",
        "node_id must be a string for node #4, got 5",
        "edge #2 must be a JSON object, got a string",
        "manifest_version is required",
        "duplicate node_id a",
        'unsupported agent_type "wizard" for node a',
        'unsupported template type "mystery" for node a',
        'template type "mystery" is not supported for agent_type "wizard" on node a',
        "edge e must define message_type",
        "edge e references missing to_node zz",
        "entrypoint ghost does not reference a known node",
        'initial_inputs key "nope" does not reference a known node',
        'unsupported recovery_mode "x"',
        "policies.max_agent_restart_attempts must be a non-negative integer, got -1",
        "daemon must be a boolean",
        "long_lived must be a boolean",
    ]


def test_manifest_from_data_raises_with_every_error() -> None:
    with pytest.raises(ManifestError) as caught:
        manifest_from_data(raw_manifest(graph_id=None, daemon="yes"))
    assert caught.value.errors == ["graph_id is required", "daemon must be a boolean"]
    assert str(caught.value) == "graph_id is required; daemon must be a boolean"


def test_validation_does_not_mutate_its_input() -> None:
    nodes = [node(), node("sink", "aggregator", type="accumulator")]
    raw = raw_manifest(initial_inputs={"router": 1}, nodes=nodes)
    snapshot = repr(raw)
    validate_manifest_data(raw)
    assert manifest_from_data(raw).node("sink").type == "reduce"
    assert repr(raw) == snapshot
