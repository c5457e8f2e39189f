"""The terminal summary of ``mn run``: nested result values (deep ones folded), elapsed time, events."""

from __future__ import annotations

import pytest
from rich.console import Console

from mirror_neuron.cli import render

RECORD = {
    "job_id": "j1",
    "status": "completed",
    "graph_id": "g",
    "submitted_at": "2026-03-28T11:00:00.000Z",
    "updated_at": "2026-03-28T11:01:02.500Z",
    "result": {
        "agent_id": "sink",
        "output": {"count": 2, "scores": [0.5, 0.75], "deep": {"a": {"b": {"c": "too deep to show"}}}},
        "note": "\x1b]0;pwned\x07titled",
    },
}


def shown(monkeypatch: pytest.MonkeyPatch, record: dict, **kwargs: object) -> str:
    console = Console(record=True, force_terminal=True, width=120)
    monkeypatch.setattr(render, "is_tty", lambda: True)
    monkeypatch.setattr(render, "_console", lambda: console)
    render.print_job_summary(record, **kwargs)  # type: ignore[arg-type]
    return console.export_text()


def test_the_summary_shows_nested_values_folds_deep_ones_and_the_elapsed_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = shown(monkeypatch, RECORD, events=12)
    assert "'scores': [0.5, 0.75]" in text and "'count': 2" in text  # nested values, pretty-printed
    assert "too deep to show" not in text and "{...}" in text  # folded past max_depth
    assert "elapsed" in text and "1m02.5s" in text
    assert "events" in text and "12" in text
    assert "\x1b]" not in text and "titled" in text  # untrusted text cleaned, not dropped


def test_the_summary_leaves_out_what_it_cannot_know(monkeypatch: pytest.MonkeyPatch) -> None:
    text = shown(monkeypatch, {**RECORD, "updated_at": "not a time"})
    assert "elapsed" not in text and "events" not in text and "'count': 2" in text


@pytest.mark.parametrize(
    ("submitted", "updated", "expected"),
    [
        ("2026-03-28T11:00:00.000Z", "2026-03-28T11:00:00.250Z", "0.250s"),
        ("2026-03-28T11:00:00.000Z", "2026-03-28T11:02:05.000Z", "2m05.0s"),
        ("2026-03-28T11:00:00.000Z", "2026-03-28T12:02:03.000Z", "1h02m03.0s"),
        ("2026-03-28T11:00:01.000Z", "2026-03-28T11:00:00.000Z", None),  # clocks disagree
        ("2026-03-28T11:00:00", "2026-03-28T11:00:01.000Z", None),  # one without a zone
        (None, "2026-03-28T11:00:00.000Z", None),
    ],
)
def test_elapsed(submitted: str | None, updated: str, expected: str | None) -> None:
    assert render.elapsed({"submitted_at": submitted, "updated_at": updated}) == expected


def test_the_plain_summary_has_the_elapsed_time_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(render, "is_tty", lambda: False)
    render.print_job_summary(RECORD, events=3)
    out = capsys.readouterr().out
    assert "elapsed: 1m02.5s\n" in out and "events: 3\n" in out
