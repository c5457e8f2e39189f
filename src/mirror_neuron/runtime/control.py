"""Operator control of a job hosted here: pause, resume, cancel, send_message, dead letters.

Each function acts on a :class:`~mirror_neuron.runtime.job.JobRun` at a message boundary
(the event loop is single-threaded, so no handler is ever interrupted halfway) and
returns a small JSON-safe dict saying what happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..bounds import MAX_MESSAGE_BYTES, check_bounds
from ..errors import AgentNotFound, JobStateError, MailboxFull, MessageError, NotFound
from ..messages import normalize
from ..names import quoted, text_problem

if TYPE_CHECKING:
    from .job import JobRun

CANCEL_REASON = "cancelled by operator"


def pause(job: JobRun) -> dict[str, Any]:
    """Stop every live agent after its current message; new mail accumulates in order."""
    agents = job.pause()
    return {"job_id": job.job_id, "status": "paused", "agents": agents}


def resume(job: JobRun) -> dict[str, Any]:
    """Let paused agents go on; each processes what accumulated, oldest first."""
    agents, backlog = job.resume()
    return {"job_id": job.job_id, "status": "running", "agents": agents, "backlog": backlog}


def cancel(job: JobRun) -> dict[str, Any]:
    """End the job as ``cancelled``: queued mail is dropped and running scripts are killed."""
    if job.terminal:
        raise JobStateError(
            job.job_id, f"job {job.job_id} is already in a terminal state ({job.status.value})"
        )
    dropped = sum(len(c.mailbox) for c in job.cells.values())
    job.cancel(CANCEL_REASON)
    return {"job_id": job.job_id, "status": "cancelled", "dropped_messages": dropped}


def check_message(job_id: str, agent_id: str, message: Any) -> None:
    """Refuse an external message the store could not hold (too deep, too big, not JSON).

    Checked where it enters, so the sender hears why; inside the job it would fail the
    job's writes later instead.
    """
    what = f"message to agent {agent_id} of job {job_id}"
    check_bounds(message, what=what, max_bytes=MAX_MESSAGE_BYTES)
    kind = _message_type(message)
    problem = text_problem(kind) if isinstance(kind, str) else None
    if problem is not None:
        raise MessageError(f"{what}: its type {quoted(kind)} is not a valid message type: {problem}")


def _message_type(message: Any) -> Any:
    """The type a message names, flat (``type``) or envelope form (``envelope.type``)."""
    if not isinstance(message, dict):
        return None
    envelope = message.get("envelope")
    return message.get("type") or (envelope.get("type") if isinstance(envelope, dict) else None)


def send_message(job: JobRun, agent_id: str, message: Any) -> dict[str, Any]:
    """Enqueue ``message`` (flat or envelope form) in one agent's mailbox, bypassing edges."""
    check_message(job.job_id, agent_id, message)
    if job.halted:
        raise JobStateError(job.job_id, f"job {job.job_id} is not running (status: {job.status.value})")
    cell = job.cells.get(agent_id)
    if cell is None:
        raise AgentNotFound(job.job_id, agent_id)
    if cell.terminal:
        raise JobStateError(
            job.job_id, f"agent {agent_id} of job {job.job_id} has stopped ({cell.status.value})"
        )
    try:
        msg = normalize(message, job_id=job.job_id, to=agent_id, sender="operator", cls="command")
    except MessageError as exc:
        raise MessageError(f"cannot send to agent {agent_id}: {exc}") from exc
    depth = len(cell.mailbox)
    if depth >= cell.bound:
        job.event(
            "queue_overflow",
            agent_id,
            {
                "mailbox_depth": depth,
                "max_queue_size": cell.bound,
                "message_id": msg.message_id,
                "message_type": msg.type,
            },
        )
        raise MailboxFull(job.job_id, agent_id, depth, cell.bound)
    job.deliver(cell, msg)
    job.host.writer.mark(job)
    outcome = "enqueued" if cell.paused or depth or cell.task is not None else "delivered"
    return {
        "job_id": job.job_id,
        "agent_id": agent_id,
        "message_id": msg.message_id,
        "status": outcome,
        "mailbox_depth": len(cell.mailbox),
    }


def dead_letters(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dead letters of a job, from its events; ``id`` is the event's sequence number."""
    return [
        {
            "id": e["seq"],
            "agent_id": e.get("agent_id"),
            "reason": e.get("reason"),
            "message": e.get("message"),
            "timestamp": e.get("timestamp"),
        }
        for e in events
        if e["type"] == "dead_letter"
    ]


def redrive_request(
    job_id: str, letter: dict[str, Any], agent_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The ``(target agent, message)`` that re-drives a dead letter (a new delivery, marked as such)."""
    message = letter.get("message") or {}
    envelope = dict(message.get("envelope", {}))
    target = agent_id or letter.get("agent_id") or envelope.get("to")
    if not target:
        raise NotFound(f"dead letter {letter.get('id')} of job {job_id} names no target agent")
    envelope.pop("message_id", None)
    envelope["to"] = target
    headers = {**message.get("headers", {}), "mn.redriven_from": str(letter.get("id"))}
    return target, {**message, "envelope": envelope, "headers": headers}
