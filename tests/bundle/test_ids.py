"""Ids and message types a hostile manifest could use to hide from REST routes or attack terminals.

Graph ids start job ids and node ids are agent ids, so both end up as REST path segments
(``/jobs/{job_id}/agents/{agent_id}``): a ``/`` in a graph id made a job no route could
reach. All ids and message types are shown in events and on terminals, where control and
bidi characters lie about what is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builders import EXAMPLES
from mirror_neuron.bundle import validate_bundle, validate_manifest_data
from mirror_neuron.names import MAX_ID_LENGTH


def raw_manifest(
    graph_id: Any = "g",
    node_id: Any = "sink",
    edge_id: Any = "e1",
    message_type: Any = "m",
    emit_type: Any = None,
) -> dict[str, Any]:
    config = {} if emit_type is None else {"emit_type": emit_type}
    return {
        "manifest_version": "1.0",
        "graph_id": graph_id,
        "entrypoints": ["router"],
        "nodes": [
            {"node_id": "router", "agent_type": "router", "config": config},
            {"node_id": node_id, "agent_type": "aggregator"},
        ],
        "edges": [
            {"edge_id": edge_id, "from_node": "router", "to_node": node_id, "message_type": message_type}
        ],
    }


#: (value, what the error says about it) for text that no id or message type may hold.
BAD_TEXT = [
    (" padded", "starts or ends with whitespace"),
    ("padded\t", "starts or ends with whitespace"),
    ("   ", "starts or ends with whitespace"),
    ("two\nlines", "a control character (U+000A)"),
    ("carriage\rreturn", "a control character (U+000D)"),
    ("title\x1b]0;pwned\x07", "a control character (U+001B)"),
    ("nul\x00byte", "a control character (U+0000)"),
    ("c1\x9bcsi", "a control character (U+009B)"),
    ("evil\u202etxt.exe", "an invisible formatting character (U+202E)"),
    ("isolate\u2066x\u2069", "an invisible formatting character (U+2066)"),
    ("zero\u200bwidth", "an invisible formatting character (U+200B)"),
    ("line\u2028separator", "a line separator (U+2028)"),
    ("x" * (MAX_ID_LENGTH + 1), f"longer than {MAX_ID_LENGTH} characters"),
]
#: Only ids that name REST paths (graph and node ids) refuse these.
BAD_PATH = [
    ("a/b", "a slash (/)"),
    ("/", "a slash (/)"),
    ("a\\b", "a backslash (\\)"),
    (".", '"."'),
    ("..", '".."'),
]
GOOD_IDS = [
    "a",
    "research_flow_v1",
    "prime-worker-0001",
    "v1.2",
    "ns:node",
    "Ünïcode_名前",
    "x" * MAX_ID_LENGTH,
]


@pytest.mark.parametrize(("value", "why"), BAD_TEXT + BAD_PATH)
def test_bad_graph_ids_are_refused(value: str, why: str) -> None:
    errors = validate_manifest_data(raw_manifest(graph_id=value))
    assert len(errors) == 1 and errors[0].startswith("graph_id ") and why in errors[0], errors


@pytest.mark.parametrize(("value", "why"), BAD_TEXT + BAD_PATH)
def test_bad_node_ids_are_refused_naming_the_node(value: str, why: str) -> None:
    errors = validate_manifest_data(raw_manifest(node_id=value))
    [error] = [e for e in errors if e.startswith("node_id ")]
    assert "of node #2 is not a valid id" in error and why in error


@pytest.mark.parametrize(("value", "why"), BAD_TEXT)
def test_bad_edge_ids_and_message_types_are_refused(value: str, why: str) -> None:
    [error] = validate_manifest_data(raw_manifest(edge_id=value))
    assert error.startswith("edge_id ") and "of edge #1 is not a valid id" in error and why in error
    [error] = validate_manifest_data(raw_manifest(message_type=value))
    assert error.startswith("message_type ") and "of edge e1 is not a valid message type" in error
    assert why in error
    [error] = validate_manifest_data(raw_manifest(emit_type=value))
    assert error.startswith("config.emit_type ") and "of node router" in error and why in error


@pytest.mark.parametrize("value", GOOD_IDS)
def test_ordinary_ids_are_accepted(value: str) -> None:
    assert validate_manifest_data(raw_manifest(graph_id=value, node_id=value, edge_id=value)) == []


@pytest.mark.parametrize("value", ["*", "text/plain", "a.b", "..", "research_request"])
def test_message_types_need_not_be_path_segments(value: str) -> None:
    assert validate_manifest_data(raw_manifest(message_type=value, emit_type=value)) == []


def test_error_messages_never_repeat_the_dangerous_characters() -> None:
    errors = validate_manifest_data(raw_manifest(graph_id="g\x1b]0;x\x07", node_id="n\u202eode"))
    text = "\n".join(errors)
    assert "\\u001b" in text and "\\u202e" in text
    assert all(c.isascii() and (c.isprintable() or c == "\n") for c in text), text


def test_every_problem_is_collected() -> None:
    errors = validate_manifest_data(
        raw_manifest(graph_id="a/b", node_id="x\ny", edge_id=" e", message_type="\t")
    )
    assert [e.split(" ", 1)[0] for e in errors if "not a valid" in e] == [
        "graph_id",
        "node_id",
        "edge_id",
        "message_type",
    ]


def test_the_examples_still_validate() -> None:
    folders = sorted(p.parent for p in Path(EXAMPLES).rglob("manifest.json"))
    assert folders
    for folder in folders:
        validate_bundle(str(folder))  # raises ManifestError with every problem
