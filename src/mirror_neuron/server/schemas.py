"""Request and response models: they type the OpenAPI document at ``/docs``.

Records stored by the runtime carry more fields than any client needs to rely on, so
the models name the stable ones and allow the rest (``extra="allow"``) rather than
copying every field and drifting from the runtime.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, one sentence.")
    errors: list[str] | None = Field(None, description="Every problem found (bad input only).")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = "ok"
    reason: str | None = Field(None, description="Why the runtime is degraded: its store takes no writes.")
    since: str | None = Field(None, description="When it became degraded (ISO-8601, UTC).")


class Summary(BaseModel):
    jobs: dict[str, int] = Field(description="Number of stored jobs per status.")
    hosted: int = Field(description="Jobs running in this server process.")
    node: str
    executor_pools: dict[str, dict[str, int]]


class Node(Open):
    """A node of the cluster as its last heartbeat described it."""

    name: str
    alive: bool = Field(description="Heartbeat seen within the node TTL.")
    seen_ago: float = Field(description="Seconds since its last heartbeat.")
    drain: bool = Field(description="An operator asked it to drain.")
    role: str | None = None
    address: str | None = Field(default=None, description="Where its API is reached.")
    version: str | None = None
    jobs: int | None = Field(default=None, description="Jobs it hosts.")
    agents: int | None = Field(default=None, description="Agents of the jobs it hosts.")


class NodeList(BaseModel):
    data: list[Node]


class Drain(BaseModel):
    node: str
    drain: bool


class Submitted(BaseModel):
    job_id: str
    status: str


class JobRecord(Open):
    job_id: str
    status: str
    graph_id: str | None = None
    submitted_at: str | None = None
    updated_at: str | None = None
    result: Any = None


class Event(Open):
    seq: int = Field(description="1-based position in the job's event log; resume after it.")
    type: str
    job_id: str | None = None
    timestamp: str | None = None
    agent_id: str | None = None


class Agent(Open):
    agent_id: str
    agent_type: str | None = None
    status: str | None = None
    mailbox_depth: int | None = None
    processed_messages: int | None = None


class ControlResult(Open):
    job_id: str
    status: str


class Delivery(Open):
    job_id: str
    agent_id: str
    message_id: str | None = None
    status: str = Field(description="'delivered', or 'enqueued' behind other mail or a pause.")
    mailbox_depth: int | None = None


class DeadLetter(Open):
    id: int = Field(description="The dead_letter event's seq; pass it to redrive.")
    agent_id: str | None = None
    reason: Any = None
    message: Any = None
    timestamp: str | None = None


class SkippedJob(BaseModel):
    job_id: str
    status: str | None = None


class Cleanup(BaseModel):
    deleted_count: int
    deleted_jobs: list[str]
    #: Live jobs (running, paused, suspended), which cleanup never deletes.
    skipped_jobs: list[SkippedJob] = []


class JobSummary(BaseModel):
    """A job as lists show it: no result, manifest reference or other large fields
    (``GET /jobs/{job_id}`` has the whole record)."""

    job_id: str
    status: str | None = None
    graph_id: str | None = None
    job_name: str | None = None
    submitted_at: str | None = None
    updated_at: str | None = None
    heartbeat_at: str | None = Field(None, description="Last sign of life of the runtime hosting it.")
    node: str | None = Field(None, description="The node whose runtime hosts (or last hosted) it.")
    agent_count: int | None = None
    daemon: bool | None = None
    orphaned: str | None = Field(None, description="Why a live job's runtime is gone (absent while it runs).")


class JobList(BaseModel):
    data: list[JobSummary]
    next_cursor: str | None = Field(
        None, description="More jobs follow: pass this as `cursor` for the next page (null: no more)."
    )


class EventList(BaseModel):
    data: list[Event]
    next: int | None = Field(
        None, description="More events follow: pass this seq as `after` for the next page (null: no more)."
    )


class AgentList(BaseModel):
    data: list[Agent]
    next: str | None = Field(
        None, description="More agents follow: pass this id as `after` for the next page (null: no more)."
    )


class DeadLetterList(BaseModel):
    data: list[DeadLetter]


class GraphNode(BaseModel):
    id: str
    agent_type: str
    kind: str = Field(description="router, executor, aggregator, sensor or module.")
    type: str = Field(description="The template: generic, map, reduce, stream or batch.")
    role: str | None = None
    pool: str | None = Field(None, description="The executor pool (executors only).")


class GraphEdge(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    message_type: str
    edge_id: str | None = None


class Graph(BaseModel):
    job_id: str
    graph_id: str
    job_name: str
    entrypoints: list[str]
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class LogRun(BaseModel):
    """One executor run of an agent: its output (capped to the last 64 KiB each, secrets masked)."""

    model_config = ConfigDict(extra="allow")

    agent_id: str
    invocation: int = Field(description="1-based number of the message the run handled.")
    ok: bool
    error: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    finished_at: str | None = None


class StreamTicket(BaseModel):
    ticket: str | None = Field(
        description="Pass as `?ticket=` to open this job's stream (`null`: this server needs no token)."
    )
    expires_in: int | None = Field(description="Seconds the ticket opens the stream for (each connect).")


class LogList(BaseModel):
    data: list[LogRun]


#: Error responses every job route may give, for the OpenAPI document.
JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such job (or agent, or dead letter)."},
    422: {"model": ErrorBody, "description": "Invalid input."},
}
CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {
    **JOB_ERRORS,
    409: {"model": ErrorBody, "description": "The job is not in a state that allows this."},
}
