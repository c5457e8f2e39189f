"""How values appear inside validation messages.

Values a message quotes are JSON literals (:func:`inspect`: strings in double quotes, null
as ``null``); the ``got …`` suffixes name JSON types (:func:`kind_name`) or show JSON text
shortened (:func:`show`).
"""

from __future__ import annotations

import json
from typing import Any

from mirror_neuron import _json

MAX_SHOWN = 80


def show(value: Any) -> str:
    """Compact JSON text of ``value``, shortened to :data:`MAX_SHOWN` characters."""
    try:
        text = _json.dumps_str(value)
    except (TypeError, ValueError):  # not JSON-encodable or nested too deep: still report
        try:
            text = repr(value)
        except RecursionError:
            text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def inspect(value: Any) -> str:
    """A JSON scalar as a JSON literal (strings unescaped beyond quotes); containers as :func:`show`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    return show(value)


def kind_name(value: Any) -> str:
    """The JSON type of ``value`` with an article, as in ``got a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
