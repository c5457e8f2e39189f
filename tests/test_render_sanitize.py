"""Untrusted text never reaches the terminal as escape sequences or bidi controls.

``mn job events`` once passed an OSC sequence from a script's event to the terminal (it
set the window title). Event types and payloads, agent ids, job names, results and the
live progress all come from bundles and their scripts; ``--json`` output stays as it was.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mirror_neuron import _json
from mirror_neuron.cli import render
from mirror_neuron.events import make as make_event
from mirror_neuron.store import SQLiteStore
from mirror_neuron.store.base import WriteBatch

OSC_TITLE = "\x1b]0;pwned\x07"
CSI_CLEAR = "\x1b[2J"
C1_CSI = "\x9b31m"
BIDI = "\u202etxt.exe\u202c"
EVIL = f"ev{OSC_TITLE}il{CSI_CLEAR}{C1_CSI}\r{BIDI}\u2066x\u2069\x7f"
MARKUP = "[link=https://evil.example]click[/link][/]"
#: What may never be written: C0 (but tab and newline), DEL, C1 and bidi controls.
FORBIDDEN = {chr(c) for c in render.UNSAFE_CODEPOINTS}


def assert_clean(text: str) -> None:
    """No forbidden character, once Rich's own styling (SGR: ``ESC [ … m``) is taken out."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    bad = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN})
    assert not bad, f"{bad} in {text!r}"


def test_clean_drops_every_control_but_tab_and_newline() -> None:
    assert render.clean(EVIL) == "ev]0;pwnedil[2J31mtxt.exex"
    assert render.clean("a\tb\nc") == "a\tb\nc"
    assert render.clean("a\tb\nc", one_line=True) == "a b c"
    assert render.clean("ünïcode 名前 ok") == "ünïcode 名前 ok"
    assert render.clean(None) == "" and render.clean(42) == "42"
    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        assert (render.clean(chr(code)) == "") is (chr(code) in FORBIDDEN)


def test_clean_tree_cleans_keys_and_values() -> None:
    assert render.clean_tree({f"k{OSC_TITLE}": [f"v{BIDI}", 1, None, {"x": CSI_CLEAR}]}) == {
        "k]0;pwned": ["vtxt.exe", 1, None, {"x": "[2J"}]
    }


def event(seq: int, type_: str = f"custom{OSC_TITLE}", agent: str | None = "worker") -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "job_id": "j",
        "timestamp": "2024-01-01T00:00:00Z",
        "agent_id": agent,
        "payload": {"note": EVIL, "c1": "\x9d0;title\x9c"},
    }


def test_event_lines_are_clean_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_events([event(1), event(2, "fake\n     3 2024 job_completed", None)])
    out = capsys.readouterr().out
    assert_clean(out)
    assert len(out.splitlines()) == 2  # a newline in a type cannot forge another event line


RECORD = {
    "job_id": f"job{OSC_TITLE}",
    "status": "failed",
    "graph_id": f"g{BIDI}",
    "job_name": EVIL,
    "submitted_at": "2024",
    "updated_at": f"2024{CSI_CLEAR}",
    "result": {"agent_id": f"a{OSC_TITLE}", "error": EVIL, MARKUP: [C1_CSI]},
}
AGENT = {
    "agent_id": f"agent{OSC_TITLE}",
    "agent_type": MARKUP,
    "status": "failed",
    "processed_messages": 1,
    "mailbox_depth": 0,
    "last_error": EVIL,
}


@pytest.mark.parametrize("tty", [False, True])
def test_records_agents_jobs_and_control_results_are_clean(
    tty: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(render, "is_tty", lambda: tty)
    monkeypatch.setattr(render, "_console", lambda: Console(file=screen, force_terminal=True, width=200))
    render.print_job_summary(RECORD)
    render.print_jobs([{**RECORD, "live": True}])
    render.print_agents([AGENT])
    render.print_control("pause", {"job_id": EVIL, "status": MARKUP})
    letter = {"id": 1, "agent_id": EVIL, "reason": EVIL, "message": {"envelope": {"type": OSC_TITLE}}}
    render.print_control("dead_letters", [letter])
    render.print_control("cleanup", [EVIL])
    out = capsys.readouterr().out + screen.getvalue()
    assert_clean(out)
    assert "\x1b]" not in out  # no OSC: no title, no hyperlink from [link=...] markup
    if tty:
        assert "[link=https://evil.example]" in screen.getvalue()  # shown as text, not obeyed


def test_live_progress_shows_script_event_names_as_clean_text() -> None:
    from rich.console import Console

    from mirror_neuron.cli.progress import LiveProgress

    job = SimpleNamespace(
        job_id=f"job{OSC_TITLE}",
        status=MARKUP,
        seq=3,
        cells={},
        host=SimpleNamespace(services={"leases": None}),
        stall=SimpleNamespace(info={"reason": f"waiting{OSC_TITLE}"}),
        last_event=SimpleNamespace(type=f"custom{OSC_TITLE}{MARKUP}", agent_id=f"w{BIDI}"),
    )
    screen = io.StringIO()
    Console(file=screen, force_terminal=True, width=200).print(LiveProgress(job)._render())  # type: ignore[arg-type]
    shown = screen.getvalue()
    assert_clean(shown)
    assert "\x1b]" not in shown
    assert "custom]0;pwned[link=https://evil.example]" in re.sub(r"\x1b\[[0-9;]*m", "", shown)


def store_with_hostile_job(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store holding a job whose script wrote escape sequences into its events."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = SQLiteStore(tmp_path / "store.db")
    try:
        store.create_job({**RECORD, "job_id": "hostile-job", "status": "completed"})
        events = [
            make_event(1, "job_pending", "hostile-job", 0.0, None, None, None),
            make_event(2, f"script_event{OSC_TITLE}", "hostile-job", 0.0, "worker", {"text": EVIL}, None),
            make_event(3, "progress", "hostile-job", 0.0, f"w{BIDI}", None, {"title": "\x9d0;x\x9c"}),
        ]
        store.write_batch(WriteBatch(events={"hostile-job": events}))
    finally:
        store.close()
    return url, "hostile-job"


def mn(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MIRROR_NEURON_STORE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "--store", url, *args],
        capture_output=True,
        env=env,
        timeout=60,
    )


def test_mn_job_events_and_inspect_write_no_escape_sequences(tmp_path: Path) -> None:
    url, job_id = store_with_hostile_job(tmp_path)
    for args in (("job", "events", job_id), ("job", "inspect", job_id), ("job", "list")):
        out = mn(url, *args)
        assert out.returncode == 0, out.stderr
        text = out.stdout.decode()
        assert_clean(text)
    assert "script_event]0;pwned" in mn(url, "job", "events", job_id).stdout.decode()


def test_json_output_is_left_exactly_as_it_was(tmp_path: Path) -> None:
    url, job_id = store_with_hostile_job(tmp_path)
    store = SQLiteStore(tmp_path / "store.db")
    try:
        expected = _json.dumps_pretty(store.read_events(job_id)) + b"\n"
        record = store.get_job(job_id)
    finally:
        store.close()
    assert mn(url, "job", "events", job_id, "--json").stdout == expected
    events = json.loads(expected)
    shown = json.loads(mn(url, "job", "inspect", job_id, "--json").stdout)
    assert shown == {**record, "last_seq": events[-1]["seq"]}  # the record, and where its log ends
