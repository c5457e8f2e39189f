"""Bounds on JSON-like values that come from outside: nesting depth and encoded size.

Why: every value a job holds is eventually encoded by orjson for the store, and orjson
refuses nesting deeper than about 254 levels. A value that cannot be encoded must be
refused where it enters (an external message, a manifest, an executor's output), with an
error its sender can act on, not discovered later by the store writer. The depth limit is
far below orjson's so that the runtime's own wrapping (envelopes, events, snapshots) and
agents that nest what they receive a few times stay encodable.

The walk is iterative, level by level (a hostile value cannot exhaust the Python stack),
and skips scalars with one type lookup: an ordinary message costs a couple of
microseconds, a manifest with 200,000 initial inputs some 60 ms. A leaf module: it
imports only :mod:`.errors` and :mod:`._json`.
"""

from __future__ import annotations

from typing import Any

from . import _json
from .errors import MessageError, MirrorNeuronError

__all__ = ["MAX_DEPTH", "MAX_MESSAGE_BYTES", "check_bounds", "nesting_depth"]

#: Deepest nesting accepted in a message body or any other external value (``{}`` is 1).
MAX_DEPTH = 64
#: Largest encoded size (JSON bytes) of one external message.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_SCALARS = frozenset({str, int, float, bool, type(None)})
_SEQUENCES = (list, tuple, set, frozenset)


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``{}`` and ``[]`` are 1), counted up to ``limit + 1``.

    Stops one level past ``limit``: a shared or cyclic structure built in Python cannot
    make the walk run away, since each level is strictly deeper than the one before.
    """
    level: list[Any] = [value]
    depth = 0
    scalars = _SCALARS
    while level:
        below: list[Any] = []
        append = below.append
        containers = 0
        for item in level:
            cls = item.__class__
            if cls is dict:
                children: Any = item.values()
            elif cls is list:
                children = item
            elif isinstance(item, dict):
                children = item.values()
            elif isinstance(item, _SEQUENCES):
                children = item
            else:
                continue
            containers += 1
            for child in children:  # inline: most containers are small, a comprehension costs more
                if child.__class__ not in scalars:
                    append(child)
        if not containers:
            return depth
        depth += 1
        if depth > limit:
            return depth
        level = below
    return depth


def check_bounds(
    value: Any,
    *,
    what: str,
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    error: type[MirrorNeuronError] = MessageError,
) -> None:
    """Raise ``error`` naming ``what`` and the limit if ``value`` nests too deep or encodes too big.

    The depth is checked first, by walking the value: orjson must never see a value nested
    deeper than its limit (deeply nested tuples even crash the process). With
    ``max_bytes`` the value is then encoded once, with the store's encoder, which measures
    it exactly and refuses a value that cannot be encoded at all. ``error`` is called with
    one message, so :class:`~mirror_neuron.errors.ManifestError` works as well as
    :class:`~mirror_neuron.errors.MessageError`.
    """
    if value.__class__ in _SCALARS and max_bytes is None:
        return
    if nesting_depth(value, max_depth) > max_depth:
        raise error(f"{what} is nested more than {max_depth} levels deep (the limit is {max_depth})")
    if max_bytes is None:
        return
    try:
        size = len(_json.dumps(value))
    except TypeError as exc:
        raise error(f"{what} cannot be encoded as JSON: {exc}") from exc
    if size > max_bytes:
        raise error(f"{what} is {size} bytes as JSON, over the limit of {max_bytes} bytes")
