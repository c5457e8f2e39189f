"""Structural checks beyond the original, value rendering, and registered node checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.bundle import Node, manifest_from_data, rules, validate_manifest_data
from mirror_neuron.bundle._render import inspect, kind_name, show
from mirror_neuron.bundle.model import ALL_ENTRYPOINTS
from mirror_neuron.errors import ManifestError

NO_ENTRY = "manifest must define at least one entrypoint or one node with role root/root_coordinator"
NODES_NOT_LIST = "nodes must be a list, got an object"


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


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ([], "a list"),
        ("x", "a string"),
        (1, "a number"),
        (1.5, "a number"),
        (None, "null"),
        (False, "a boolean"),
        ({1}, "a set"),
    ],
)
def test_manifest_must_be_an_object(value: Any, name: str) -> None:
    assert validate_manifest_data(value) == [f"manifest must be a JSON object, got {name}"]
    with pytest.raises(ManifestError) as caught:
        manifest_from_data(value)
    assert caught.value.errors == [f"manifest must be a JSON object, got {name}"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"nodes": {"a": 1}, "edges": [], "entrypoints": []}, [NODES_NOT_LIST, NO_ENTRY]),
        ({"edges": "e"}, ["edges must be a list, got a string"]),
        ({"policies": [1]}, ["policies must be a JSON object, got a list"]),
        ({"metadata": "m"}, ["metadata must be a JSON object, got a string"]),
        ({"job_name": 3}, ["job_name must be a string, got 3"]),
        ({"entrypoints": 5}, ["entrypoints must be a list or a string, got a number", NO_ENTRY]),
        (
            {"entrypoints": ["router", 2, None]},
            ["entrypoint #2 must be a string, got 2", "entrypoint #3 must be a string, got null"],
        ),
        ({"initial_inputs": "x"}, ["initial_inputs must be a JSON object or a list, got a string"]),
        ({"initial_inputs": {"router": 1, ALL_ENTRYPOINTS: [2]}}, []),
        ({"initial_inputs": {"nope": 1}}, ['initial_inputs key "nope" does not reference a known node']),
        ({"policies": {"max_agent_restart_attempts": 0}}, []),
        ({"policies": {"max_agent_restart_attempts": None}}, []),
    ],
)
def test_structural_and_extra_manifest_checks(overrides: dict[str, Any], expected: list[str]) -> None:
    assert errors_of(**overrides) == expected


@pytest.mark.parametrize("attempts", [-1, "3", 1.5, True, [3]])
def test_max_agent_restart_attempts_must_be_a_non_negative_integer(attempts: Any) -> None:
    errors = errors_of(policies={"max_agent_restart_attempts": attempts})
    assert len(errors) == 1
    assert errors[0].startswith("policies.max_agent_restart_attempts must be a non-negative integer, got ")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"config": []}, "config of node router must be a JSON object, got a list"),
        ({"retry_policy": 1}, "retry_policy of node router must be a JSON object, got a number"),
        ({"checkpoint_policy": "c"}, "checkpoint_policy of node router must be a JSON object, got a string"),
        ({"spawn_policy": True}, "spawn_policy of node router must be a JSON object, got a boolean"),
        ({"tool_bindings": {}}, "tool_bindings of node router must be a list, got an object"),
        ({"role": 4}, "role of node router must be a string, got 4"),
    ],
)
def test_node_field_types(fields: dict[str, Any], expected: str) -> None:
    assert errors_of(nodes=[node(**fields), node("sink")]) == [expected]


def test_node_shape_errors_name_the_position() -> None:
    nodes = [node(), node("sink"), [1], {"node_id": [1], "agent_type": "router", "config": 2}]
    assert errors_of(nodes=nodes) == [
        "node #3 must be a JSON object, got a list",
        "node_id must be a string for node #4, got [1]",
        "config of node #4 must be a JSON object, got a number",
    ]


def test_edge_shape_errors_and_no_double_reporting() -> None:
    edges = [
        {"edge_id": 9, "from_node": "router", "to_node": "sink", "message_type": "m"},
        {"edge_id": "e2", "from_node": 1, "to_node": ["sink"], "message_type": 2, "routing_mode": 3},
        {"from_node": "router", "to_node": "sink", "message_type": "m", "conditions": []},
        None,
    ]
    assert errors_of(edges=edges) == [
        "edge_id must be a string for edge #1, got 9",
        "from_node must be a string for edge e2, got 1",
        'to_node must be a string for edge e2, got ["sink"]',
        "message_type must be a string for edge e2, got 2",
        "routing_mode must be a string for edge e2, got 3",
        "conditions of edge #3 must be a JSON object, got a list",
        "edge #4 must be a JSON object, got null",
    ]


@pytest.mark.parametrize(
    ("value", "inspected"),
    [
        *[(None, "null"), ("a", '"a"'), ('q"', '"q\\""'), ("é", '"é"'), (True, "true")],
        *[(2, "2"), (1.5, "1.5"), ([1, "a"], '[1,"a"]'), ({"k": None}, '{"k":null}')],
    ],
)
def test_values_are_rendered_as_json_literals(value: Any, inspected: str) -> None:
    assert inspect(value) == inspected


def test_show_shortens_and_survives_unencodable_values() -> None:
    assert show("x" * 200) == '"' + "x" * 76 + "..."
    assert len(show(list(range(100)))) == 80
    assert show(object()).startswith("<object object")
    assert [kind_name(v) for v in (None, True, 0, 0.5, "", [], {}, ())] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "a list",
        "an object",
        "a tuple",
    ]


# -- node checks passed in ----------------------------------------------------------------


def test_given_checks_run_on_sound_nodes_of_their_kind(tmp_path: Path) -> None:
    seen: list[tuple[str, Path | None]] = []

    def check(checked: Node, payloads: Path | None) -> list[str]:
        seen.append((checked.node_id, payloads))
        return [f"node {checked.node_id} is bad"]

    checks = {"sandbox_worker": [check], "executor": (check,)}  # an alias and its type: one entry
    assert rules.by_kind(checks) == {"executor": [check]}
    nodes = [
        node("router", "executor"),
        node("w2", "sandbox_worker"),
        node("w3", "executor", type="nope"),
        node("sink", "aggregator"),
    ]
    errors = rules.validate(raw_manifest(nodes=nodes), tmp_path, node_checks=checks)
    assert errors[-2:] == ["node router is bad", "node w2 is bad"]
    assert seen == [("router", tmp_path), ("w2", tmp_path)]
    assert rules.validate(raw_manifest(nodes=nodes), tmp_path) == errors[:-2]  # none without them
    assert len(seen) == 2


def test_given_check_errors_make_loading_fail() -> None:
    assert manifest_from_data(
        raw_manifest(), node_checks={"router": [lambda n, p: [] if p is None else ["x"]]}
    )
    rejecting: rules.NodeChecks = {"aggregator": [lambda n, p: [f"{n.kind} {n.node_id} rejected"]]}
    with pytest.raises(ManifestError) as caught:
        manifest_from_data(raw_manifest(), node_checks=rejecting)
    assert caught.value.errors == ["aggregator sink rejected"]
    assert manifest_from_data(raw_manifest())  # the checks were passed, not registered
