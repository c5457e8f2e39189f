"""``/api/v1`` job routes. Each handler parses, calls one runtime method and returns.

Errors are not handled here: runtime exceptions travel to the single mapping in
:mod:`.errors`. Numbers coming from the caller are bounded so that no value can reach
the store that it cannot represent.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from typing import Annotated, Any, cast

from fastapi import APIRouter, File, Header, Path, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from ..runtime import Runtime
from ..store.base import JOB_STATUSES, JobList
from . import auth
from . import schemas as s
from .cluster import node_of, placed_submit, upload_manifest
from .errors import BadUpload
from .limits import decode_body, decode_message
from .records import job_summary, public_record
from .settings import ServerSettings
from .stream import ended_at, event_stream

MAX_SEQ = 2**53  # JSON-safe and far below SQLite's integer range
MAX_LIMIT = 100_000
MAX_AGENT_PAGE = 10_000
JOB_PAGE = 50
MAX_JOB_PAGE = 500
ALLOWED_STATUSES = ", ".join(sorted(JOB_STATUSES))

JobId = Annotated[str, Path(description="Job id as returned by POST /jobs.")]
AgentId = Annotated[str, Path(description="Agent (node) id within the job.")]
After = Annotated[int, Query(ge=0, le=MAX_SEQ, description="Only events with a larger seq.")]
EventLimit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description="Events per page (default: the server's page size, 10,000)."),
]
AgentLimit = Annotated[
    int | None,
    Query(ge=1, le=MAX_AGENT_PAGE, description="Agents per page (default: the server's page size, 1,000)."),
]
JobLimit = Annotated[
    int, Query(ge=1, le=MAX_JOB_PAGE, description=f"Jobs per page (at most {MAX_JOB_PAGE}).")
]
JobCursor = Annotated[
    str | None,
    Query(max_length=1024, description="Only the jobs after the page that gave this `next_cursor`."),
]
JobStatusFilter = Annotated[
    list[str] | None,
    Query(
        description=f"Only jobs with this status ({ALLOWED_STATUSES}); several as a comma list "
        "or by repeating the parameter."
    ),
]
AgentAfter = Annotated[
    str | None, Query(max_length=1024, description="Only agents whose id sorts after this one (`next`).")
]


#: ``POST /jobs`` reads its body itself (to decode it off the event loop); this documents it.
def _object_body(description: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its JSON object itself (off the event loop)."""
    schema = {"type": "object", "additionalProperties": True}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


MANIFEST_BODY = _object_body("manifest.json as an object.")
MESSAGE_BODY = _object_body("A message, flat or envelope form.")

router = APIRouter(prefix="/api/v1")


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _settings(request: Request) -> ServerSettings:
    return cast(ServerSettings, request.app.state.settings)


@router.get(
    "/health",
    response_model=s.Health,
    response_model_exclude_none=True,
    tags=["system"],
    responses={503: {"model": s.Health, "description": "Degraded: the store takes no writes."}},
)
async def health(request: Request, response: Response) -> dict[str, Any]:
    """``ok``; 503 ``degraded`` with the reason while the runtime cannot write to its store."""
    state = _runtime(request).health()
    if state["status"] != "ok":
        response.status_code = 503
    return state


@router.get("/system/summary", response_model=s.Summary, tags=["system"])
async def summary(request: Request) -> dict[str, Any]:
    """Jobs per status, and the executor pools' use (their capacity before any executor ran)."""
    rt = _runtime(request)
    counts = Counter(str(job.get("status")) for job in await rt.list_jobs())
    return {
        "jobs": counts,
        "hosted": len(rt.jobs),
        "node": rt.config.node_name,
        "executor_pools": rt.pool_stats(),
    }


@router.post(
    "/jobs",
    status_code=201,
    response_model=s.Submitted,
    tags=["jobs"],
    responses={**s.JOB_ERRORS, 413: {"model": s.ErrorBody, "description": "Manifest too large."}},
    openapi_extra=MANIFEST_BODY,
)
async def submit(request: Request) -> dict[str, Any] | JSONResponse:
    """Run a manifest without payload files (upload a zip for bundles with payloads).

    The body is decoded and its size and counts checked in a worker thread, before any
    of it is built: a huge manifest gets a 413 or 422 and never stalls the server.
    """
    rt = _runtime(request)
    body = await request.body()
    manifest = await asyncio.to_thread(decode_body, body, request.app.state.manifest_limits)
    answer, placed = await placed_submit(request, manifest, content=body)
    if answer is not None:  # another node of the cluster took it
        return answer
    job_id = await rt.submit(manifest, placed=placed)
    return {"job_id": job_id, "status": (await rt.inspect_job(job_id))["status"]}


@router.post(
    "/jobs/upload",
    status_code=201,
    response_model=s.Submitted,
    tags=["jobs"],
    responses={**s.JOB_ERRORS, 400: {"model": s.ErrorBody}, 413: {"model": s.ErrorBody}},
)
async def upload(
    request: Request, bundle: Annotated[UploadFile, File(description="The bundle folder as a zip archive.")]
) -> dict[str, Any] | JSONResponse:
    """Unpack a zipped bundle into a server-owned folder, validate it and run it (on the
    node of the cluster with the most free capacity for it)."""
    rt = _runtime(request)
    data = await asyncio.to_thread(bundle.file.read)
    raw = await asyncio.to_thread(upload_manifest, data, request.app.state.manifest_limits.max_bytes)
    if raw is None and not node_of(request).hosts_jobs:
        raise BadUpload("the upload has no readable manifest.json at its top level")
    files = {"bundle": (bundle.filename or "bundle.zip", data, "application/zip")}
    answer, placed = await placed_submit(request, raw, files=files)
    if answer is not None:
        return answer
    job_id = await request.app.state.uploads.run(rt, io.BytesIO(data), placed=placed)
    return {"job_id": job_id, "status": (await rt.inspect_job(job_id))["status"]}


@router.get(
    "/jobs",
    response_model=s.JobList,
    response_model_exclude_unset=True,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def list_jobs(
    request: Request,
    status: JobStatusFilter = None,
    limit: JobLimit = JOB_PAGE,
    cursor: JobCursor = None,
    include_terminal: bool = True,
) -> dict[str, Any]:
    """Job summaries (``GET /jobs/{job_id}`` has the whole record), most recently updated
    first, one page at a time: pass ``next_cursor`` as ``cursor`` (with the same filters)
    for the next page. Jobs submitted while paging do not shift the pages: following the
    cursors gives every job once."""
    jobs = await _runtime(request).list_jobs(
        limit=limit, include_terminal=include_terminal, status=_statuses(status), cursor=cursor
    )
    next_cursor = jobs.next_cursor if isinstance(jobs, JobList) else None
    return {"data": [job_summary(job) for job in jobs], "next_cursor": next_cursor}


def _statuses(values: list[str] | None) -> frozenset[str] | None:
    """The ``status`` parameters as a set of statuses; a 422 naming the allowed ones for any other."""
    if values is None:
        return None
    wanted = frozenset(part.strip() for value in values for part in value.split(","))
    unknown = sorted(wanted - JOB_STATUSES)
    if unknown:
        named = ", ".join(repr(value[:40]) for value in unknown[:5])
        message = f"unknown job status {named}; allowed: {ALLOWED_STATUSES}"
        raise RequestValidationError([{"loc": ("query", "status"), "msg": message, "type": "value_error"}])
    return wanted


@router.post("/jobs/cleanup", response_model=s.Cleanup, tags=["jobs"], responses=s.JOB_ERRORS)
async def cleanup(request: Request, all: bool = False) -> dict[str, Any]:
    """Delete ended jobs; live jobs (running, paused, suspended) are never deleted, only listed."""
    return await _runtime(request).control.cleanup(all=all)


@router.get(
    "/jobs/{job_id}",
    response_model=s.JobRecord,
    response_model_exclude_unset=True,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def inspect_job(request: Request, job_id: JobId) -> dict[str, Any]:
    return public_record(await _runtime(request).inspect_job(job_id))


@router.get(
    "/jobs/{job_id}/agents",
    response_model=s.AgentList,
    response_model_exclude_unset=True,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def inspect_agents(
    request: Request, job_id: JobId, limit: AgentLimit = None, after: AgentAfter = None
) -> dict[str, Any]:
    """Agents sorted by id, one page at a time: pass ``next`` as ``after`` for the next page."""
    size = limit or _settings(request).agents_page
    return _page(
        await _runtime(request).inspect_agents(job_id, after=after, limit=size + 1), size, "agent_id"
    )


@router.get(
    "/jobs/{job_id}/agents/{agent_id}",
    response_model=s.Agent,
    response_model_exclude_unset=True,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def inspect_agent(request: Request, job_id: JobId, agent_id: AgentId) -> dict[str, Any]:
    """One agent: status, mailbox depth, processed messages, in-flight message, state."""
    return await _runtime(request).inspect_agent(job_id, agent_id)


@router.get(
    "/jobs/{job_id}/events",
    response_model=s.EventList,
    response_model_exclude_unset=True,
    tags=["events"],
    responses=s.JOB_ERRORS,
)
async def events(
    request: Request, job_id: JobId, after: After = 0, limit: EventLimit = None
) -> dict[str, Any]:
    """Stored events, oldest first, one page at a time: pass ``next`` as ``after`` for the next page."""
    size = limit or _settings(request).events_page
    return _page(await _runtime(request).events(job_id, after=after, limit=size + 1), size, "seq")


def _page(items: list[dict[str, Any]], size: int, key: str) -> dict[str, Any]:
    """``size`` items (one more was read to know whether another page follows) and the cursor."""
    page = items[:size]
    return {"data": page, "next": page[-1][key] if len(items) > size else None}


@router.get(
    "/jobs/{job_id}/stream",
    response_class=StreamingResponse,
    tags=["events"],
    responses={
        **s.JOB_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "Event stream."},
        204: {"description": "The job has ended and no event follows: nothing more to stream."},
    },
)
async def stream(
    request: Request,
    job_id: JobId,
    after: After = 0,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_SEQ)] = None,
    agents: Annotated[
        bool, Query(description="Also send `agent_status` frames: the agents whose status changed.")
    ] = False,
    ticket: Annotated[
        str | None,
        Query(max_length=200, description="A ticket from `POST …/stream-ticket`, instead of the token."),
    ] = None,
) -> Response:
    """Server-sent events of the job, live, ending after its terminal event (an `end` frame).

    Job events are unnamed frames (a browser's `EventSource.onmessage` gets each), with the
    event's `seq` as their id. Resumes after `Last-Event-ID` (sent by reconnecting clients)
    or `after`; `204` once the job has ended and no event follows, so browsers stop
    reconnecting.
    """
    del ticket  # BearerAuth checked it before the route ran
    rt = _runtime(request)
    start = last_event_id if last_event_id is not None else after
    if await ended_at(rt, job_id, start):
        return Response(status_code=204)
    body = event_stream(rt, job_id, start, _settings(request).heartbeat, agents=agents)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get(
    "/jobs/{job_id}/graph",
    response_model=s.Graph,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def graph(request: Request, job_id: JobId) -> dict[str, Any]:
    """The job's agents (id, agent type, template, role, executor pool) and routing edges."""
    return await _runtime(request).graph(job_id)


@router.get(
    "/jobs/{job_id}/agents/{agent_id}/logs",
    response_model=s.LogList,
    tags=["jobs"],
    responses=s.JOB_ERRORS,
)
async def logs(
    request: Request,
    job_id: JobId,
    agent_id: AgentId,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Only runs with a larger invocation.")] = 0,
) -> dict[str, Any]:
    """An executor's kept runs (the newest 50), oldest first: stdout and stderr (the last
    64 KiB of each, secrets masked), exit code, error and timing."""
    return {"data": await _runtime(request).logs(job_id, agent_id, after=after)}


@router.post(
    "/jobs/{job_id}/stream-ticket", response_model=s.StreamTicket, tags=["events"], responses=s.JOB_ERRORS
)
async def stream_ticket(request: Request, job_id: JobId) -> dict[str, Any]:
    """A short-lived ticket that opens this job's event stream as `?ticket=`, for a browser's
    `EventSource` (which cannot send the `Authorization` header). It opens nothing else."""
    await _runtime(request).inspect_job(job_id)
    token = _settings(request).token
    if not token:
        return {"ticket": None, "expires_in": None}
    return {"ticket": auth.stream_ticket(token, job_id), "expires_in": auth.TICKET_TTL}


@router.get(
    "/jobs/{job_id}/wait",
    response_model=s.JobRecord,
    response_model_exclude_unset=True,
    tags=["jobs"],
    responses={**s.JOB_ERRORS, 408: {"model": s.ErrorBody, "description": "Still running; call again."}},
)
async def wait(
    request: Request, job_id: JobId, timeout: Annotated[float | None, Query(gt=0, le=3600)] = None
) -> dict[str, Any]:
    """The terminal record once the job has ended; 408 if ``timeout`` (or the server's cap) passes first."""
    cap = _settings(request).max_wait
    return public_record(await _runtime(request).wait(job_id, min(timeout or cap, cap)))


@router.post(
    "/jobs/{job_id}/pause",
    response_model=s.ControlResult,
    response_model_exclude_unset=True,
    tags=["control"],
    responses=s.CONTROL_ERRORS,
)
async def pause(request: Request, job_id: JobId) -> dict[str, Any]:
    """Pause a running job; returns once every agent is marked paused."""
    return await _runtime(request).control.pause(job_id)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=s.ControlResult,
    response_model_exclude_unset=True,
    tags=["control"],
    responses=s.CONTROL_ERRORS,
)
async def resume(request: Request, job_id: JobId) -> dict[str, Any]:
    return await _runtime(request).control.resume(job_id)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=s.ControlResult,
    response_model_exclude_unset=True,
    tags=["control"],
    responses=s.CONTROL_ERRORS,
)
async def cancel(request: Request, job_id: JobId) -> dict[str, Any]:
    return await _runtime(request).control.cancel(job_id)


@router.post(
    "/jobs/{job_id}/agents/{agent_id}/messages",
    status_code=202,
    response_model=s.Delivery,
    response_model_exclude_unset=True,
    tags=["control"],
    responses={
        **s.CONTROL_ERRORS,
        413: {"model": s.ErrorBody, "description": "Message too large."},
        429: {"model": s.ErrorBody, "description": "Mailbox full; retry later."},
    },
    openapi_extra=MESSAGE_BODY,
)
async def send_message(request: Request, job_id: JobId, agent_id: AgentId) -> dict[str, Any]:
    """Enqueue a message in one agent's mailbox (also while the job is paused).

    The body is checked by its length, then parsed and bounded in a worker thread: a huge or
    deeply nested body gets a 413 or 422 and never stalls the server.
    """
    what = f"message to agent {agent_id} of job {job_id}"
    message = await asyncio.to_thread(decode_message, await request.body(), what)
    return await _runtime(request).control.send_message(job_id, agent_id, message)


@router.get(
    "/jobs/{job_id}/dead-letters",
    response_model=s.DeadLetterList,
    response_model_exclude_unset=True,
    tags=["control"],
    responses=s.JOB_ERRORS,
)
async def dead_letters(request: Request, job_id: JobId) -> dict[str, Any]:
    return {"data": await _runtime(request).control.dead_letters(job_id)}


@router.post(
    "/jobs/{job_id}/dead-letters/{letter_id}/redrive",
    status_code=202,
    response_model=s.Delivery,
    response_model_exclude_unset=True,
    tags=["control"],
    responses=s.CONTROL_ERRORS,
)
async def redrive(
    request: Request,
    job_id: JobId,
    letter_id: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    agent_id: Annotated[str | None, Query(description="Deliver to this agent instead.")] = None,
) -> dict[str, Any]:
    """Deliver a dead letter again, to its original agent or to ``agent_id``."""
    return await _runtime(request).control.redrive(job_id, letter_id, agent_id)
