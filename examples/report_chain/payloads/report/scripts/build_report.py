"""Stage 2 of report_chain: turn the shell stage's metrics into a readable report.

The incoming message is the word_count executor's default output payload::

    {"agent_id": "word_count", "sandbox": {"stdout": "<metrics JSON>", ...}, "input": <original request>}

so the metrics are ``.sandbox.stdout`` (a string, parsed here) and the original request
(``request_id``, ``text``) is ``.input``. The report is printed as plain JSON: the runtime
passes it on, unparsed, in this executor's own ``sandbox.stdout``.
"""

from __future__ import annotations

import json
import math
import os

WORDS_PER_MINUTE = 200
PREVIEW_CHARS = 60


def main() -> None:
    with open(os.environ["MIRROR_NEURON_INPUT_FILE"], encoding="utf-8") as fh:
        incoming = json.load(fh)
    metrics = json.loads(incoming["sandbox"]["stdout"])
    request = incoming["input"]
    text = request["text"]

    words = metrics["words"]
    first_line = text.splitlines()[0] if text else ""
    preview = first_line if len(first_line) <= PREVIEW_CHARS else first_line[: PREVIEW_CHARS - 3] + "..."
    report = {
        "request_id": request["request_id"],
        "headline": f"{words} words, {metrics['lines']} lines, {metrics['unique_words']} distinct words",
        "explanation": (
            f"The most frequent word is {metrics['top_word']!r} ({metrics['top_word_count']} times); "
            f"{metrics['chars']} characters in {metrics['bytes']} UTF-8 bytes."
        ),
        "reading_time_seconds": math.ceil(words * 60 / WORDS_PER_MINUTE),
        "lexical_density": round(metrics["unique_words"] / words, 3) if words else 0.0,
        "metrics": metrics,
        "metrics_from": incoming["agent_id"],
        "text_preview": preview,
    }
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
