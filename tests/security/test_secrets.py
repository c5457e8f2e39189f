"""Finding 3: a submitted bundle never gets the server's secrets, and what it may read stays redacted."""

from __future__ import annotations

import json

import httpx

from .conftest import ALLOWED_SECRET, SERVER_SECRET, MnServer, events_of, executor, one_executor, upload

#: Prints the variable as ``\\uXXXX`` escapes in every structured-output field (and as a
#: ``body_base64`` the runtime decodes), so that the raw text never contains it but every
#: JSON reader decodes it.
LEAK = r"""
import json, os
secret = os.environ.get("SAFE_API_TOKEN", "") + "|" + os.environ.get("SERVER_DB_PASSWORD", "")
hidden = "".join("\\u%04x" % ord(c) for c in secret)
nested = json.dumps({"inner": "@@"}).replace("@@", hidden)  # JSON inside a JSON string
doc = (
    '{"next_state": {"s": "@@"}, "events": [{"type": "leak", "payload": {"v": "@@", "n": %s}}],'
    ' "emit_messages": [{"type": "leak", "to": "sink", "body": {"v": "@@"}, "headers": {"h": "@@"}},'
    ' {"type": "leak", "to": "sink", "body_base64": "%s", "content_type": "text/plain"}],'
    ' "complete_job": {"v": "@@"}}'
) % (json.dumps(nested), __import__("base64").b64encode(secret.encode()).decode())
print(doc.replace("@@", hidden))
"""


def test_pass_env_of_a_server_secret_is_refused(default_server: MnServer, api: httpx.Client) -> None:
    node = executor("w", LEAK, pass_env=["SERVER_DB_PASSWORD"])
    response = upload(api, one_executor(node), {"w.py": LEAK})
    assert response.status_code == 422, response.text
    assert "pass_env names SERVER_DB_PASSWORD" in response.json()["error"]
    default_server.assert_healthy()


def test_the_environment_of_the_server_never_reaches_a_script(
    default_server: MnServer, api: httpx.Client
) -> None:
    script = "import os, json; print(json.dumps(sorted(os.environ)))"
    response = upload(api, one_executor(executor("w", script, complete_job=True)), {"w.py": script})
    record = api.get(f"/jobs/{response.json()['job_id']}/wait", params={"timeout": 60}).json()
    assert record["status"] == "completed", record
    names = json.loads(record["result"]["output"]["sandbox"]["stdout"])
    assert "SERVER_DB_PASSWORD" not in names and "SAFE_API_TOKEN" not in names
    default_server.assert_healthy()


def test_an_allowed_secret_is_redacted_even_when_escaped(
    open_server: MnServer, open_api: httpx.Client
) -> None:
    node = executor("w", LEAK, pass_env=["SAFE_API_TOKEN"], complete_job=False)
    sink = {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_on_message": False}}
    body = one_executor(node)
    body["nodes"].append(sink)
    response = upload(open_api, body, {"w.py": LEAK})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    record = open_api.get(f"/jobs/{job_id}/wait", params={"timeout": 60}).json()
    assert record["status"] == "completed", record
    everything = [
        record,
        open_api.get(f"/jobs/{job_id}").json(),
        events_of(open_api, job_id),
        open_api.get(f"/jobs/{job_id}/agents").json(),
        open_api.get(f"/jobs/{job_id}/dead-letters").json(),
        open_api.get(f"/jobs/{job_id}/agents/w/logs").json(),  # the run's stdout, kept for monitors
    ]
    assert everything[-1]["data"][0]["stdout"], "the run's log is kept (and masked)"
    for doc in everything:
        text = _decoded(doc)
        assert ALLOWED_SECRET not in text, text
        assert SERVER_SECRET not in text, text
    assert "[REDACTED]" in json.dumps(record)
    stored = open_server.mn("job", "events", job_id, "--json")
    assert stored.returncode == 0 and ALLOWED_SECRET not in _decoded(json.loads(stored.stdout))
    logs = open_server.mn("job", "logs", job_id, "--json")
    assert logs.returncode == 0 and logs.stdout and ALLOWED_SECRET not in logs.stdout
    open_server.assert_healthy()


def _decoded(doc: object, depth: int = 0) -> str:
    """Every string in ``doc``, decoded again wherever it is itself JSON (what a curious reader does)."""
    out: list[str] = []

    def walk(value: object, level: int) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, level)
                walk(v, level)
        elif isinstance(value, list):
            for v in value:
                walk(v, level)
        elif isinstance(value, str):
            out.append(value)
            if level < 4 and value.strip()[:1] in ("{", "[", '"'):
                try:
                    walk(json.loads(value), level + 1)
                except ValueError:
                    pass

    walk(doc, depth)
    return "\n".join(out)
