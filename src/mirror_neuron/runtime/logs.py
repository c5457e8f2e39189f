"""Executor logs: each run's stdout and stderr, kept per agent and invocation.

A run's texts arrive already redacted (secrets masked by the execution layer). Each
stream is capped at :data:`LOG_CAP` characters, keeping its end (where a failing
script says why). The newest :data:`KEEP` runs of an agent are kept, in ring slots
(blob ``log:<agent>:<slot>``), with an index (``logs:<agent>``) naming the last
invocation: a run costs one small write, never a rewrite of the agent's history. The
blobs go out with the job's next group commit, like its events.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..store.base import Store
from .blocking import call_store

#: Characters kept of each of a run's stdout and stderr (the end of it).
LOG_CAP = 64 * 1024
#: Runs kept per agent (older ones are overwritten).
KEEP = 50


class LogOwner(Protocol):
    """The job whose blobs its next batch writes (:class:`~.job.JobRun` is one)."""

    blobs: dict[str, Any]


def clip(text: str, cap: int = LOG_CAP) -> tuple[str, bool]:
    """``text`` cut to its last ``cap`` characters (whole lines where it can), and whether it was cut."""
    if len(text) <= cap:
        return text, False
    tail = text[-cap:]
    newline = tail.find("\n")
    if 0 <= newline < cap // 4:
        tail = tail[newline + 1 :]
    return tail, True


def record(job: LogOwner, agent_id: str, invocation: int, entry: dict[str, Any]) -> None:
    """Keep one run's log (``stdout``/``stderr`` capped here) with the job's next write
    (the caller marks the job for the writer)."""
    kept = dict(entry)
    kept["agent_id"] = agent_id
    kept["invocation"] = invocation
    for stream in ("stdout", "stderr"):
        kept[stream], cut = clip(str(entry.get(stream) or ""))
        if cut:
            kept[f"{stream}_truncated"] = True
    job.blobs[f"log:{agent_id}:{invocation % KEEP}"] = kept
    job.blobs[f"logs:{agent_id}"] = {"last": invocation}


async def read(store: Store, job_id: str, agent_id: str, *, after: int = 0) -> list[dict[str, Any]]:
    """The kept runs of ``agent_id`` with an invocation number above ``after``, oldest first."""
    runs: list[dict[str, Any]] = await call_store(store, _read, store, job_id, agent_id, after)
    return runs


def _read(store: Store, job_id: str, agent_id: str, after: int) -> list[dict[str, Any]]:
    """:func:`read`, in one trip off the event loop (up to ``KEEP + 1`` store reads)."""
    index = store.get_blob(job_id, f"logs:{agent_id}")
    last = index.get("last") if isinstance(index, dict) else None
    if not isinstance(last, int) or last <= after:
        return []
    runs = []
    for invocation in range(max(after + 1, last - KEEP + 1), last + 1):
        run = store.get_blob(job_id, f"log:{agent_id}:{invocation % KEEP}")
        if isinstance(run, dict) and run.get("invocation") == invocation:
            runs.append(run)
    return runs
