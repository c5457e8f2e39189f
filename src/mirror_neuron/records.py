"""The shapes the public API returns: job records, agent views, events and operator results.

They are plain JSON objects (what the store keeps and the REST API sends), typed here so a
type checker knows their fields. ``total=False``: a record written by an older runtime may
lack a newer field, and readers must not assume more than the original's fields.
"""

from __future__ import annotations

from typing import Any, TypedDict


class ManifestRef(TypedDict, total=False):
    graph_id: str
    manifest_version: str
    manifest_path: str | None
    job_path: str | None


class StallReport(TypedDict):
    #: ISO-8601 time the job stalled.
    since: str
    reason: str
    #: Agents that could still end the job, each with what it waits for.
    waiting: list[dict[str, str]]


class JobRecord(TypedDict, total=False):
    """A job (original fields, §4.4) plus where it runs and whether it can progress."""

    job_id: str
    graph_id: str
    job_name: str | None
    #: pending, running, paused, suspended, completed, failed or cancelled.
    status: str
    submitted_at: str
    updated_at: str
    root_agent_ids: list[str]
    placement_policy: str
    recovery_policy: str
    daemon: bool
    #: ``{"agent_id", "output"}`` when completed, ``{"agent_id", "error"}`` when failed,
    #: ``{"reason"}`` when cancelled.
    result: Any
    manifest_ref: ManifestRef
    #: The runtime hosting the job (``host:pid``) and its heartbeat.
    node: str
    heartbeat_at: str
    agent_count: int
    #: Set while the job cannot progress on its own.
    stalled: StallReport | None
    #: Where a suspended job resumes (``running`` or ``paused``).
    suspended_from: str
    #: Set by readers when no runtime hosts this live job any more (and how to resume it).
    orphaned: str


class AgentView(TypedDict, total=False):
    """One agent of a job (the original's snapshot fields, §7)."""

    agent_id: str
    node_id: str
    agent_type: str
    type: str
    role: str | None
    status: str
    current_state: dict[str, Any]
    mailbox_depth: int
    processed_messages: int
    assigned_node: str
    inflight_message: dict[str, Any] | None
    pending_messages: list[dict[str, Any]]
    last_error: str | None
    restarts: int
    last_heartbeat_at: str
    parent_job_id: str
    metadata: dict[str, Any]


class EventRecord(TypedDict, total=False):
    """One job event: ``seq`` and ``type`` always, then what the event carries."""

    seq: int
    type: str
    job_id: str
    timestamp: str
    agent_id: str
    payload: Any


class ControlResult(TypedDict, total=False):
    """What pause, resume, cancel and send_message did."""

    job_id: str
    status: str
    agents: int
    backlog: int
    dropped_messages: int
    forced: bool
    agent_id: str
    message_id: str
    mailbox_depth: int


class DeadLetter(TypedDict):
    id: int
    agent_id: str | None
    reason: str | None
    message: dict[str, Any] | None
    timestamp: str | None


class CleanupResult(TypedDict):
    deleted_count: int
    deleted_jobs: list[str]
    #: Live jobs, never deleted: ``{"job_id", "status"}``.
    skipped_jobs: list[dict[str, Any]]
