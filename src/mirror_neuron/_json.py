"""JSON encoding in one place (orjson), used only at the boundaries.

Keys are stringified, bytes become text (UTF-8, else base64) so that any message body
can be written out, and pretty output uses two-space indentation like the original.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_PRETTY = _OPTS | orjson.OPT_INDENT_2


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(value, default=_default, option=_OPTS)


def dumps_str(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=_OPTS).decode("utf-8")


def dumps_pretty(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_PRETTY)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)
