"""Stalls: a live job that cannot progress on its own, and what it is waiting for.

A job stalls when it is running, is not a daemon, and has no queued message it can
process and no handler in flight (there are no timers): only a message from outside
(``send_message``) can move it now. That is legitimate for some jobs, so a stall is
reported (``job_stalled``, the record's ``stalled``) and fails a job only when the
caller asked for it (``idle_timeout``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .._time import now_iso
from ..agents.base import Agent

#: Agents named in a stall report (the event stays small for huge jobs).
MAX_NAMED = 100


def waiting_for(agent: Agent | None) -> str | None:
    """What ``agent`` still needs before it ends its job (``None``: it never ends one)."""
    try:
        return agent.waiting_for() if agent is not None else None
    except Exception:  # an agent's view must never break stall detection
        return None


def describe(waiting: list[dict[str, Any]], held: list[str]) -> str:
    """One sentence: what is missing, e.g. ``waiting: reviewer: 1 of complete_after=2 message(s)``."""
    parts = [f"{w['agent_id']}: {w['waiting_for']}" for w in waiting[:5]]
    if len(waiting) > 5:
        parts.append(f"and {len(waiting) - 5} more")
    if held:
        parts.append(f"held back by full mailboxes: {', '.join(held[:5])}")
    if not parts:
        return "no message is queued, no handler is running and no agent can end the job"
    return "no message is queued and no handler is running; waiting: " + "; ".join(parts)


class StallWatch:
    """Whether a job is stalled (``info``), since when, and a future for those who wait on it."""

    __slots__ = ("_change", "info", "since")

    def __init__(self) -> None:
        self.info: dict[str, Any] | None = None
        self.since: float | None = None  # monotonic
        self._change: asyncio.Future[None] | None = None

    def begin(self, waiting: list[dict[str, Any]], held: list[str]) -> dict[str, Any]:
        """The job just stalled: returns the report (also kept as ``info``)."""
        named = waiting[:MAX_NAMED]
        self.info = {"since": now_iso(), "reason": describe(waiting, held), "waiting": named}
        self.since = time.monotonic()
        self._notify()
        return self.info

    def end(self) -> None:
        """The job moves again (a message arrived) or ended."""
        self.info = None
        self.since = None
        self._notify()

    def changed(self) -> asyncio.Future[None]:
        """Resolved the next time the job stalls or goes on after a stall."""
        if self._change is None:
            self._change = asyncio.get_running_loop().create_future()
        return self._change

    def _notify(self) -> None:
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)
