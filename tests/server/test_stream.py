"""GET /jobs/{id}/stream: server-sent events, live, resumable with Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from .conftest import collect, wait_for


def frames(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse an SSE body: one dict per frame (comments come as ``{"comment": text}``)."""
    frame: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line == "":
            if frame:
                yield frame
            frame = {}
        else:
            field, _, value = line.partition(": ")
            frame[field] = value


def events_until(stream: Iterator[dict[str, Any]], stop: Any) -> list[dict[str, Any]]:
    """Events (frames with an id) up to and including the first for which ``stop`` holds."""
    got = []
    for frame in stream:
        if "id" in frame:
            event = json.loads(frame["data"])
            # Unnamed, so a browser's EventSource.onmessage gets it; the type is in the data.
            assert "event" not in frame and int(frame["id"]) == event["seq"]
            got.append(event)
            if stop(event, got):
                return got
    return got


def test_a_reconnecting_client_misses_and_repeats_nothing(api: httpx.Client) -> None:
    job_id = submit_running(api)
    with api.stream("GET", f"/jobs/{job_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = events_until(frames(response), lambda e, got: len(got) == 4)
    # Disconnected: more happens meanwhile.
    for n in (1, 2):
        api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": n}).raise_for_status()
    wait_for(api, job_id, lambda a: a["sink"]["processed_messages"] == 3)
    last_id = str(first[-1]["seq"])
    with api.stream("GET", f"/jobs/{job_id}/stream", headers={"Last-Event-ID": last_id}) as response:
        stream = frames(response)
        # The sink has 3 of the 4 messages it needs and nothing else is queued: the job stalls.
        second = events_until(
            stream, lambda e, got: e["type"] == "job_stalled" and "3 of complete_after=4" in e["reason"]
        )
        assert next(stream) == {"comment": "keep-alive"}  # idle: a heartbeat keeps the connection open
        api.post(
            f"/jobs/{job_id}/agents/sink/messages", json={"n": 3}
        ).raise_for_status()  # live, while connected
        second += events_until(stream, lambda e, got: e["type"] == "job_completed")
        end = next(stream)  # then it says so, and ends
        assert end["event"] == "end" and json.loads(end["data"]) == {"status": "completed"}
        assert list(stream) == []
    stored = api.get(f"/jobs/{job_id}/events").json()["data"]
    assert first + second == stored
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))


def test_an_ended_job_streams_its_stored_events_after_the_given_seq(api: httpx.Client) -> None:
    job_id = submit_running(api, n=1)
    api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).raise_for_status()
    stored = api.get(f"/jobs/{job_id}/events").json()["data"]
    with api.stream("GET", f"/jobs/{job_id}/stream") as response:
        assert events_until(frames(response), lambda e, got: False) == stored
    with api.stream("GET", f"/jobs/{job_id}/stream", params={"after": 3}) as response:
        assert events_until(frames(response), lambda e, got: False) == stored[3:]


def test_stream_errors_come_before_the_stream(api: httpx.Client) -> None:
    assert api.get("/jobs/ghost/stream").status_code == 404
    job_id = submit_running(api, n=1)
    response = api.get(f"/jobs/{job_id}/stream", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 422 and "Last-Event-ID" in response.json()["error"]


def submit_running(api: httpx.Client, n: int = 4) -> str:
    response = api.post("/jobs", json=collect(n))
    response.raise_for_status()
    return response.json()["job_id"]


def test_a_reconnect_past_the_end_gets_204_so_browsers_stop(api: httpx.Client) -> None:
    job_id = submit_running(api, n=1)
    api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).raise_for_status()
    last = api.get(f"/jobs/{job_id}/events").json()["data"][-1]["seq"]
    gone = api.get(f"/jobs/{job_id}/stream", headers={"Last-Event-ID": str(last)})
    assert gone.status_code == 204 and gone.content == b""
    assert api.get(f"/jobs/{job_id}/stream", params={"after": last + 5}).status_code == 204
    with api.stream("GET", f"/jobs/{job_id}/stream", headers={"Last-Event-ID": str(last - 1)}) as response:
        assert response.status_code == 200  # one event is still to come
        got = list(frames(response))
    assert [json.loads(f["data"])["seq"] for f in got if "id" in f] == [last]
    assert got[-1]["event"] == "end"


def test_agent_status_frames_are_coalesced_per_agent(api: httpx.Client) -> None:
    job_id = submit_running(api, n=101)
    with api.stream("GET", f"/jobs/{job_id}/stream", params={"agents": "true"}) as response:
        stream = frames(response)
        statuses = []
        for frame in stream:
            if frame.get("event") == "agent_status":
                statuses.append(json.loads(frame["data"])["agents"])
                break
        # The first frame has every agent, as it is now.
        assert {a["agent_id"] for a in statuses[0]} == {"entry", "sink"}
        for n in range(100):  # a burst: 100 messages, far faster than one frame per message
            api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": n}).raise_for_status()
        for frame in stream:
            if frame.get("event") == "agent_status":
                statuses.append(json.loads(frame["data"])["agents"])
            elif frame.get("event") == "end":
                break
    for batch in statuses:  # never two entries for one agent in a frame
        assert len({a["agent_id"] for a in batch}) == len(batch)
    sink = [a for batch in statuses for a in batch if a["agent_id"] == "sink"]
    assert sink[-1]["status"] == "completed" and sink[-1]["processed"] == 101
    assert len(sink) < 50  # coalesced: far fewer statuses than the 100 messages it handled
    assert set(sink[-1]) == {"agent_id", "status", "mailbox_depth", "processed", "last_error"}
