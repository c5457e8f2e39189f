"""A :class:`~mirror_neuron.monitor.Source` with fixed data: deterministic screens for snapshots,
and failures on demand (a list that cannot be read, a stream that breaks)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from mirror_neuron.errors import JobNotFound, MirrorNeuronError

#: "Now" for every screen fed by this source.
NOW = datetime.fromisoformat("2026-05-01T12:00:00+00:00").timestamp()
RUNNING = "fan_review-1777636500000-a1b2c3d4e5f6"
FAILED = "nightly_etl-1777629600000-0f9e8d7c6b5a"


def clock() -> float:
    return NOW


def _record(
    job_id: str, status: str, submitted: str, updated: str, agents: int, **extra: Any
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "graph_id": job_id.split("-")[0],
        "job_name": job_id.split("-")[0],
        "status": status,
        "submitted_at": f"2026-05-01T{submitted}Z",
        "updated_at": f"2026-05-01T{updated}Z",
        "agent_count": agents,
        "result": None,
        **extra,
    }


JOBS = [
    _record(RUNNING, "running", "11:55:00.000", "11:59:58.250", 6, last_seq=14),
    _record(
        FAILED,
        "failed",
        "10:00:00.000",
        "10:04:12.500",
        3,
        result={"agent_id": "load", "error": "command exited with status 3"},
        last_seq=9,
    ),
    _record("report_chain-1777625000000-5e6f7a8b9c0d", "completed", "08:43:20.000", "08:43:31.700", 4),
    _record("batch_alarm-1777634000000-1a2b3c4d5e6f", "paused", "11:13:20.000", "11:40:02.000", 5),
    _record(
        "stream_peaks-1777632000000-9a8b7c6d5e4f",
        "running",
        "10:40:00.000",
        "11:20:00.000",
        8,
        orphaned="its runtime's heartbeat stopped 40m ago",
    ),
    _record("prime_sweep-1777620000000-abcdefabcdef", "cancelled", "07:20:00.000", "07:31:05.000", 12),
]

GRAPH_NODES = [
    ("dispatcher", "router"),
    ("legal", "router"),
    ("finance", "router"),
    ("security", "router"),
    ("scorer", "executor"),
    ("collector", "aggregator"),
]


def _agent(
    agent_id: str, kind: str, status: str, processed: int, depth: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "agent_type": kind,
        "status": status,
        "mailbox_depth": depth,
        "processed_messages": processed,
        "inflight_message": None,
        "last_error": None,
        "restarts": 0,
        **extra,
    }


INFLIGHT = {
    "envelope": {"message_id": "security:3:0", "from": "security", "to": "scorer", "type": "review_done"},
    "body": {"document": "quarterly-report.pdf", "section": "access control", "score": None},
}
AGENTS = [
    _agent("dispatcher", "router", "idle", 1),
    _agent("legal", "router", "idle", 4),
    _agent("finance", "router", "idle", 3, last_error="rates API timed out (restarted)", restarts=1),
    _agent("security", "router", "running", 2, depth=2),
    _agent("scorer", "executor", "running", 6, depth=3, inflight_message=INFLIGHT),
    _agent("collector", "aggregator", "idle", 9),
]


def _event(seq: int, kind: str, second: str, agent: str | None = None, **extra: Any) -> dict[str, Any]:
    event = {"type": kind, "job_id": RUNNING, "timestamp": f"2026-05-01T11:{second}Z", "seq": seq}
    if agent:
        event["agent_id"] = agent
    event.update(extra)
    return event


def _received(seq: int, second: str, agent: str, kind: str, sender: str) -> dict[str, Any]:
    return _event(seq, "agent_message_received", second, agent, payload={"type": kind, "from": sender})


EVENTS = [
    _event(1, "job_pending", "55:00.001"),
    _event(2, "job_validated", "55:00.002"),
    _event(3, "job_scheduled", "55:00.003", node="ops-1:4242"),
    _event(4, "job_running", "55:00.004"),
    _received(5, "55:00.010", "dispatcher", "init", "runtime"),
    _received(6, "55:00.020", "legal", "review_request", "dispatcher"),
    _received(7, "55:00.021", "finance", "review_request", "dispatcher"),
    _event(8, "agent_restarted", "56:10.500", "finance", reason="rates API timed out"),
    _received(9, "57:30.000", "scorer", "review_done", "legal"),
    _event(10, "sandbox_job_completed", "57:31.200", "scorer", exit_code=0),
    _event(11, "aggregator_received", "57:31.300", "collector", payload={"count": 9}),
    _event(
        12,
        "dead_letter",
        "58:02.000",
        "archive",
        reason=f"agent archive is not part of job {RUNNING}",
        message={"envelope": {"from": "scorer", "to": "archive", "type": "scored"}, "body": {"score": 7}},
    ),
    _received(13, "59:58.000", "scorer", "review_done", "security"),
    _event(14, "sandbox_job_started", "59:58.250", "scorer"),
]

RUNS = [
    {
        "agent_id": "scorer",
        "invocation": 5,
        "ok": True,
        "error": None,
        "exit_code": 0,
        "duration_ms": 812.4,
        "finished_at": "2026-05-01T11:57:31.200Z",
        "stdout": "scoring section 'liabilities'\nscore: 8/10\n",
        "stderr": "",
    },
    {
        "agent_id": "scorer",
        "invocation": 6,
        "ok": False,
        "error": "command exited with status 2",
        "exit_code": 2,
        "duration_ms": 40.1,
        "finished_at": "2026-05-01T11:58:02.000Z",
        "stdout": "scoring section 'appendix'\n",
        "stderr": "warning: appendix has no text, retrying\n",
    },
]


class FakeSource:
    """Fixed jobs; ``updates`` plays ``script`` (a job's list of updates) and then waits, as a
    live job does. ``fail_list`` and ``fail_stream`` make the next reads fail."""

    where = "sqlite:///srv/mirror_neuron/mirror_neuron.db"

    def __init__(self) -> None:
        self.jobs = copy.deepcopy(JOBS)
        self.graphs: dict[str, dict[str, Any]] = {
            RUNNING: {
                "job_id": RUNNING,
                "nodes": [{"id": n, "agent_type": k, "kind": k} for n, k in GRAPH_NODES],
                "edges": [],
            },
            FAILED: {
                "job_id": FAILED,
                "nodes": [
                    {"id": "extract", "agent_type": "router", "kind": "router"},
                    {"id": "load", "agent_type": "executor", "kind": "executor"},
                    {"id": "report", "agent_type": "aggregator", "kind": "aggregator"},
                ],
                "edges": [],
            },
        }
        self.agent_views: dict[str, list[dict[str, Any]]] = {
            RUNNING: copy.deepcopy(AGENTS),
            FAILED: [
                _agent("extract", "router", "completed", 1),
                _agent("load", "executor", "failed", 1, last_error="command exited with status 3"),
                _agent("report", "aggregator", "cancelled", 0),
            ],
        }
        self.event_lists: dict[str, list[dict[str, Any]]] = {RUNNING: copy.deepcopy(EVENTS), FAILED: []}
        self.scripts: dict[str, list[Any]] = {}
        self.fail_list: Exception | None = None
        self.fail_stream = 0
        self.stream_calls = 0
        self.controls: list[tuple[str, str]] = []
        self.closed = False

    def _job(self, job_id: str) -> dict[str, Any]:
        for record in self.jobs:
            if record["job_id"] == job_id:
                return record
        raise JobNotFound(job_id)

    async def list_jobs(self, limit: int = 200) -> list[dict[str, Any]]:
        if self.fail_list is not None:
            raise self.fail_list
        return copy.deepcopy(self.jobs[:limit])

    async def resolve(self, job_id: str) -> str:
        found = [r["job_id"] for r in self.jobs if r["job_id"].startswith(job_id)]
        if len(found) != 1:
            raise JobNotFound(job_id)
        return str(found[0])

    async def job(self, job_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._job(job_id))

    async def graph(self, job_id: str) -> dict[str, Any]:
        self._job(job_id)
        return copy.deepcopy(self.graphs.get(job_id, {"nodes": [], "edges": []}))

    async def agents(self, job_id: str) -> list[dict[str, Any]]:
        self._job(job_id)
        return copy.deepcopy(self.agent_views.get(job_id, []))

    async def agent(self, job_id: str, agent_id: str) -> dict[str, Any]:
        for view in await self.agents(job_id):
            if view.get("agent_id") == agent_id:
                return view
        raise MirrorNeuronError(f"no agent {agent_id} in job {job_id}")

    async def events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        events = [e for e in self.event_lists.get(job_id, []) if e["seq"] > after]
        return copy.deepcopy(events[:limit])

    async def logs(self, job_id: str, agent_id: str, after: int = 0) -> list[dict[str, Any]]:
        runs = RUNS if (job_id, agent_id) == (RUNNING, "scorer") else []
        return copy.deepcopy([r for r in runs if r["invocation"] > after])

    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": e["seq"],
                "agent_id": e.get("agent_id"),
                "reason": e.get("reason"),
                "message": e["message"],
            }
            | {"timestamp": e["timestamp"]}
            for e in self.event_lists.get(job_id, [])
            if e["type"] == "dead_letter"
        ]

    async def updates(self, job_id: str, after: int = 0, *, agents: bool = True) -> AsyncIterator[Any]:
        self.stream_calls += 1
        if self.fail_stream:
            self.fail_stream -= 1
            raise MirrorNeuronError("connection reset by peer")
        for update in self.scripts.get(job_id, []):
            if update[0] == "event" and update[1].get("seq", 0) <= after:
                continue
            yield update
            if update[0] == "end":
                return
        await asyncio.Event().wait()  # a live job: more some day

    async def control(self, op: str, job_id: str) -> dict[str, Any]:
        self.controls.append((op, job_id))
        return {"job_id": job_id, "status": {"pause": "paused", "resume": "running"}.get(op, "cancelled")}

    async def send(self, job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": job_id, "agent_id": agent_id, "message_id": "m1", "status": "enqueued"}

    async def redrive(self, job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
        return {"job_id": job_id, "agent_id": agent_id or "archive", "message_id": "m2", "status": "enqueued"}

    async def close(self) -> None:
        self.closed = True
