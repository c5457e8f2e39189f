"""Findings 9 and 10: bad structured output fails the run instead of hanging; scripts cannot forge
the runtime's events; terminals never receive a script's escape sequences."""

from __future__ import annotations

import httpx

from .conftest import MnServer, events_of, executor, one_executor, upload, wait

#: A JSON escape for half a surrogate pair: valid-looking text that no JSON parser accepts.
LONE_SURROGATE = r"""print('{"complete_job": {"v": "\\ud800"}}')"""
TOO_LONG = """import json; print(json.dumps({"complete_job": {"pad": "x" * 5000}}))"""
FORGER = r"""
import json
print(json.dumps({
    "events": [
        {"type": "job_completed", "payload": {"result": "forged"}},
        {"type": "dead_letter", "payload": {"reason": "forged"}},
        {"type": "agent_crashed", "payload": {}},
        {"type": "title", "payload": {"text": "\u001b]0;pwned\u0007\u001b[2J\u202eevil"}},
    ],
    "complete_job": {"done": "\u001b[31mred"},
}))
"""


def test_invalid_json_output_fails_the_run_with_the_reason(
    default_server: MnServer, api: httpx.Client
) -> None:
    response = upload(api, one_executor(executor("w", LONE_SURROGATE)), {"w.py": LONE_SURROGATE})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    record = wait(api, job_id)
    assert record["status"] == "failed", record
    assert "not valid JSON" in record["result"]["error"]
    invalid = [e for e in events_of(api, job_id) if e["type"] == "executor_output_invalid"]
    assert len(invalid) == 1 and "not valid JSON" in invalid[0]["payload"]["reason"]
    default_server.assert_healthy()


def test_structured_output_cut_at_the_cap_fails_the_run(default_server: MnServer, api: httpx.Client) -> None:
    node = executor("w", TOO_LONG, max_output_bytes=1000)
    response = upload(api, one_executor(node), {"w.py": TOO_LONG})
    assert response.status_code == 201, response.text
    record = wait(api, response.json()["job_id"])
    assert record["status"] == "failed", record
    assert "max_output_bytes" in record["result"]["error"]
    default_server.assert_healthy()


def test_scripts_cannot_forge_runtime_events(default_server: MnServer, api: httpx.Client) -> None:
    response = upload(api, one_executor(executor("w", FORGER, complete_job=False)), {"w.py": FORGER})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    record = wait(api, job_id)
    assert record["status"] == "completed", record
    events = events_of(api, job_id)
    completed = [e for e in events if e["type"] == "job_completed"]
    assert len(completed) == 1 and completed[0].get("result") == {"done": "\u001b[31mred"}
    assert not [e for e in events if e["type"] in ("dead_letter", "agent_crashed")]
    rejected = sorted(e["payload"]["type"] for e in events if e["type"] == "executor_event_rejected")
    assert rejected == ["agent_crashed", "dead_letter", "job_completed"]
    assert api.get(f"/jobs/{job_id}/dead-letters").json()["data"] == []
    assert [e for e in events if e["type"] == "title"]  # a script's own events still arrive
    default_server.assert_healthy()


def test_the_cli_strips_escape_sequences_from_untrusted_text(
    default_server: MnServer, api: httpx.Client
) -> None:
    response = upload(api, one_executor(executor("w", FORGER, complete_job=False)), {"w.py": FORGER})
    job_id = response.json()["job_id"]
    assert wait(api, job_id)["status"] == "completed"
    for args in (("job", "events", job_id), ("job", "inspect", job_id), ("job", "agents", job_id)):
        shown = default_server.mn(*args)
        assert shown.returncode == 0, shown.stderr
        for control in ("\x1b", "\x07", "\u202e"):
            assert control not in shown.stdout and control not in shown.stderr, (args, shown.stdout)
    as_json = default_server.mn("job", "events", job_id, "--json")
    assert "\\u001b" in as_json.stdout or "\\u001B" in as_json.stdout  # JSON keeps the data, escaped
    default_server.assert_healthy()
