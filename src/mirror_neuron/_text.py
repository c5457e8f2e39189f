"""Untrusted text made safe for a terminal, for every interface that prints it.

Job records, events, logs and agent ids carry text that untrusted parties wrote (scripts,
submitted manifests, a server's answers). Written to a terminal as it is, it could send
escape sequences (an OSC sequence in an event payload once set the terminal's title) or
reorder a line with bidi controls; :func:`clean` drops those code points first.
"""

from __future__ import annotations

from typing import Any

#: Code points dropped from untrusted text: C0 controls but tab and newline (ESC starts
#: escape sequences, CR rewrites the line), DEL, C1 controls (U+009B is a one-character
#: CSI on some terminals), and the bidi marks, embeddings, overrides and isolates
#: (U+061C, U+200E/F, U+202A to U+202E, U+2066 to U+2069), which reorder what a line shows.
UNSAFE_CODEPOINTS = (
    *range(0x00, 0x09),
    *range(0x0B, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_DROP: dict[int, str | None] = dict.fromkeys(UNSAFE_CODEPOINTS)
#: For one-line fields (table cells, event lines): a newline must not forge another line.
_DROP_ONE_LINE: dict[int, str | None] = {**_DROP, 0x09: " ", 0x0A: " "}


def clean(value: Any, *, one_line: bool = False, limit: int | None = None) -> str:
    """``value`` as text that is safe to write to a terminal (see :data:`UNSAFE_CODEPOINTS`).

    With ``one_line``, tabs and newlines become spaces too; with ``limit``, the text is cut
    to that many characters (ending in ``…``). ``None`` is empty text.
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    text = text.translate(_DROP_ONE_LINE if one_line else _DROP)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
