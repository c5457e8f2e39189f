"""The ``mn-msg/1`` message model (behaviour spec §3, conformance G1-G4, payload contract §6.2-6.3)."""

from __future__ import annotations

import calendar
import gzip
import pickle
import re
import time
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror_neuron import _json
from mirror_neuron._time import iso
from mirror_neuron.errors import MessageError, MirrorNeuronError
from mirror_neuron.messages import (
    ENVELOPE_KEYS,
    RESERVED_KEYS,
    SPEC_VERSION,
    Message,
    apply_encoding,
    decode_body,
    encode_body,
    from_dict,
    from_json,
    from_ndjson,
    normalize,
    to_json,
    to_ndjson,
)

SPEC_RESERVED = (
    "message_id",
    "job_id",
    "from",
    "to",
    "type",
    "class",
    "timestamp",
    "correlation_id",
    "causation_id",
    "attempt",
    "priority",
    "ttl_ms",
    "content_type",
    "content_encoding",
    "headers",
    "artifacts",
    "stream",
    "payload",
    "body",
    "envelope",
)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ID_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
NDJSON = "application/x-ndjson"


def without_ids(d: dict[str, Any]) -> dict[str, Any]:
    """A to_dict() result minus the fields that are fresh on every message."""
    env = {k: v for k, v in d["envelope"].items() if k not in ("message_id", "correlation_id", "timestamp")}
    return {**d, "envelope": env}


def spec_message(**envelope: Any) -> dict[str, Any]:
    env = {
        "message_id": "m-1",
        "job_id": "job-1",
        "from": "a",
        "to": "b",
        "type": "work",
        "class": "stream",
        "timestamp": "2026-03-28T11:00:00.000Z",
        "correlation_id": "c-1",
        "causation_id": "m-0",
        "attempt": 3,
        "priority": 5,
        "ttl_ms": 100,
        "content_type": NDJSON,
        "content_encoding": "gzip",
    }
    env.update(envelope)
    return {
        "envelope": env,
        "headers": {"trace": "t1", "tenant": "x"},
        "body": "line\n",
        "artifacts": [{"uri": "file:///a.bin"}],
        "stream": {"stream_id": "s1", "seq": 2, "eof": False},
    }


# -- envelope defaults --------------------------------------------------------------


def test_an_empty_flat_input_gets_every_envelope_default() -> None:
    env = normalize({}).envelope()
    assert env["spec_version"] == "mn-msg/1"
    assert env["from"] == "runtime"
    assert env["type"] == "command"
    assert env["class"] == "event"
    assert env["attempt"] == 1
    assert env["priority"] == 100
    assert env["content_type"] == "application/json"
    assert env["content_encoding"] == "identity"
    assert isinstance(env["message_id"], str) and env["message_id"]
    assert isinstance(env["correlation_id"], str) and env["correlation_id"]
    assert ISO_MS.match(env["timestamp"])


def test_null_valued_envelope_keys_are_absent_from_the_envelope() -> None:
    env = normalize({"x": 1}).envelope()
    for key in ("job_id", "to", "causation_id", "ttl_ms"):
        assert key not in env
    assert None not in env.values()
    assert set(env) == set(ENVELOPE_KEYS) - {"job_id", "to", "causation_id", "ttl_ms"}


def test_explicit_nulls_in_the_input_are_dropped_and_defaulted() -> None:
    data = {key: None for key in ENVELOPE_KEYS if key != "spec_version"}
    env = normalize({"envelope": data}).envelope()
    assert None not in env.values()
    assert env["from"] == "runtime" and env["type"] == "command" and env["class"] == "event"
    assert env["attempt"] == 1 and env["priority"] == 100 and "ttl_ms" not in env
    assert env["content_type"] == "application/json" and env["content_encoding"] == "identity"


def test_the_spec_version_is_always_forced_to_mn_msg_1() -> None:
    assert SPEC_VERSION == "mn-msg/1"
    spec = normalize({"envelope": {"spec_version": "mn-msg/99", "type": "t"}, "body": 1})
    flat = normalize({"spec_version": "other", "type": "t"})
    assert spec.envelope()["spec_version"] == "mn-msg/1"
    assert flat.envelope()["spec_version"] == "mn-msg/1"


def test_unknown_envelope_keys_are_dropped() -> None:
    env = normalize({"envelope": {"type": "t", "colour": "red", "extra": 1}}).envelope()
    assert "colour" not in env and "extra" not in env
    assert set(env) <= set(ENVELOPE_KEYS)


def test_generated_message_and_correlation_ids_are_unique_url_safe_strings() -> None:
    messages = [normalize({"n": i}) for i in range(500)] + [normalize({"type": "t"}) for _ in range(500)]
    mids = [m.envelope()["message_id"] for m in messages]
    cids = [m.envelope()["correlation_id"] for m in messages]
    assert len(set(mids)) == len(mids)
    assert len(set(cids)) == len(cids)
    assert not set(mids) & set(cids)
    for ident in mids + cids:
        assert isinstance(ident, str) and ID_CHARS.match(ident)


def test_the_id_properties_match_the_envelope() -> None:
    m = normalize({"a": 1})
    env = m.envelope()
    assert m.message_id == env["message_id"]
    assert m.correlation_id == env["correlation_id"]
    assert m.causation_id is None


def test_given_ids_are_kept_verbatim_and_numeric_ids_become_their_plain_text() -> None:
    m = normalize({"envelope": {"message_id": "abc", "correlation_id": 7, "causation_id": 8}})
    env = m.envelope()
    assert env["message_id"] == "abc"
    assert env["correlation_id"] == "7"
    assert env["causation_id"] == "8"


def test_the_direct_constructor_uses_the_same_defaults() -> None:
    env = Message("t", {"x": 1}).envelope()
    assert env["from"] == "runtime" and env["class"] == "event"
    assert env["attempt"] == 1 and env["priority"] == 100
    assert env["content_type"] == "application/json" and env["content_encoding"] == "identity"
    assert set(env) == set(ENVELOPE_KEYS) - {"job_id", "to", "causation_id", "ttl_ms"}


def test_to_dict_has_exactly_the_canonical_shape() -> None:
    d = normalize({"a": 1}).to_dict()
    assert list(d) == ["envelope", "headers", "body", "artifacts", "stream"]
    assert d["headers"] == {} and d["artifacts"] == [] and d["stream"] is None
    assert d["body"] == {"a": 1}


def test_summary_has_the_documented_keys() -> None:
    m = normalize(spec_message())
    assert m.summary() == {
        "message_id": "m-1",
        "from": "a",
        "to": "b",
        "type": "work",
        "class": "stream",
        "content_type": NDJSON,
        "content_encoding": "gzip",
        "stream": {"stream_id": "s1", "seq": 2, "eof": False},
    }


# -- timestamps ----------------------------------------------------------------------


def test_a_new_message_timestamp_is_now_in_iso_milliseconds_utc() -> None:
    before = time.time()
    stamp = normalize({"a": 1}).envelope()["timestamp"]
    after = time.time()
    assert ISO_MS.match(stamp)
    parsed = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + int(stamp[20:23]) / 1000
    assert int(before) - 1 <= parsed <= after + 1


def test_iso_formats_epoch_seconds_with_milliseconds() -> None:
    epoch = calendar.timegm((2026, 3, 28, 11, 0, 0, 0, 0, 0))
    assert iso(epoch) == "2026-03-28T11:00:00.000Z"
    assert iso(epoch + 0.5) == "2026-03-28T11:00:00.500Z"
    assert iso(epoch + 59.25) == "2026-03-28T11:00:59.250Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(None) is None
    assert iso("as given") == "as given"


def test_a_string_timestamp_in_the_input_is_kept_verbatim() -> None:
    m = normalize({"envelope": {"timestamp": "2026-03-28T11:00:00.000Z"}})
    assert m.envelope()["timestamp"] == "2026-03-28T11:00:00.000Z"


def test_a_numeric_timestamp_in_the_input_is_formatted_as_iso() -> None:
    epoch = calendar.timegm((2026, 3, 28, 11, 0, 0, 0, 0, 0))
    assert normalize({"timestamp": epoch + 0.25}).envelope()["timestamp"] == "2026-03-28T11:00:00.250Z"


@pytest.mark.parametrize("bad", [[], {}, True, -1.5, 1e300, 10**18])
def test_an_unformattable_timestamp_falls_back_to_now(bad: Any) -> None:
    m = normalize({"timestamp": bad, "x": 1})
    stamp = m.envelope()["timestamp"]
    assert ISO_MS.match(stamp)
    assert stamp.startswith(time.strftime("%Y-", time.gmtime()))
    _json.dumps(m.to_dict())


# -- input forms -----------------------------------------------------------------------


def test_g1_a_legacy_map_gets_the_spec_version_the_option_job_id_and_the_payload_as_body() -> None:
    m = normalize({"type": "manual_result", "payload": {"ok": True}}, job_id="job-42")
    d = m.to_dict()
    assert d["envelope"]["spec_version"] == "mn-msg/1"
    assert d["envelope"]["job_id"] == "job-42"
    assert d["envelope"]["type"] == "manual_result"
    assert d["body"] == {"ok": True}
    assert d["headers"] == {}
    assert d["artifacts"] == []
    assert d["stream"] is None


def test_g2_a_spec_message_keeps_headers_artifacts_stream_class_and_content_type() -> None:
    data = spec_message()
    d = normalize(data).to_dict()
    assert d["headers"] == {"trace": "t1", "tenant": "x"}
    assert d["artifacts"] == [{"uri": "file:///a.bin"}]
    assert d["stream"] == {"stream_id": "s1", "seq": 2, "eof": False}
    assert d["body"] == "line\n"
    env = d["envelope"]
    assert env == {**data["envelope"], "spec_version": "mn-msg/1"}


def test_spec_form_reads_envelope_fields_only_from_the_envelope() -> None:
    m = normalize({"envelope": {"type": "inner"}, "type": "outer", "from": "outer", "body": {"b": 1}})
    env = m.envelope()
    assert env["type"] == "inner"
    assert env["from"] == "runtime"
    assert m.body == {"b": 1}


def test_spec_form_without_a_body_has_a_null_body() -> None:
    assert normalize({"envelope": {"type": "t"}}).body is None


def test_spec_form_ignores_a_payload_key() -> None:
    assert normalize({"envelope": {}, "payload": {"p": 1}}).body is None


def test_a_non_object_envelope_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="envelope must be a JSON object, got a list"):
        normalize({"envelope": [1, 2]})


def test_flat_form_takes_the_body_key_first() -> None:
    m = normalize({"body": {"b": 1}, "payload": {"p": 1}, "extra": 2})
    assert m.body == {"b": 1}


def test_flat_form_takes_a_null_body_key_as_the_body() -> None:
    assert normalize({"body": None, "payload": {"p": 1}}).body is None


def test_flat_form_takes_the_payload_key_when_there_is_no_body_key() -> None:
    assert normalize({"payload": [1, 2, 3], "extra": 2}).body == [1, 2, 3]
    assert normalize({"payload": "text"}).body == "text"


def test_flat_form_without_body_or_payload_uses_the_input_minus_reserved_keys() -> None:
    data = {key: f"v-{key}" for key in SPEC_RESERVED if key not in ("body", "payload", "envelope")}
    data.update({"text": "x", "n": 1})
    data["attempt"] = 2
    data["priority"] = 7
    data["ttl_ms"] = 10
    data["content_encoding"] = "identity"
    data["headers"] = {"h": 1}
    data["artifacts"] = [1]
    data["stream"] = {"s": 1}
    assert normalize(data).body == {"text": "x", "n": 1}


def test_the_reserved_keys_are_exactly_the_documented_list() -> None:
    assert frozenset(SPEC_RESERVED) == RESERVED_KEYS


@pytest.mark.parametrize("key", [k for k in SPEC_RESERVED if k not in ("body", "payload", "envelope")])
def test_each_reserved_key_is_excluded_from_a_flat_body(key: str) -> None:
    value: Any = {"headers": {}, "artifacts": [], "stream": None}.get(key, "identity")
    if key in ("attempt", "priority", "ttl_ms"):
        value = 3
    m = normalize({key: value, "keep": True})
    assert m.body == {"keep": True}


def test_flat_form_takes_envelope_fields_from_top_level_keys() -> None:
    m = normalize(
        {
            "message_id": "mid",
            "job_id": "j",
            "from": "src",
            "to": "dst",
            "type": "manual_result",
            "class": "command",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "correlation_id": "cid",
            "causation_id": "cause",
            "attempt": 2,
            "priority": 9,
            "ttl_ms": 500,
            "content_type": "text/json",
            "content_encoding": "gzip",
            "headers": {"h": "1"},
            "artifacts": [{"a": 1}],
            "stream": {"stream_id": "s"},
            "payload": {"ok": True},
        }
    )
    assert m.to_dict() == {
        "envelope": {
            "spec_version": "mn-msg/1",
            "message_id": "mid",
            "job_id": "j",
            "from": "src",
            "to": "dst",
            "type": "manual_result",
            "class": "command",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "correlation_id": "cid",
            "causation_id": "cause",
            "attempt": 2,
            "priority": 9,
            "ttl_ms": 500,
            "content_type": "text/json",
            "content_encoding": "gzip",
        },
        "headers": {"h": "1"},
        "body": {"ok": True},
        "artifacts": [{"a": 1}],
        "stream": {"stream_id": "s"},
    }


def test_a_manual_result_payload_becomes_that_type_with_that_body() -> None:
    m = normalize({"type": "manual_result", "payload": {"ok": True}})
    assert m.envelope()["type"] == "manual_result"
    assert m.type == "manual_result"
    assert m.body == {"ok": True}


def test_a_plain_text_map_becomes_the_body_with_the_default_type() -> None:
    m = normalize({"text": "x"})
    assert m.body == {"text": "x"}
    assert m.envelope()["type"] == "command"


def test_input_values_win_over_caller_defaults() -> None:
    m = normalize(
        {"type": "custom", "class": "event", "from": "someone", "v": 1},
        job_id="j",
        to="entry",
        type="init",
        cls="command",
    )
    env = m.envelope()
    assert env["type"] == "custom"
    assert env["class"] == "event"
    assert env["from"] == "someone"
    assert m.body == {"v": 1}


def test_caller_defaults_apply_when_the_input_has_no_such_key() -> None:
    m = normalize({"v": 1}, job_id="j", sender="node-a", to="entry", type="init", cls="command")
    env = m.envelope()
    assert (env["job_id"], env["from"], env["to"], env["type"], env["class"]) == (
        "j",
        "node-a",
        "entry",
        "init",
        "command",
    )


def test_the_runtime_given_job_id_and_target_win_over_the_input() -> None:
    m = normalize({"job_id": "theirs", "to": "theirs", "v": 1}, job_id="ours", to="entry")
    assert m.envelope()["job_id"] == "ours"
    assert m.envelope()["to"] == "entry"
    spec = normalize({"envelope": {"job_id": "theirs"}}, job_id="ours")
    assert spec.envelope()["job_id"] == "ours"


def test_input_job_id_and_target_are_used_when_the_runtime_gives_none() -> None:
    env = normalize({"job_id": "theirs", "to": "node"}).envelope()
    assert env["job_id"] == "theirs" and env["to"] == "node"


@pytest.mark.parametrize("headers", [None, [], "h", 1, True, ["a", "b"]])
def test_non_object_headers_become_an_empty_object(headers: Any) -> None:
    assert normalize({"headers": headers, "x": 1}).headers == {}
    assert normalize({"envelope": {}, "headers": headers}).to_dict()["headers"] == {}


@pytest.mark.parametrize("artifacts", [None, {}, "a", 1, {"a": 1}])
def test_non_list_artifacts_become_an_empty_list(artifacts: Any) -> None:
    assert normalize({"artifacts": artifacts, "x": 1}).artifacts == []
    assert normalize({"envelope": {}, "artifacts": artifacts}).to_dict()["artifacts"] == []


@pytest.mark.parametrize("stream", [[], "s", 1, [{"seq": 1}], False])
def test_a_non_object_stream_becomes_null(stream: Any) -> None:
    assert normalize({"stream": stream, "x": 1}).stream is None
    assert normalize({"envelope": {}, "stream": stream}).to_dict()["stream"] is None


@pytest.mark.parametrize(
    ("key", "value", "default"),
    [
        ("attempt", "2", 1),
        ("attempt", 2.0, 1),
        ("attempt", True, 1),
        ("priority", None, 100),
        ("priority", [], 100),
    ],
)
def test_non_integer_counters_get_their_default(key: str, value: Any, default: int) -> None:
    assert normalize({key: value}).envelope()[key] == default


def test_a_non_integer_ttl_is_absent() -> None:
    assert "ttl_ms" not in normalize({"ttl_ms": "100"}).envelope()
    assert normalize({"ttl_ms": 0}).envelope()["ttl_ms"] == 0


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ([1, 2], "a list"),
        ("text", "a string"),
        (3, "a number"),
        (1.5, "a number"),
        (None, "null"),
        (True, "a boolean"),
    ],
)
def test_non_object_input_is_a_readable_message_error(data: Any, kind: str) -> None:
    with pytest.raises(MessageError) as info:
        normalize(data)
    assert str(info.value) == f"message must be a JSON object, got {kind}"
    assert isinstance(info.value, MirrorNeuronError)


def test_a_non_string_type_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="message type must be a string, got a number"):
        normalize({"type": 5})


def test_a_non_string_content_type_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="content_type must be a string, got a list"):
        normalize({"envelope": {"content_type": ["application/json"]}})


@pytest.mark.parametrize("form", ["flat", "spec"])
def test_an_unsupported_content_encoding_is_a_message_error(form: str) -> None:
    data = {"content_encoding": "br", "x": 1} if form == "flat" else {"envelope": {"content_encoding": "br"}}
    with pytest.raises(MessageError) as info:
        normalize(data)
    assert str(info.value) == 'unsupported content_encoding "br"'


def test_gzip_and_identity_content_encodings_are_accepted() -> None:
    assert normalize({"content_encoding": "gzip"}).content_encoding == "gzip"
    assert normalize({"content_encoding": "identity"}).content_encoding == "identity"


def test_normalizing_a_message_returns_it_unchanged() -> None:
    m = normalize({"a": 1})
    assert normalize(m) is m


def test_from_dict_rebuilds_a_message_from_to_dict() -> None:
    m = normalize(spec_message())
    assert from_dict(m.to_dict()).to_dict() == m.to_dict()


# -- fast path vs slow path -------------------------------------------------------------


class _SlowDict(dict):
    """A dict subclass: takes the general code path instead of the plain-dict shortcut."""


@pytest.mark.parametrize(
    "payload",
    [{}, {"text": "x"}, {"n": 1, "nested": {"type": "inner"}, "list": [1, 2]}, {"spec_version": "x"}],
)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"job_id": "j", "sender": "s", "to": "t", "type": "init", "cls": "command"},
        {"job_id": "", "sender": "", "to": "", "type": "", "cls": ""},
    ],
)
def test_the_fast_path_builds_the_same_message_as_the_general_path(
    payload: dict[str, Any], options: dict[str, Any]
) -> None:
    fast = normalize(dict(payload), **options)
    slow = normalize(_SlowDict(payload), **options)
    assert without_ids(fast.to_dict()) == without_ids(slow.to_dict())
    assert set(fast.envelope()) == set(slow.envelope())
    assert fast.message_id != slow.message_id
    assert ISO_MS.match(fast.envelope()["timestamp"])


def test_the_fast_path_copies_the_input_rather_than_sharing_it() -> None:
    data = {"a": 1}
    m = normalize(data)
    data["a"] = 2
    assert m.body == {"a": 1}


# -- emitted messages (§3.4) -------------------------------------------------------------


@pytest.fixture
def parent() -> Message:
    return normalize(spec_message())


def _check_inherited(child: Message, parent: Message) -> None:
    penv, cenv = parent.envelope(), child.envelope()
    assert cenv["class"] == penv["class"] == "stream"
    assert cenv["correlation_id"] == penv["correlation_id"] == "c-1"
    assert cenv["content_type"] == penv["content_type"] == NDJSON
    assert cenv["content_encoding"] == penv["content_encoding"] == "gzip"
    assert child.artifacts == parent.artifacts == [{"uri": "file:///a.bin"}]
    assert child.stream == parent.stream == {"stream_id": "s1", "seq": 2, "eof": False}
    assert cenv["job_id"] == "job-1"
    assert cenv["causation_id"] == penv["message_id"] == "m-1"
    assert cenv["message_id"] != penv["message_id"]
    assert cenv["attempt"] == 1
    assert cenv["priority"] == 100
    assert "ttl_ms" not in cenv
    assert cenv["spec_version"] == "mn-msg/1"
    assert ISO_MS.match(cenv["timestamp"])
    assert cenv["timestamp"] != penv["timestamp"]


def test_child_inherits_per_spec_and_resets_attempt_priority_and_ttl(parent: Message) -> None:
    child = parent.child("node-a", "node-b", "result", {"r": 1})
    _check_inherited(child, parent)
    env = child.envelope()
    assert (env["from"], env["to"], env["type"]) == ("node-a", "node-b", "result")
    assert child.body == {"r": 1}
    assert child.headers == {"trace": "t1", "tenant": "x"}


def test_child_leaves_the_parent_untouched(parent: Message) -> None:
    before = parent.to_dict()
    parent.child("a", "b", "t", 1)
    parent.derive("a", "b", "t", 1, headers={"trace": "new"}, cls="event")
    assert parent.to_dict() == before
    assert parent.attempt == 3 and parent.priority == 5 and parent.ttl_ms == 100


def test_a_child_of_a_fresh_message_also_has_the_reset_values() -> None:
    parent = normalize({"x": 1})
    child = parent.child("a", "b", "t", {})
    env = child.envelope()
    assert env["attempt"] == 1 and env["priority"] == 100 and "ttl_ms" not in env
    assert env["causation_id"] == parent.message_id
    assert env["correlation_id"] == parent.correlation_id


def test_child_accepts_an_explicit_message_id(parent: Message) -> None:
    assert parent.child("a", "b", "t", 1, message_id="given").envelope()["message_id"] == "given"


def test_children_get_unique_message_ids(parent: Message) -> None:
    ids = {parent.child("a", "b", "t", i).message_id for i in range(200)}
    assert len(ids) == 200


def test_a_grandchild_is_caused_by_the_child(parent: Message) -> None:
    child = parent.child("a", "b", "t", 1)
    grandchild = child.child("b", "c", "t", 2)
    assert grandchild.causation_id == child.message_id
    assert grandchild.correlation_id == parent.correlation_id == "c-1"


def test_derive_without_overrides_inherits_like_child(parent: Message) -> None:
    derived = parent.derive("node-a", "node-b", "result", {"r": 1})
    _check_inherited(derived, parent)
    assert derived.headers == parent.headers


def test_derive_merges_given_headers_over_the_incoming_ones(parent: Message) -> None:
    derived = parent.derive("a", "b", "t", 1, headers={"tenant": "y", "new": "z"})
    _check_inherited(derived, parent)
    assert derived.headers == {"trace": "t1", "tenant": "y", "new": "z"}
    assert parent.headers == {"trace": "t1", "tenant": "x"}


def test_derive_with_empty_headers_keeps_the_incoming_ones(parent: Message) -> None:
    assert parent.derive("a", "b", "t", 1, headers={}).headers == parent.headers


def test_derive_overrides_replace_the_inherited_values(parent: Message) -> None:
    derived = parent.derive(
        "a",
        "b",
        "t",
        1,
        cls="control",
        correlation_id="c-2",
        causation_id="cause-2",
        content_type="application/json",
        content_encoding="identity",
        artifacts=[],
        stream={"stream_id": "s2"},
        message_id="m-2",
    )
    env = derived.envelope()
    assert env["class"] == "control"
    assert env["correlation_id"] == "c-2"
    assert env["causation_id"] == "cause-2"
    assert env["content_type"] == "application/json"
    assert env["content_encoding"] == "identity"
    assert env["message_id"] == "m-2"
    assert derived.artifacts == []
    assert derived.stream == {"stream_id": "s2"}
    assert env["attempt"] == 1 and env["priority"] == 100 and "ttl_ms" not in env
    assert parent.cls == "stream" and parent.stream == {"stream_id": "s1", "seq": 2, "eof": False}


# -- body encoding (§3.3, payload contract §6.2) -----------------------------------------


def test_json_bodies_are_compact_json() -> None:
    assert encode_body({"checked": 10}) == b'{"checked":10}'
    assert encode_body({"a": [1, 2], "b": {"c": None}}, "application/json") == b'{"a":[1,2],"b":{"c":null}}'


def test_text_json_and_parameterised_json_types_are_json() -> None:
    assert encode_body({"checked": 10}, "text/json") == b'{"checked":10}'
    assert encode_body({"checked": 10}, "application/json; charset=utf-8") == b'{"checked":10}'
    assert encode_body("s", "application/json") == b'"s"'


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/jsonl", "application/ndjson"])
def test_an_ndjson_string_body_is_written_verbatim(ctype: str) -> None:
    assert encode_body('{"n":1}\n{"n": 2}', ctype) == b'{"n":1}\n{"n": 2}'


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/jsonl", "application/ndjson"])
def test_g4_an_ndjson_list_body_is_one_compact_json_per_line_with_a_trailing_newline(ctype: str) -> None:
    assert encode_body([{"n": 1}, {"n": 2}], ctype) == b'{"n":1}\n{"n":2}\n'


def test_an_empty_ndjson_list_is_empty() -> None:
    assert encode_body([], NDJSON) == b""


def test_any_other_ndjson_body_is_json_plus_a_newline() -> None:
    assert encode_body({"n": 1}, NDJSON) == b'{"n":1}\n'
    assert encode_body(5, NDJSON) == b"5\n"
    assert encode_body(None, NDJSON) == b"null\n"


def test_an_octet_stream_binary_body_is_written_raw() -> None:
    raw = bytes(range(256))
    assert encode_body(raw, "application/octet-stream") == raw
    assert encode_body(bytearray(b"\x00\xff"), "application/octet-stream") == b"\x00\xff"


def test_a_non_binary_octet_stream_body_is_json() -> None:
    assert encode_body({"a": 1}, "application/octet-stream") == b'{"a":1}'


def test_an_unknown_content_type_is_json() -> None:
    assert encode_body({"a": 1}, "text/plain") == b'{"a":1}'


def test_g4_a_gzip_body_decompresses_to_compact_json() -> None:
    raw = encode_body({"ok": True}, "application/json", "gzip")
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == b'{"ok":true}'
    assert zlib.decompress(raw, wbits=31) == b'{"ok":true}'


def test_gzip_encoding_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    first = encode_body({"ok": True}, "application/json", "gzip")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)  # gzip would stamp its header with the time
    assert encode_body({"ok": True}, "application/json", "gzip") == first
    assert apply_encoding(b"abc", "gzip") == apply_encoding(b"abc", "gzip")


def test_gzip_applies_after_ndjson_encoding() -> None:
    raw = encode_body([{"n": 1}, {"n": 2}], NDJSON, "gzip")
    assert gzip.decompress(raw) == b'{"n":1}\n{"n":2}\n'


def test_identity_encoding_leaves_the_bytes_alone() -> None:
    for enc in ("identity", None, ""):
        assert apply_encoding(b"abc", enc) == b"abc"


@pytest.mark.parametrize("encoding", ["br", "deflate", "GZIP", "x"])
def test_an_unsupported_encoding_is_an_error_when_encoding_and_decoding(encoding: str) -> None:
    with pytest.raises(MessageError) as info:
        encode_body({"a": 1}, "application/json", encoding)
    assert str(info.value) == f'unsupported content_encoding "{encoding}"'
    with pytest.raises(MessageError) as info:
        decode_body(b"{}", "application/json", encoding)
    assert str(info.value) == f'unsupported content_encoding "{encoding}"'


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize(
    ("body", "ctype", "decoded"),
    [
        ({"checked": 10}, "application/json", {"checked": 10}),
        ([1, "a", None], "text/json", [1, "a", None]),
        ([{"n": 1}, {"n": 2}], NDJSON, [{"n": 1}, {"n": 2}]),
        ('{"n":1}\n\n{"n":2}\n', "application/jsonl", [{"n": 1}, {"n": 2}]),
        ({"n": 1}, "application/ndjson", [{"n": 1}]),
        (b"\x00\x01raw", "application/octet-stream", b"\x00\x01raw"),
    ],
)
def test_decode_body_inverts_encode_body(body: Any, ctype: str, decoded: Any, encoding: str) -> None:
    assert decode_body(encode_body(body, ctype, encoding), ctype, encoding) == decoded


def test_decode_body_reports_invalid_json_as_a_message_error() -> None:
    with pytest.raises(MessageError, match="not valid JSON"):
        decode_body(b"{nope", "application/json")
    with pytest.raises(MessageError, match="not valid JSON"):
        decode_body(b'{"n":1}\n{nope\n', NDJSON)


def test_decode_body_reports_invalid_gzip_as_a_message_error() -> None:
    with pytest.raises(MessageError, match="not valid gzip"):
        decode_body(b"not gzip", "application/json", "gzip")
    with pytest.raises(MessageError, match="not valid gzip"):
        decode_body(gzip.compress(b"{}")[:-6], "application/json", "gzip")


# -- whole-message serialisation (G3) ------------------------------------------------------


def test_g3_a_message_round_trips_through_json(parent: Message) -> None:
    raw = to_json(parent)
    assert isinstance(raw, bytes)
    assert orjson.loads(raw) == parent.to_dict()
    back = from_json(raw)
    assert back.to_dict() == parent.to_dict()
    assert from_json(raw.decode()).to_dict() == parent.to_dict()


def test_a_fresh_message_round_trips_through_json_with_its_ids_and_timestamp() -> None:
    m = normalize({"v": [1, 2, {"k": None}]}, job_id="j", to="n")
    back = from_json(to_json(m))
    assert back.to_dict() == m.to_dict()
    assert back.message_id == m.message_id
    assert back.correlation_id == m.correlation_id


def test_g3_two_messages_round_trip_through_ndjson(parent: Message) -> None:
    other = normalize({"type": "manual_result", "payload": {"ok": True}}, job_id="j")
    raw = to_ndjson([parent, other])
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")
    assert len(lines) == 3 and lines[2] == b""
    back = from_ndjson(raw)
    assert [m.to_dict() for m in back] == [parent.to_dict(), other.to_dict()]
    assert [m.to_dict() for m in from_ndjson(raw.decode())] == [parent.to_dict(), other.to_dict()]


def test_ndjson_skips_blank_lines_and_an_empty_stream_is_empty() -> None:
    m = normalize({"a": 1})
    assert [x.to_dict() for x in from_ndjson(b"\n" + to_json(m) + b"\n\n  \n")] == [m.to_dict()]
    assert from_ndjson(b"") == []
    assert to_ndjson([]) == b""


def test_g3_a_message_round_trips_through_the_binary_format(parent: Message) -> None:
    back = pickle.loads(pickle.dumps(parent))
    assert back.to_dict() == parent.to_dict()
    assert back.child("a", "b", "t", 1).causation_id == "m-1"


def test_invalid_json_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="message is not valid JSON"):
        from_json(b"{not json")
    with pytest.raises(MessageError, match="got a list"):
        from_json(b"[1, 2]")
    with pytest.raises(MessageError, match="message is not valid JSON"):
        from_ndjson(b'{"a":1}\n{oops\n')


# -- properties ----------------------------------------------------------------------------

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
ENVELOPE_VALUES = {
    "type": st.sampled_from(["init", "result", ""]) | JSON,
    "content_type": st.sampled_from(["application/json", NDJSON, "application/octet-stream"]) | JSON,
    "content_encoding": st.sampled_from(["identity", "gzip", "br", ""]) | JSON,
    "timestamp": st.floats(min_value=0, max_value=4e9) | JSON,
    "attempt": st.integers(0, 5) | JSON,
}
FIELD_KEYS = st.sampled_from([*SPEC_RESERVED, "spec_version"]) | st.text(max_size=6)
FIELDS = st.dictionaries(
    FIELD_KEYS,
    JSON,
    max_size=8,
)
KNOWN = st.fixed_dictionaries({}, optional=ENVELOPE_VALUES)
ENVELOPE = st.tuples(st.dictionaries(st.sampled_from(ENVELOPE_KEYS), JSON, max_size=6), KNOWN).map(
    lambda t: {**t[0], **t[1]}
)
FLAT = st.tuples(FIELDS, KNOWN).map(lambda t: {**t[0], **t[1]})
SPEC = st.fixed_dictionaries(
    {"envelope": ENVELOPE},
    optional={"headers": JSON, "body": JSON, "artifacts": JSON, "stream": JSON, "payload": JSON},
)
INPUTS = JSON | FLAT | SPEC
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "job_id": st.none() | st.text(max_size=5),
        "to": st.none() | st.text(max_size=5),
        "type": st.sampled_from(["init", "command"]),
        "cls": st.sampled_from(["command", "event"]),
    },
)


def _normalized(data: Any, options: dict[str, Any]) -> Message | None:
    try:
        return normalize(data, **options)
    except MessageError:
        return None


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(INPUTS, OPTIONS)
def test_normalize_raises_nothing_but_message_error_on_any_json_input(
    data: Any, options: dict[str, Any]
) -> None:
    _normalized(data, options)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(INPUTS, OPTIONS)
def test_any_normalized_message_serialises_and_round_trips_through_json(
    data: Any, options: dict[str, Any]
) -> None:
    m = _normalized(data, options)
    if m is None:
        return
    d = m.to_dict()
    raw = _json.dumps(d)
    assert orjson.loads(raw) == d
    env = d["envelope"]
    assert env["spec_version"] == "mn-msg/1"
    assert None not in env.values()
    assert set(env) <= set(ENVELOPE_KEYS)
    assert isinstance(env["message_id"], str) and isinstance(env["correlation_id"], str)
    assert isinstance(env["timestamp"], str)
    assert env["content_encoding"] in ("identity", "gzip")
    assert isinstance(d["headers"], dict) and isinstance(d["artifacts"], list)
    assert d["stream"] is None or isinstance(d["stream"], dict)
    back = from_json(raw)
    assert back.envelope() == env
    assert back.body == d["body"]
    assert back.to_dict() == d


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(FIELDS.filter(lambda d: not d.keys() & RESERVED_KEYS), OPTIONS)
def test_a_payload_without_reserved_keys_is_the_body_itself(
    data: dict[str, Any], options: dict[str, Any]
) -> None:
    fast = normalize(data, **options)
    slow = normalize(_SlowDict(data), **options)
    assert fast.body == data
    assert without_ids(fast.to_dict()) == without_ids(slow.to_dict())


@settings(max_examples=200, deadline=None)
@given(
    JSON, st.sampled_from(["application/json", "text/json", NDJSON]), st.sampled_from(["identity", "gzip"])
)
def test_encoded_json_bodies_decode_back(body: Any, ctype: str, encoding: str) -> None:
    raw = encode_body(body, ctype, encoding)
    if ctype == NDJSON and isinstance(body, str):
        # A string body is written verbatim: it is the worker's NDJSON text, not a JSON value.
        assert apply_encoding(body.encode(), encoding) == raw
        return
    decoded = decode_body(raw, ctype, encoding)
    assert decoded == (body if ctype != NDJSON or isinstance(body, list) else [body])
