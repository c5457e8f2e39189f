"""Pure operations on write batches, for the writer's failure paths.

When the store refuses a batch the writer needs to take it apart (job by job, to find
the job whose data cannot be written), to cut a job's part down to what any store
accepts (its failed record and its events, with unencodable payloads replaced), and to
join batches held back while the store is down into one, in order. Nothing here runs
on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import _json
from ..events import Event
from ..events import make as make_event
from ..store.base import WriteBatch

#: Who a job fails "as" when its data cannot be stored (as for other runtime failures).
FAILED_BY = "job_runner"


def job_ids(batch: WriteBatch) -> list[str]:
    """Every job the batch touches, in first-seen order."""
    seen: dict[str, None] = {}
    for record in batch.jobs:
        seen[str(record.get("job_id"))] = None
    for part in (batch.events, batch.agents, batch.messages, batch.consumed, batch.blobs):
        seen.update(dict.fromkeys(part))
    return list(seen)


def split(batch: WriteBatch) -> dict[str, WriteBatch]:
    """One batch per job, each holding exactly that job's share of ``batch``."""
    parts = {job_id: WriteBatch() for job_id in job_ids(batch)}
    for record in batch.jobs:
        parts[str(record.get("job_id"))].jobs.append(record)
    for job_id, part in parts.items():
        if job_id in batch.events:
            part.events[job_id] = batch.events[job_id]
        if job_id in batch.agents:
            part.agents[job_id] = batch.agents[job_id]
        if job_id in batch.messages:
            part.messages[job_id] = batch.messages[job_id]
        if job_id in batch.consumed:
            part.consumed[job_id] = batch.consumed[job_id]
        if job_id in batch.blobs:
            part.blobs[job_id] = batch.blobs[job_id]
        if job_id in batch.epochs:
            part.epochs[job_id] = batch.epochs[job_id]
    return parts


def without(batch: WriteBatch, fenced: Iterable[str]) -> WriteBatch:
    """``batch`` without the parts of the ``fenced`` jobs (their lease is another node's now)."""
    drop = set(fenced)
    return merge(part for job_id, part in split(batch).items() if job_id not in drop)


def merge(batches: Iterable[WriteBatch]) -> WriteBatch:
    """One batch with the effect of writing ``batches`` one after the other (oldest first).

    Records and snapshots are upserts, so later ones simply follow earlier ones; events
    and mail append; "consumed up to" only grows, so the largest wins; newer blobs win.
    """
    out = WriteBatch()
    for batch in batches:
        out.jobs += batch.jobs
        for job_id, events in batch.events.items():
            out.events.setdefault(job_id, []).extend(events)
        for job_id, snapshots in batch.agents.items():
            out.agents.setdefault(job_id, []).extend(snapshots)
        for job_id, rows in batch.messages.items():
            out.messages.setdefault(job_id, []).extend(rows)
        for job_id, upto in batch.consumed.items():
            merged = out.consumed.setdefault(job_id, {})
            for agent_id, pos in upto.items():
                merged[agent_id] = max(pos, merged.get(agent_id, pos))
        for job_id, values in batch.blobs.items():
            out.blobs.setdefault(job_id, {}).update(values)
        out.epochs.update(batch.epochs)  # a job's epoch only grows (a claim fences the older one)
    return out


def encoding_error(value: Any) -> str | None:
    """Why ``value`` cannot be encoded as JSON by the stores, or None when it can."""
    try:
        _json.dumps(value)
    except TypeError as exc:
        return str(exc) or type(exc).__name__
    return None


def unencodable(part: WriteBatch) -> str | None:
    """Why some value of ``part`` cannot be encoded (so no store will ever take it), or None.

    Tells a job whose *data* is bad (fail it) from a store that refused a good batch for
    now (a lock, a full disk: hold it back and retry), so that healthy jobs never fail
    because the store had a bad moment.
    """
    for events in part.events.values():
        for event in events:
            why = encoding_error((event.payload, event.extra))
            if why is not None:
                return why
    for values in (
        part.jobs,
        list(part.agents.values()),
        list(part.messages.values()),
        list(part.blobs.values()),
    ):
        why = encoding_error(values)
        if why is not None:
            return why
    return None


def safe_events(events: list[Event]) -> list[Event]:
    """``events`` with every payload the store cannot encode replaced by a note saying so.

    The event itself stays, with its seq: a job's stored events must stay dense (readers
    and recovery count them), and what happened is still visible.
    """
    out = []
    for event in events:
        why = encoding_error((event.payload, event.extra))
        if why is not None:
            seq, type_, job_id, ts, agent_id = event[:5]
            event = make_event(seq, type_, job_id, ts, agent_id, None, {"not_stored": why})
        out.append(event)
    return out


def failed_record(record: dict[str, Any], reason: str) -> dict[str, Any]:
    """A job record saying the job failed for ``reason``; other fields kept as they were."""
    result = {"agent_id": FAILED_BY, "error": reason}
    return {**record, "status": "failed", "result": result}


def rescue(part: WriteBatch, job_id: str, reason: str) -> WriteBatch:
    """The least of a job's part worth storing: its failed record and its (safe) events.

    Snapshots, mail and blobs are left out (one of them is likely what the store refused;
    a failed job is never resumed from them), so any working store accepts the result.
    """
    out = WriteBatch(epochs=dict(part.epochs))
    if part.jobs:
        record = failed_record(part.jobs[-1], reason)
        if encoding_error(record) is None:
            out.jobs.append(record)
    if part.events.get(job_id):
        out.events[job_id] = safe_events(part.events[job_id])
    return out
