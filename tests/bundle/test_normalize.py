"""Normalisation rules of behaviour spec §1.2 to 1.7 (and checklist items M1, M10, M11, M13, U6)."""

from __future__ import annotations

from typing import Any

import pytest

from mirror_neuron.bundle import Manifest, manifest_from_data
from mirror_neuron.bundle.model import ALL_ENTRYPOINTS
from mirror_neuron.bundle.normalize import (
    build_manifest,
    canonical_kind,
    canonical_type,
    normalize_document,
    normalize_edge,
    normalize_entrypoints,
    normalize_initial_inputs,
    normalize_node,
    normalize_reload,
)


def raw_manifest(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "manifest_version": "1.0",
        "graph_id": "g",
        "entrypoints": ["router"],
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "sink", "agent_type": "aggregator", "type": "reduce"},
        ],
        "edges": [{"from_node": "router", "to_node": "sink", "message_type": "m"}],
    }
    base.update(overrides)
    return base


def load(**overrides: Any) -> Manifest:
    return manifest_from_data(raw_manifest(**overrides))


def test_m1_well_formed_manifest_loads_with_defaults() -> None:
    manifest = load()
    router = manifest.node("router")
    assert router.type == "generic"
    assert manifest.entrypoints == ("router",)
    assert manifest.daemon is False
    assert manifest.job_name == "g"
    assert manifest.metadata == {}
    assert manifest.policies == {}
    assert manifest.recovery_mode == "local_restart"
    assert manifest.reload == {"mode": "manual", "interval_seconds": 60}


@pytest.mark.parametrize("job_name", [None, "missing"])
def test_job_name_falls_back_to_graph_id(job_name: str | None) -> None:
    raw = raw_manifest(job_name=job_name)
    if job_name == "missing":
        del raw["job_name"]
    assert manifest_from_data(raw).job_name == "g"


def test_given_job_name_metadata_and_policies_are_kept() -> None:
    manifest = load(job_name="nightly", metadata={"team": "x"}, policies={"recovery_mode": "cluster_recover"})
    assert (manifest.job_name, manifest.metadata) == ("nightly", {"team": "x"})
    assert manifest.recovery_mode == "cluster_recover"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        *[(value, "generic") for value in (None, "", 5, [], {}, True)],
        *[("accumulator", "reduce"), ("map", "map"), ("stream", "stream"), ("mystery", "mystery")],
    ],
)
def test_canonical_type(given: Any, expected: str) -> None:
    assert canonical_type(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        *[("relay", "router"), ("sandbox_worker", "executor"), ("collector", "aggregator")],
        *[("router", "router"), ("module", "module"), ("wizard", "wizard")],
        *[(None, None), (3, None), ([], None)],
    ],
)
def test_canonical_kind(given: Any, expected: str | None) -> None:
    assert canonical_kind(given) == expected


@pytest.mark.parametrize(
    ("alias", "kind"), [("relay", "router"), ("sandbox_worker", "executor"), ("collector", "aggregator")]
)
def test_agent_type_alias_sets_kind_and_keeps_raw_string(alias: str, kind: str) -> None:
    nodes = [{"node_id": "router", "agent_type": alias}]
    node = load(nodes=nodes, edges=[]).node("router")
    assert (node.agent_type, node.kind) == (alias, kind)


def test_accumulator_template_becomes_reduce_on_the_node() -> None:
    nodes = [{"node_id": "router", "agent_type": "aggregator", "type": "accumulator"}]
    assert load(nodes=nodes, edges=[]).node("router").type == "reduce"


def test_node_defaults_apply_for_missing_and_null_fields() -> None:
    nodes: list[dict[str, Any]] = [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "b", "agent_type": "router", "config": None, "tool_bindings": None, "retry_policy": None},
    ]
    manifest = load(nodes=nodes, edges=[])
    for node in manifest.nodes:
        assert (node.config, node.tool_bindings, node.role) == ({}, [], None)
        assert (node.retry_policy, node.checkpoint_policy, node.spawn_policy) == ({}, {}, {})


def test_node_fields_are_kept_as_written() -> None:
    node_raw = {
        "node_id": "router",
        "agent_type": "router",
        "role": "root",
        "config": {"emit_type": "x"},
        "tool_bindings": [{"tool": "t"}],
        "retry_policy": {"max": 2},
        "checkpoint_policy": {"every": 1},
        "spawn_policy": {"n": 3},
    }
    node = load(nodes=[node_raw], edges=[]).node("router")
    assert node.to_dict() == {**node_raw, "type": "generic"}


def test_u6_normalized_node_shape() -> None:
    node = load().node("router")
    assert node.to_dict() == {
        "node_id": "router",
        "agent_type": "router",
        "role": None,
        "type": "generic",
        "config": {},
        "checkpoint_policy": {},
        "retry_policy": {},
        "spawn_policy": {},
        "tool_bindings": [],
    }


def test_edge_defaults_and_given_values() -> None:
    assert normalize_edge({"from_node": "a"}) == {
        "edge_id": None,
        "from_node": "a",
        "to_node": None,
        "message_type": None,
        "routing_mode": "broadcast",
        "conditions": {},
    }
    edges = [{"from_node": "router", "to_node": "sink", "message_type": "*", "edge_id": "e"}]
    edge = load(edges=edges).edges[0]
    assert (edge.edge_id, edge.routing_mode, edge.conditions) == ("e", "broadcast", {})
    assert edge.matches("anything")
    given = {"routing_mode": "round_robin", "conditions": {"a": 1}}
    assert normalize_edge(given)["routing_mode"] == "round_robin"
    assert normalize_edge(given)["conditions"] == {"a": 1}


def test_non_objects_pass_through_node_and_edge_normalisation() -> None:
    for value in (5, "x", None, [1], True):
        assert normalize_node(value) == value
        assert normalize_edge(value) == value


def test_m10_entrypoint_string_becomes_list() -> None:
    assert load(entrypoints="router").entrypoints == ("router",)


@pytest.mark.parametrize("value", ["absent", None])
def test_m10_entrypoints_inferred_from_root_roles_in_manifest_order(value: Any) -> None:
    nodes = [
        {"node_id": "b", "agent_type": "router", "role": "root_coordinator"},
        {"node_id": "x", "agent_type": "router", "role": "worker"},
        {"node_id": "root", "agent_type": "router", "role": "root"},
    ]
    raw = raw_manifest(nodes=nodes, edges=[], entrypoints=value)
    if value == "absent":
        del raw["entrypoints"]
    assert manifest_from_data(raw).entrypoints == ("b", "root")


def test_explicit_empty_entrypoints_stay_empty_with_root_role() -> None:
    nodes = [{"node_id": "root", "agent_type": "router", "role": "root"}]
    assert load(nodes=nodes, edges=[], entrypoints=[]).entrypoints == ()


def test_entrypoint_list_is_verbatim_and_other_types_give_nothing() -> None:
    assert load(entrypoints=["sink", "router"]).entrypoints == ("sink", "router")
    nodes = [{"node_id": "r", "role": "root"}]
    for other in (5, {"a": 1}, True, 1.5):
        assert normalize_entrypoints(other, nodes) == []
    assert normalize_entrypoints(None, "not a list") == []
    assert normalize_entrypoints(None, [5, {"role": "root"}, {"role": "root", "node_id": 7}]) == []


def test_initial_inputs_map_values_wrapped_unless_lists() -> None:
    manifest = load(initial_inputs={"router": {"a": 1}, "sink": [{"b": 2}, 3]})
    assert manifest.initial_inputs == {"router": [{"a": 1}], "sink": [{"b": 2}, 3]}
    assert manifest.inputs_for("router") == [{"a": 1}]


def test_m11_initial_inputs_list_goes_to_every_entrypoint() -> None:
    manifest = load(initial_inputs=[{"a": 1}, {"a": 2}])
    assert manifest.initial_inputs == {ALL_ENTRYPOINTS: [{"a": 1}, {"a": 2}]}
    assert manifest.inputs_for("router") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("value", [None, 5, "x", True])
def test_initial_inputs_of_other_types_normalise_to_empty(value: Any) -> None:
    assert normalize_initial_inputs(value) == {}


@pytest.mark.parametrize(
    ("flags", "daemon"),
    [
        ({}, False),
        ({"daemon": True}, True),
        ({"long_lived": True}, True),
        ({"daemon": False, "long_lived": True}, True),
        ({"daemon": True, "long_lived": False}, True),
        ({"daemon": False, "long_lived": False}, False),
        ({"daemon": None}, False),
    ],
)
def test_m13_daemon_and_long_lived_are_the_same_flag(flags: dict[str, Any], daemon: bool) -> None:
    assert load(**flags).daemon is daemon


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {"mode": "manual", "interval_seconds": 60}),
        ("interval", {"mode": "manual", "interval_seconds": 60}),
        ({}, {"mode": "manual", "interval_seconds": 60}),
        ({"mode": None, "interval_seconds": None}, {"mode": "manual", "interval_seconds": 60}),
        ({"mode": "interval"}, {"mode": "interval", "interval_seconds": 60}),
        ({"mode": "interval", "interval_seconds": 0}, {"mode": "interval", "interval_seconds": 0}),
    ],
)
def test_reload_normalisation(given: Any, expected: dict[str, Any]) -> None:
    assert normalize_reload(given) == expected


def test_document_keeps_bad_shapes_for_the_rules() -> None:
    doc = normalize_document({"nodes": "x", "edges": {"a": 1}, "policies": [1], "metadata": 3})
    assert (doc["nodes"], doc["edges"], doc["policies"], doc["metadata"]) == ("x", {"a": 1}, [1], 3)
    assert normalize_document({})["nodes"] == [] and normalize_document({})["edges"] == []


def test_normalising_a_manifests_own_dict_is_idempotent() -> None:
    manifest = load(initial_inputs=[{"a": 1}], daemon=True, reload={"mode": "interval"}, metadata={"k": 1})
    assert build_manifest(normalize_document(manifest.to_dict())) == manifest


def test_built_manifest_does_not_share_containers_with_the_input() -> None:
    raw = raw_manifest()
    raw["nodes"][0]["config"] = {"k": 1}
    manifest = manifest_from_data(raw)
    raw["nodes"][0]["config"]["k"] = 2
    assert manifest.node("router").config == {"k": 1}
