"""The structured stdout protocol: only whole-stdout protocol objects count."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror_neuron.execution.output import (
    PROTOCOL_KEYS,
    Emit,
    InvalidOutput,
    is_reserved_event,
    parse_structured,
    read_structured,
)


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "plain text",
        '{"prime": true, "n": 7}',  # plain JSON result: opaque
        '[{"events": []}]',
        'log line\n{"events": []}',
        '{"events": [] ',
        "null",
    ],
)
def test_non_protocol_stdout_is_opaque(stdout: str) -> None:
    assert parse_structured(stdout) is None


@given(st.dictionaries(st.text().filter(lambda k: k not in PROTOCOL_KEYS), st.integers() | st.text()))
def test_json_objects_without_protocol_keys_are_opaque(doc: dict) -> None:
    assert parse_structured(json.dumps(doc)) is None


def test_each_protocol_key_alone_makes_stdout_structured() -> None:
    for key in PROTOCOL_KEYS:
        assert parse_structured(json.dumps({key: None}) + "\n") is not None, key


def test_next_state_events_and_completion() -> None:
    out = parse_structured(
        json.dumps(
            {
                "next_state": {"count": 3},
                "events": [
                    {"type": "peak", "payload": {"at": 4}},
                    {"type": "no_payload"},
                    {"type": 5, "payload": {}},
                    {"payload": {}},
                    {"type": "bad_payload", "payload": [1]},
                    "junk",
                ],
                "complete_job": {"done": True},
                "output": "ignored",
            }
        )
    )
    assert out is not None
    assert out.has_next_state and out.next_state == {"count": 3}
    assert out.events == [("peak", {"at": 4}), ("no_payload", {})]
    assert (out.complete, out.completion) == ("value", {"done": True})


def test_absent_next_state_leaves_state_alone() -> None:
    out = parse_structured('{"events": []}')
    assert out is not None and not out.has_next_state


def test_complete_job_question_mark_completes_with_the_output_payload() -> None:
    out = parse_structured('{"complete_job?": true}')
    assert out is not None and out.complete == "output"
    assert parse_structured('{"complete_job?": false}').complete is None  # type: ignore[union-attr]
    both = parse_structured('{"complete_job": 0, "complete_job?": true}')
    assert both is not None and (both.complete, both.completion) == ("value", 0)


def test_emit_messages_bodies_targets_and_options() -> None:
    out = parse_structured(
        json.dumps(
            {
                "emit_messages": [
                    {"type": "b64", "body_base64": "aGVsbG8=", "body": "ignored"},
                    {"type": "body", "body": [1, 2], "payload": "ignored"},
                    {"type": "payload", "payload": {"p": 1}},
                    {"type": "empty"},
                    {"type": "direct", "to": "region_2", "body": {}},
                    {
                        "type": "opts",
                        "class": "stream",
                        "correlation_id": "c1",
                        "causation_id": "m0",
                        "content_type": "application/x-ndjson",
                        "content_encoding": "gzip",
                        "headers": {"h": "1"},
                        "artifacts": [{"uri": "x"}],
                        "stream": {"stream_id": "s", "seq": 1},
                    },
                    {"body": "no type"},
                    {"type": "bad64", "body_base64": "%%%"},
                    {"type": "bad_headers", "headers": "nope"},
                ]
            }
        )
    )
    assert out is not None
    emits = {e.type: e for e in out.emits}
    assert list(emits) == ["b64", "body", "payload", "empty", "direct", "opts", "bad_headers"]
    assert emits["b64"].body == b"hello"
    assert emits["body"].body == [1, 2]
    assert emits["payload"].body == {"p": 1}
    assert emits["empty"].body == {}
    assert emits["direct"] == Emit("direct", {}, "region_2", {})
    assert emits["opts"].to is None
    assert emits["opts"].options == {
        "cls": "stream",
        "correlation_id": "c1",
        "causation_id": "m0",
        "content_type": "application/x-ndjson",
        "content_encoding": "gzip",
        "headers": {"h": "1"},
        "artifacts": [{"uri": "x"}],
        "stream": {"stream_id": "s", "seq": 1},
    }
    assert emits["bad_headers"].options == {}


@pytest.mark.parametrize(
    ("stdout", "truncated", "reason"),
    [
        ('{"complete_job": {"v": "\\ud800"}}', False, "not valid JSON"),  # half a surrogate pair
        ('{"emit_messages": [{"type": "x"}', False, "not valid JSON"),  # cut off
        ('{"complete_job": 1}', True, "max_output_bytes"),  # complete, but the runner cut the rest
        ('{"prime": true, "n": 7', True, "max_output_bytes"),
    ],
)
def test_unreadable_structured_output_is_invalid_not_opaque(
    stdout: str, truncated: bool, reason: str
) -> None:
    found = read_structured(stdout, truncated=truncated)
    assert isinstance(found, InvalidOutput) and reason in found.reason


@pytest.mark.parametrize("stdout", ['{"prime": true, "n": 7', "plain text, cut", '{"x": "events"'])
def test_broken_json_without_protocol_keys_stays_opaque(stdout: str) -> None:
    assert read_structured(stdout) is None


def test_runtime_event_names_are_reserved() -> None:
    for name in ("job_completed", "dead_letter", "agent_crashed", "executor_lease_acquired", "backpressure"):
        assert is_reserved_event(name), name
    for name in ("stream_peak_detected", "region_tick_processed", "jobless", "worker_progress"):
        assert not is_reserved_event(name), name
