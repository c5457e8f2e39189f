"""Property tests: no JSON value or manifest-like shape makes loading crash or misbehave."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror_neuron.bundle import Manifest, load_bundle, manifest_from_data, validate_manifest_data
from mirror_neuron.bundle.model import AGENT_ALIASES, TEMPLATES, TEMPLATES_BY_AGENT
from mirror_neuron.bundle.normalize import build_manifest, normalize_document
from mirror_neuron.errors import ManifestError
from mirror_neuron.names import path_id_problem

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
IDS = st.sampled_from(["a", "b", "c", "", "root"])
ID_LIKE = IDS | JSON
KINDS = st.sampled_from([*TEMPLATES_BY_AGENT, *AGENT_ALIASES, "wizard", ""]) | JSON
TYPES = st.sampled_from([*TEMPLATES, "accumulator", "mystery", ""]) | JSON

NODE = st.fixed_dictionaries(
    {},
    optional={
        "node_id": ID_LIKE,
        "agent_type": KINDS,
        "type": TYPES,
        "role": st.sampled_from(["root", "root_coordinator", "worker"]) | JSON,
        "config": JSON,
        "tool_bindings": JSON,
        "retry_policy": JSON,
        "checkpoint_policy": JSON,
        "spawn_policy": JSON,
    },
)
EDGE = st.fixed_dictionaries(
    {},
    optional={
        "edge_id": ID_LIKE,
        "from_node": ID_LIKE,
        "to_node": ID_LIKE,
        "message_type": st.sampled_from(["m", "*", ""]) | JSON,
        "routing_mode": JSON,
        "conditions": JSON,
    },
)
MANIFEST_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "manifest_version": JSON,
        "graph_id": IDS | JSON,
        "job_name": JSON,
        "metadata": JSON,
        "nodes": st.lists(NODE | JSON, max_size=5) | JSON,
        "edges": st.lists(EDGE | JSON, max_size=5) | JSON,
        "entrypoints": st.lists(ID_LIKE, max_size=3) | ID_LIKE,
        "initial_inputs": st.dictionaries(IDS, JSON, max_size=3) | JSON,
        "policies": st.fixed_dictionaries(
            {}, optional={"recovery_mode": JSON, "max_agent_restart_attempts": JSON}
        )
        | JSON,
        "daemon": JSON,
        "long_lived": JSON,
        "reload": JSON,
    },
)


def template_for(kind: str) -> str:
    return TEMPLATES_BY_AGENT[AGENT_ALIASES.get(kind, kind)][-1]


#: Ids the validator accepts: no controls, invisible or separator characters, no path syntax.
VALID_ID = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"), blacklist_characters="/\\"),
    min_size=1,
    max_size=6,
).filter(lambda text: path_id_problem(text) is None)

VALID_NODE = st.builds(
    lambda node_id, kind, role: {
        "node_id": node_id,
        "agent_type": kind,
        "type": template_for(kind),
        "role": role,
    },
    VALID_ID,
    st.sampled_from([*TEMPLATES_BY_AGENT, *AGENT_ALIASES]),
    st.sampled_from([None, "root", "worker"]),
)


def outcome(raw: Any) -> Manifest | list[str]:
    """The manifest, or the error list; any other exception fails the test."""
    try:
        return manifest_from_data(raw)
    except ManifestError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return exc.errors


@pytest.mark.slow
@settings(max_examples=300)
@given(JSON)
def test_any_json_value_loads_or_raises_manifest_error(value: Any) -> None:
    result = outcome(value)
    errors = validate_manifest_data(value)
    assert errors == ([] if isinstance(result, Manifest) else result)


@pytest.mark.slow
@settings(max_examples=300)
@given(MANIFEST_LIKE)
def test_manifest_like_dicts_never_crash_and_agree_with_validation(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    result = outcome(raw)
    assert raw == before, "validation must not mutate its input"
    assert validate_manifest_data(raw) == ([] if isinstance(result, Manifest) else result)


@pytest.mark.slow
@settings(max_examples=200)
@given(MANIFEST_LIKE)
def test_json_text_of_manifest_like_dicts_never_crashes(raw: dict[str, Any]) -> None:
    text = orjson.dumps(raw).decode()
    try:
        bundle = load_bundle(text)
    except ManifestError as exc:
        assert exc.errors
    else:
        assert bundle.root_path is None and bundle.manifest == manifest_from_data(raw)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_arbitrary_text_is_a_clean_error(text: str) -> None:
    try:
        load_bundle("{" + text)
    except ManifestError as exc:
        assert exc.errors
    else:
        raise AssertionError("an unterminated object cannot be a manifest")


@settings(max_examples=200)
@given(st.lists(VALID_NODE, min_size=1, max_size=5, unique_by=lambda n: n["node_id"]), JSON)
def test_valid_manifests_load_and_round_trip(nodes: list[dict[str, Any]], inputs: Any) -> None:
    ids = [n["node_id"] for n in nodes]
    raw = {
        "manifest_version": "1.0",
        "graph_id": "g",
        "nodes": nodes,
        "entrypoints": ids[:1],
        "edges": [{"from_node": a, "to_node": b, "message_type": "m"} for a, b in itertools.pairwise(ids)],
        "initial_inputs": [inputs],
    }
    manifest = manifest_from_data(raw)
    assert [n.node_id for n in manifest.nodes] == ids
    assert build_manifest(normalize_document(manifest.to_dict())) == manifest
    assert manifest_from_data(orjson.loads(orjson.dumps(manifest.to_dict()))) == manifest


def test_deeply_nested_values_are_reported_not_crashed_on() -> None:
    deep: Any = "x"
    for _ in range(3000):
        deep = [deep]
    raw = {"manifest_version": 1, "graph_id": "g", "nodes": [{"node_id": deep}]}
    message = validate_manifest_data(raw)[0]
    assert message.startswith("node_id must be a string for node #1, got ")
    try:
        load_bundle("[" * 5000)
    except ManifestError as exc:
        assert exc.errors[0].startswith("invalid JSON at line 1, column ")
    else:
        raise AssertionError("unbalanced brackets cannot load")
