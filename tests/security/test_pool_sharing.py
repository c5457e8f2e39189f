"""Finding 8: one job cannot hold a pool's slots while its backlog makes another tenant wait."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from builders import manifest

from .conftest import MnServer, events_of


def gated(node_id: str, gate_dir: Path, slots: int) -> dict[str, Any]:
    """A host_local executor that runs until the test opens its gate (a FIFO)."""
    return {
        "node_id": node_id,
        "agent_type": "executor",
        "config": {"runner": "host_local", "pool_slots": slots, "command": f"cat {gate_dir / node_id}"},
    }


def open_gate(gate_dir: Path, node_id: str) -> threading.Thread:
    """Let ``node_id``'s run end as soon as it has started (the writer waits for its reader)."""
    thread = threading.Thread(target=lambda: open(gate_dir / node_id, "w").close(), daemon=True)
    thread.start()
    return thread


def lease_state(api: httpx.Client, job_id: str) -> dict[str, str]:
    """``{agent: "requested" | "acquired" | "released"}`` from the job's events."""
    state: dict[str, str] = {}
    for event in events_of(api, job_id):
        kind = event["type"].removeprefix("executor_lease_")
        if kind in ("requested", "acquired", "released"):
            state[event["agent_id"]] = kind
    return state


def until(predicate: Any, api: httpx.Client, job_id: str) -> dict[str, str]:
    """Follow the job's event stream until ``predicate(lease_state)`` holds (60 s at most)."""
    deadline = time.monotonic() + 60
    with api.stream("GET", f"/jobs/{job_id}/stream", timeout=60) as stream:
        for line in stream.iter_lines():
            if time.monotonic() > deadline:
                break
            if line.startswith("data:"):
                state = lease_state(api, job_id)
                if predicate(state):
                    return state
    raise AssertionError(f"never reached: {lease_state(api, job_id)}")


def test_a_backlog_of_one_job_does_not_starve_another(open_server: MnServer, open_api: httpx.Client) -> None:
    gate_dir = Path(tempfile.mkdtemp(prefix="mn-gates-"))
    for name in ("a1", "a2", "a3", "b"):
        os.mkfifo(gate_dir / name)
    hog = manifest(
        [{"node_id": "start", "agent_type": "router", "config": {}}]
        + [gated(n, gate_dir, 4) for n in ("a1", "a2", "a3")],
        [("start", n, "init") for n in ("a1", "a2", "a3")],
        graph_id="pool_hog",
    )
    a = open_api.post("/jobs", json=hog).json()["job_id"]
    held = until(lambda s: list(s.values()).count("acquired") == 1 and len(s) == 3, open_api, a)
    first = next(agent for agent, kind in held.items() if kind == "acquired")

    tenant = manifest([gated("b", gate_dir, 1)], [], graph_id="tenant")
    b = open_api.post("/jobs", json=tenant).json()["job_id"]
    until(lambda s: s.get("b") == "requested", open_api, b)

    open_gate(gate_dir, first)  # the hog's run ends: the tenant goes next, not the hog's backlog
    until(lambda s: s.get("b") == "acquired", open_api, b)
    assert list(lease_state(open_api, a).values()).count("acquired") == 0

    for name in ("b", *(n for n in ("a1", "a2", "a3") if n != first)):
        open_gate(gate_dir, name)
    for job in (a, b):
        open_api.post(f"/jobs/{job}/cancel")
    open_server.assert_healthy()
