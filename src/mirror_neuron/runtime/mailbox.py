"""One agent's mailbox: the FIFO queue, its bound, its positions and the senders it holds back.

Positions are 1-based and per agent: ``appended`` counts every message ever queued,
``taken`` those popped (processed or in flight), ``persisted`` those durable in the store
(or derivable from the manifest, as initial inputs are) and ``pruned`` those reported
consumed to the store. The store's copy of the queue is exactly the rows
``pruned < position <= persisted``, so a crash loses nothing a commit acknowledged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ..messages import Message, from_dict, normalize


def log_key(agent_id: str) -> str:
    """Where an agent's log is stored: beside the mailboxes, under a key no mailbox uses."""
    return f"#log:{agent_id}"


def seed_message(job_id: str, entrypoint: str, index: int, payload: Any) -> Message:
    """The ``index``-th initial input of ``entrypoint``, with a deterministic id."""
    if isinstance(payload, dict):
        message = normalize(payload, job_id=job_id, to=entrypoint, type="init", cls="command")
        if "message_id" in payload or "message_id" in payload.get("envelope", {}):
            return message
    else:
        message = Message("init", payload, job_id=job_id, to=entrypoint, cls="command")
    message._mid = f"init:{entrypoint}:{index}"
    return message


class Sender(Protocol):
    """An agent held back because it emitted into a full mailbox."""

    blocked: bool

    def wake(self) -> None: ...


class Mailbox:
    """Created on an agent's first mail (see :data:`NO_MAILBOX`): a deque costs ~600 bytes,
    and most agents of a large job stay idle."""

    __slots__ = ("appended", "bound", "persisted", "pruned", "queue", "refile", "taken", "waiters")

    def __init__(self, bound: int) -> None:
        self.queue: deque[Message] = deque()
        self.bound = bound
        self.appended = 0
        self.taken = 0
        self.persisted = 0
        self.pruned = 0
        #: Senders blocked on this mailbox while it is over its bound, woken when it drains.
        self.waiters: list[Sender] | None = None
        #: Set when a message was put back after the store dropped its row: write it again.
        self.refile = False

    def __len__(self) -> int:
        return len(self.queue)

    def __bool__(self) -> bool:
        return bool(self.queue)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.queue)

    def put(self, message: Message) -> int:
        """Queue ``message`` last; returns the new depth."""
        queue = self.queue
        queue.append(message)
        self.appended += 1
        return len(queue)

    def take(self) -> Message:
        message = self.queue.popleft()
        self.taken += 1
        return message

    def took(self, n: int) -> None:
        """``n`` messages were popped from :attr:`queue` directly (a sync agent's slice)."""
        self.taken += n

    def put_back(self, message: Message) -> None:
        """Return a taken message to the front (its handler was interrupted or crashed)."""
        self.queue.appendleft(message)
        self.taken -= 1
        if self.taken < self.pruned:  # its row is gone from the store (consumed, or never written)
            self.pruned = self.taken
            self.refile = True

    def clear(self) -> int:
        """Drop every queued message (the job ended); returns how many."""
        dropped = len(self.queue)
        if dropped:
            self.queue.clear()
        return dropped

    def hold(self, sender: Sender) -> None:
        """Keep ``sender`` blocked until this mailbox drains to half its bound."""
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(sender)

    def release(self, force: bool = False) -> None:
        """Wake the held senders once the queue is back under half its bound (or ``force``)."""
        if self.waiters is None or (len(self.queue) > self.bound // 2 and not force):
            return
        waiters, self.waiters = self.waiters, None
        for sender in waiters:
            sender.blocked = False
            sender.wake()

    def seeded(self) -> None:
        """What is queued so far can be rebuilt from the manifest: never written as mail."""
        if self.appended:
            self.persisted = self.appended

    def unsaved(self, agent_id: str) -> list[tuple[str, int, dict[str, Any]]]:
        """Queued messages not yet in the store, as ``(agent_id, position, message)`` rows.

        Mail queued and consumed between two commits never needs writing: its effect is in
        the consumer's state, which is committed in the same batch.
        """
        rows: list[tuple[str, int, dict[str, Any]]] = []
        start = max(self.persisted, self.taken)
        queue = self.queue
        if self.refile and queue:
            self.refile = False
            rows.append((agent_id, self.taken + 1, queue[0].to_dict()))
            start = max(start, self.taken + 1)
        if self.appended <= start:
            return rows
        rows += [
            (agent_id, pos, queue[pos - self.taken - 1].to_dict())
            for pos in range(start + 1, self.appended + 1)
        ]
        self.persisted = self.appended
        return rows

    def newly_consumed(self, ended: bool) -> int | None:
        """The position up to which the store may drop rows, when it moved since the last commit."""
        upto = self.appended if ended else self.taken
        if upto > self.pruned:
            self.pruned = upto
            return upto
        return None

    def restore(
        self,
        taken: int,
        inflight: Message | None,
        seeds: int,
        seed: Callable[[int], Message],
        rows: list[tuple[int, dict[str, Any]]],
    ) -> None:
        """Resume from a stored cut: ``taken`` consumed, then the message that was in flight,
        the initial inputs not yet taken (``seed(i)``; never stored as mail) and the stored rows."""
        queue: list[Message] = []
        if inflight is not None:
            taken -= 1  # it will be taken again
            queue.append(inflight)
        first = taken + len(queue)  # positions up to here are consumed or re-queued
        queue += [seed(i) for i in range(first, seeds)]
        queue += [from_dict(message) for pos, message in rows if pos > max(first, seeds)]
        self.queue.extend(queue)
        self.taken = taken
        self.appended = self.persisted = taken + len(queue)
        self.pruned = 0  # the first commit drops rows consumed before the crash


#: The mailbox of every agent that never received anything (shared, always empty, all
#: positions 0). Only read: an agent gets a mailbox of its own before anything is put in.
NO_MAILBOX = Mailbox(0)
