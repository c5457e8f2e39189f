"""The bounds helper: nesting depth and encoded size of external values, with errors naming both."""

from __future__ import annotations

from typing import Any

import pytest

from mirror_neuron.bounds import MAX_DEPTH, MAX_MESSAGE_BYTES, check_bounds, nesting_depth
from mirror_neuron.errors import ManifestError, MessageError


def nested(levels: int, container: type = dict) -> Any:
    value: Any = {} if container is dict else container()
    for _ in range(levels - 1):
        value = {"x": value} if container is dict else container([value])
    return value


@pytest.mark.parametrize(
    "value,depth",
    [(None, 0), ("text", 0), (3, 0), ({}, 1), ([], 1), ({"a": [1, {"b": None}]}, 3), (nested(64), 64)],
)
def test_depth_counts_containers(value: Any, depth: int) -> None:
    assert nesting_depth(value, MAX_DEPTH) == depth


def test_the_limit_is_inclusive_and_the_error_names_the_value_and_the_limit() -> None:
    check_bounds(nested(MAX_DEPTH), what="the body")
    with pytest.raises(
        MessageError, match=r"^the body is nested more than 64 levels deep \(the limit is 64\)$"
    ):
        check_bounds(nested(MAX_DEPTH + 1), what="the body")


@pytest.mark.parametrize("levels", [300, 100_000])
def test_hostile_depths_are_refused_without_recursion(levels: int) -> None:
    with pytest.raises(MessageError, match="more than 64 levels"):
        check_bounds(nested(levels), what="a message", max_bytes=MAX_MESSAGE_BYTES)


@pytest.mark.parametrize("container", [list, tuple])
def test_deep_sequences_are_refused_before_the_encoder_sees_them(container: type) -> None:
    """orjson corrupts memory on ~5000 nested tuples: the walk must decide first."""
    with pytest.raises(MessageError, match="more than 64 levels"):
        check_bounds(nested(10_000, container), what="a value", max_bytes=MAX_MESSAGE_BYTES)


def test_cyclic_values_end_the_walk() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(MessageError, match="more than 64 levels"):
        check_bounds(loop, what="a loop")


def test_size_and_encodability_are_checked_only_with_max_bytes() -> None:
    big = {"blob": "x" * 100}
    check_bounds(big, what="a message")
    with pytest.raises(MessageError, match=r"^a message is 1\d\d bytes as JSON, over the limit of 50 bytes$"):
        check_bounds(big, what="a message", max_bytes=50)
    with pytest.raises(MessageError, match="a message cannot be encoded as JSON"):
        check_bounds({"thing": object()}, what="a message", max_bytes=MAX_MESSAGE_BYTES)


def test_the_error_type_is_the_callers() -> None:
    with pytest.raises(ManifestError) as info:
        check_bounds(nested(70), what="initial input 0", error=ManifestError)
    assert info.value.errors == ["initial input 0 is nested more than 64 levels deep (the limit is 64)"]
