"""Finding 4: one deeply nested value cannot stop storage; what was acknowledged survives a restart."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from builders import aggregator, manifest, router

from .conftest import MnServer, events_of, executor, one_executor, submit, upload, wait

DEEP_EMIT = """
import json
body = {}
for _ in range(300):
    body = {"a": body}
print(json.dumps({"emit_messages": [{"type": "deep", "body": body}]}))
"""


def deep(levels: int) -> dict:
    body: dict = {}
    for _ in range(levels):
        body = {"a": body}
    return body


@pytest.mark.slow
def test_a_deep_message_is_refused_and_a_cancel_survives_a_restart() -> None:
    server = MnServer(Path(tempfile.mkdtemp(prefix="mn-sec-restart-"))).start()
    try:
        with server.client() as api:
            waiting = manifest(
                [router("entry"), aggregator("sink", complete_after=1000)],
                [("entry", "sink", "init")],
                graph_id="long_wait",
            )
            job_id = submit(api, waiting)
            refused = api.post(
                f"/jobs/{job_id}/agents/sink/messages", json={"type": "x", "payload": deep(300)}
            )
            assert refused.status_code == 422, refused.text
            assert "nested more than 64 levels" in refused.json()["error"]
            accepted = api.post(
                f"/jobs/{job_id}/agents/sink/messages", json={"type": "x", "payload": deep(10)}
            )
            assert accepted.status_code == 202, accepted.text
            assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
            assert wait(api, job_id)["status"] == "cancelled"
        server.assert_healthy()
        server.stop()
        server.start()  # the same store: nothing acknowledged is lost, nothing cancelled comes back
        with server.client() as api:
            record = api.get(f"/jobs/{job_id}").json()
            assert record["status"] == "cancelled", record
            types = [e["type"] for e in events_of(api, job_id)]
            assert "job_cancelled" in types and types.count("agent_message_received") >= 2
        server.assert_healthy()
    finally:
        server.stop()


def test_a_script_emitting_a_deep_value_fails_only_its_own_job(
    default_server: MnServer, api: httpx.Client
) -> None:
    node = executor("w", DEEP_EMIT, complete_job=False)
    response = upload(api, one_executor(node), {"w.py": DEEP_EMIT})
    assert response.status_code == 201, response.text
    record = wait(api, response.json()["job_id"])
    assert record["status"] == "failed", record
    assert "nested more than 64 levels" in record["result"]["error"]
    default_server.assert_healthy()


def test_a_huge_message_is_refused_by_its_length(default_server: MnServer, api: httpx.Client) -> None:
    waiting = manifest(
        [router("entry"), aggregator("sink", complete_after=1000)],
        [("entry", "sink", "init")],
        graph_id="big",
    )
    job_id = submit(api, waiting)
    body = b'{"type": "x", "payload": "' + b"y" * (9 * 1024 * 1024) + b'"}'
    response = api.post(f"/jobs/{job_id}/agents/sink/messages", content=body)
    assert response.status_code == 413, response.text
    assert "more than the limit of 8388608 bytes" in response.json()["error"]
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
    default_server.assert_healthy()
