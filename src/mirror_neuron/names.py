"""What names from outside may contain: ids, message types, event types.

Ids end up in job ids, REST paths, log lines and terminals, and event and message types
in events and terminals; a name that carries a newline, a terminal escape, a bidi
override or a ``/`` misleads or breaks every one of them. One set of rules, used by the
bundle validator, for messages sent to a job and for what executor scripts emit. A leaf
module: it imports nothing of the package.
"""

from __future__ import annotations

import json
import unicodedata

#: Longest graph, node or edge id and message type: ids end up in job ids, URLs and log lines.
MAX_ID_LENGTH = 200
#: Unicode categories no id or message type may contain, with how messages name them:
#: controls (newlines, terminal escapes), invisible format characters (bidi overrides such
#: as U+202E, zero-width characters), line and paragraph separators, and lone surrogates.
FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate",
}


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id or message type (shown in events and terminals), or ``None``."""
    if len(value) > MAX_ID_LENGTH:
        return f"it is longer than {MAX_ID_LENGTH} characters"
    if value != value.strip():
        return "it starts or ends with whitespace"
    if value.isascii() and value.isprintable():  # the common case, without a look-up per character
        return None
    for char in value:
        what = FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
        if what is not None:
            return f"it contains {what} (U+{ord(char):04X})"
    return None


def path_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a graph or node id, or ``None``.

    These also name REST paths (``/jobs/{job_id}``, where job ids start with the graph
    id, and ``/agents/{agent_id}``): a ``/`` made a job no route could reach.
    """
    if value in (".", ".."):
        return f'it is "{value}", which names a folder in a path'
    for separator, name in (("/", "a slash"), ("\\", "a backslash")):
        if separator in value:
            return f"it contains {name} ({separator})"
    return text_problem(value)


def quoted(value: str, width: int = 60) -> str:
    """``value`` in double quotes with every non-ASCII and control character escaped, so a
    message that names a bad id cannot itself carry the bad characters."""
    return json.dumps(value if len(value) <= width else value[:width] + "...")


__all__ = ["FORBIDDEN_CATEGORIES", "MAX_ID_LENGTH", "path_id_problem", "quoted", "text_problem"]
