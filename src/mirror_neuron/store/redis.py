"""Redis store: the shared store, in the original runtime's key layout (behaviour spec §7).

Why it is built this way:

* **The original's keys.** ``<ns>:jobs``, ``<ns>:job:<id>``, ``<ns>:job:<id>:events`` …
  (see :mod:`mirror_neuron.store.keys`) hold the same types and JSON as the original
  wrote, and every stored event is also PUBLISHed on ``<ns>:channel:events:<id>``, so
  tools written against the original can read (and subscribe to) a store we write.
* **One Lua script per batch.** :meth:`RedisStore.write_batch` sends the whole batch in
  one EVALSHA: one round trip, and Redis runs a script without interleaving any other
  command, so readers never see half a batch. The script first reads and checks
  everything (stored job statuses, key types, event high-water marks), then writes;
  Redis does not roll a script back, so nothing that can fail runs after the first write.
* **The terminal guard runs on the server.** A job record whose stored status is
  terminal is never overwritten, whichever process or thread writes next.
* **So does fencing.** A batch whose ``epochs`` name a job's old lease epoch fails in the
  script's checks, before any write: :class:`~mirror_neuron.errors.LeaseLost`, not retried.
  Leases and nodes (:mod:`.redis_cluster`) are one script per call, timed by Redis ``TIME``.
* **Idempotent events.** ``<ns>:job:<id>:events:seq`` holds the highest seq stored; the
  script only appends events above it, so replaying a batch (a retry after a timeout)
  adds nothing. Events are therefore stored in seq order, which is what lets
  :meth:`RedisStore.read_events` find ``seq > after`` with LINDEX/LRANGE instead of a scan.
* **Optional event retention.** With ``event_retention=N`` each job keeps its newest ``N``
  events (LTRIM from the left after each append). Trimmed events are gone for good:
  ``read_events`` returns what is left, still correctly by seq, and ``count_events``
  counts what is left.
* **An index for list_jobs.** ``<ns>:jobs:recent`` (every job) and ``<ns>:jobs:live``
  (non-terminal jobs) are sorted sets ordered by last update, then creation, so listing
  the newest ``N`` jobs does not read every record, and a page of a cursor starts right
  below the member its last job had (a status filter reads on in chunks past other jobs).
* **Durable mailboxes and blobs** (not in the original): queued mail is a sorted set per
  agent scored by position (``<ns>:job:<id>:mailbox:<agent_id>``), so "consumed up to
  N" is one ZREMRANGEBYSCORE; named values are a hash per job (``<ns>:job:<id>:blobs``).
* **Retries with backoff, then one clear error.** A connection error (Redis restarting,
  a dropped connection, a timeout) drops the pooled idle connections and retries with
  exponential backoff (50 ms, doubling, at most 1 s apart) for up to ``retry_for``
  seconds (5 s by default); then it raises ``StoreError("Redis at <url> is unreachable:
  …")``. Writes are idempotent, so a retried write is harmless (a retried create_job
  that finds its own record counts as created). Other errors (wrong
  password, a key of the wrong type) are not retried. Every failure is a StoreError,
  and the password in the URL is never shown (``redis://:pw@host`` → ``redis://***@host``).

Not cluster-safe: the scripts build some key names themselves (each job's agent keys,
the job records listed from the index), which Redis Cluster does not allow.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .._json import dumps, loads
from ..errors import StoreError
from ..events import Event
from . import redact_url  # re-exported: the Redis store's URLs are the ones with passwords
from .base import TERMINAL_STATUSES, JobList, WriteBatch, decode_cursor, job_page, status_filter
from .keys import CREATION_DIGITS, DEFAULT_NAMESPACE, SCRIPTS, Keys
from .redis_cluster import RedisOwnership, fence_args, fenced

__all__ = ["DEFAULT_RETRY_FOR", "RedisStore", "redact_url"]

T = TypeVar("T")

#: How long (seconds) to keep retrying a call that fails with a connection error.
DEFAULT_RETRY_FOR = 5.0
#: First pause between retries; it doubles up to :data:`BACKOFF_CAP`.
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0
DEFAULT_CONNECT_TIMEOUT = 2.0
#: A batch of many thousand events is one script call: leave it time to run.
DEFAULT_SOCKET_TIMEOUT = 10.0
#: Index members read per call while listing jobs of some statuses (the rest are skipped).
LIST_CHUNK = 256
#: A connection idle for longer than this is checked with PING before it is used.
DEFAULT_HEALTH_CHECK_INTERVAL = 10

_SCRIPT_ERROR = re.compile(r"^MNSTORE (.*?)(?: script: \w+, on @user_script:\d+\.)?$", re.DOTALL)
#: What a Redis MATCH pattern treats as glob syntax (escaped with a backslash to match itself).
_GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")


class RedisStore(RedisOwnership):
    """A :class:`~mirror_neuron.store.base.Store` on a Redis server, shared by every process that uses it.

    ``url`` is a redis-py URL: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
    for TLS, or ``unix:///path/to/redis.sock``. ``namespace`` prefixes every key (default
    ``mirror_neuron``); ``event_retention`` keeps only the newest N events per job.
    ``retry_for`` is how long connection errors are retried (seconds); the timeouts and the
    health check interval are passed to redis-py. The store opens with a PING, so a server
    that cannot be reached fails here, with a StoreError.
    """

    blocking = True

    def __init__(
        self,
        url: str,
        namespace: str | None = None,
        event_retention: int | None = None,
        *,
        retry_for: float = DEFAULT_RETRY_FOR,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        health_check_interval: int = DEFAULT_HEALTH_CHECK_INTERVAL,
        max_connections: int | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.namespace = DEFAULT_NAMESPACE if namespace is None else namespace
        if event_retention is not None and (
            not isinstance(event_retention, int) or isinstance(event_retention, bool) or event_retention < 1
        ):
            raise StoreError(
                f"Redis event retention must be a positive number of events, not {event_retention!r}"
            )
        self.event_retention = event_retention
        self.retry_for = retry_for
        self.keys = Keys(self.namespace)
        self._closed = False
        self._lock = threading.Lock()
        options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout,
            "health_check_interval": health_check_interval,
            "max_connections": max_connections,
            # Retries are ours (_call): one policy, visible attempts, then a StoreError.
            "retry": Retry(NoBackoff(), 0),
        }
        if not url.lower().startswith("unix:"):
            options["socket_keepalive"] = True  # TCP only: notice a peer that vanished
        try:
            self._pool = redis_lib.ConnectionPool.from_url(url, **options)
        except (ValueError, TypeError, RedisError) as exc:
            raise StoreError(f"invalid Redis URL {self.url!r}: {exc}") from exc
        self._client = redis_lib.Redis(connection_pool=self._pool)
        self._scripts = {name: self._client.register_script(source) for name, source in SCRIPTS.items()}
        try:
            self._call("connecting", lambda _attempt: self._client.ping())
        except BaseException:
            self.close()
            raise

    # -- writes ---------------------------------------------------------------------------

    def write_batch(self, batch: WriteBatch) -> None:
        if not batch:
            return
        keys = self.keys
        key_list: list[Any] = [keys.jobs, keys.recent, keys.live, keys.order, keys.created]
        args: list[Any] = [
            len(batch.jobs),
            len(batch.events),
            len(batch.agents),
            len(batch.messages),
            len(batch.consumed),
            len(batch.blobs),
            self.event_retention or 0,
        ]
        for record in batch.jobs:
            job_id, data, recent, terminal = self._job_args(record)
            key_list.append(keys.job(job_id))
            args += (job_id, data, recent, terminal)
        for job_id, events in batch.events.items():
            key_list += (keys.events(job_id), keys.event_seq(job_id))
            args.append(keys.channel(job_id))
            args += self._event_args(job_id, events)
        for job_id, snapshots in batch.agents.items():
            key_list.append(keys.agents(job_id))
            args.append(len(snapshots))
            for snapshot in snapshots:
                agent_id = snapshot.get("agent_id")
                if agent_id is None:
                    raise StoreError(
                        f"Redis store {self.url}: an agent snapshot of job {job_id} has no agent_id"
                    )
                agent_id = str(agent_id)
                key_list.append(keys.agent(job_id, agent_id))
                args += (agent_id, self._encode(snapshot, f"agent {agent_id} of job {job_id}"))
        for job_id, rows in batch.messages.items():
            key_list.append(keys.mailboxes(job_id))
            args.append(len(rows))
            for agent_id, pos, message in rows:
                pos = _position(pos, job_id, agent_id)
                key_list.append(keys.mailbox(job_id, agent_id))
                member = b"%d:%s" % (pos, self._encode(message, f"a message of job {job_id}"))
                args += (agent_id, pos, member)
        for job_id, upto in batch.consumed.items():
            key_list.append(keys.mailboxes(job_id))
            args.append(len(upto))
            for agent_id, pos in upto.items():
                key_list.append(keys.mailbox(job_id, agent_id))
                args += (agent_id, _position(pos, job_id, agent_id))
        for job_id, values in batch.blobs.items():
            key_list.append(keys.blobs(job_id))
            args.append(len(values))
            for name, value in values.items():
                args += (str(name), self._encode(value, f"value {name} of job {job_id}"))
        fence_args(keys, batch.epochs, key_list, args)  # LeaseLost (not retried) if one is stale
        script, epochs = self._scripts["write_batch"], batch.epochs
        self._call("writing a batch", lambda _a: fenced(epochs, lambda: script(keys=key_list, args=args)))

    def create_job(self, record: dict[str, Any]) -> None:
        job_id, data, recent, terminal = self._job_args(record)
        k = self.keys
        key_list = [k.jobs, k.recent, k.live, k.order, k.created, k.job(job_id)]
        script = self._scripts["create_job"]

        def create(attempt: int) -> None:
            reply = script(keys=key_list, args=[job_id, data, recent, terminal])
            # A retried create whose first attempt did reach the server finds its own record.
            if reply[0] == 0 and not (attempt > 1 and reply[1] == data):
                raise StoreError(f"job {job_id} already exists")

        self._call(f"creating job {job_id}", create)

    def delete_job(self, job_id: str) -> bool:
        k = self.keys
        key_list = [k.job(job_id), k.events(job_id), k.event_seq(job_id), k.agents(job_id), k.jobs]
        key_list += (k.recent, k.live, k.order, k.mailboxes(job_id), k.blobs(job_id))
        key_list += (k.epoch(job_id), k.lease(job_id))  # the lease and its epoch go too
        args = [job_id, k.agent_prefix(job_id), k.mailbox_prefix(job_id)]
        script = self._scripts["delete_job"]
        existed = self._call(f"deleting job {job_id}", lambda _attempt: script(keys=key_list, args=args))
        return bool(existed)

    # -- reads ----------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        key = self.keys.job(job_id)
        raw = self._call(f"reading job {job_id}", lambda _attempt: self._client.get(key))
        return None if raw is None else self._decode(raw, key)

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        include_terminal: bool = True,
        status: str | Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> JobList:
        after = None if cursor is None else decode_cursor(cursor)
        wanted = status_filter(status, include_terminal)
        if limit == 0 or wanted == frozenset():
            return JobList()
        live = not include_terminal or (wanted is not None and wanted.isdisjoint(TERMINAL_STATUSES))
        index = self.keys.live if live else self.keys.recent
        # Members sort as <recent>\0<creation number><job id>: "(" + the first two is just below it.
        bound = "+" if after is None else f"({after[0]}\0{after[1]:0{CREATION_DIGITS}d}"
        want = -1 if limit is None or limit < 0 else limit + 1  # one more: is there a next page?
        rows: list[tuple[tuple[str, int], dict[str, Any]]] = []
        while True:  # with a status filter, chunk after chunk of the index until enough match
            count = -1 if want < 0 else want - len(rows)
            count = max(count, LIST_CHUNK) if wanted is not None and count > 0 else count
            flat = self._list_chunk(index, count, bound)
            for member, raw in zip(flat[::2], flat[1::2]):
                record = None if raw is None else self._decode(raw, "a job record")
                if record is not None and (wanted is None or record.get("status") in wanted):
                    at = member.index(b"\0")
                    rows.append(
                        ((member[:at].decode(), int(member[at + 1 : at + 1 + CREATION_DIGITS])), record)
                    )
            if count < 0 or len(flat) < 2 * count or len(rows) >= want:
                break
            bound = b"(" + flat[-2]
        return job_page(rows, limit)

    def _list_chunk(self, index: str, count: int, bound: str | bytes) -> list[Any]:
        """``member, record, …`` of the ``count`` (-1: all) index members below ``bound``."""
        script = self._scripts["list_jobs"]
        args: list[int | str | bytes] = [count, self.keys.job_prefix, bound]
        return self._call("listing jobs", lambda _attempt: script(keys=[index], args=args))

    def job_ids_with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        # No index orders ids (jobs:recent is by update): the server scans <ns>:jobs with MATCH.
        pattern = _GLOB_SPECIAL.sub(r"\\\g<0>", prefix).encode() + b"*"

        def scan(_attempt: int) -> list[str]:
            found = self._client.sscan_iter(self.keys.jobs, match=pattern, count=1000)
            return sorted({raw.decode("utf-8", "replace") for raw in found})

        ids = self._call(f"looking up job ids starting {prefix!r}", scan)
        return ids if limit is None else ids[: max(limit, 0)]

    def read_events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        if limit is not None and limit == 0:
            return []
        key = self.keys.events(job_id)
        script = self._scripts["read_events"]
        args = [int(after), -1 if limit is None or limit < 0 else int(limit)]
        rows = self._call(f"reading events of job {job_id}", lambda _attempt: script(keys=[key], args=args))
        return [self._decode(raw, key) for raw in rows]

    def count_events(self, job_id: str) -> int:
        key = self.keys.events(job_id)
        return int(self._call(f"counting events of job {job_id}", lambda _attempt: self._client.llen(key)))

    def get_agents(self, job_id: str) -> list[dict[str, Any]]:
        script = self._scripts["get_agents"]
        key_list, args = [self.keys.agents(job_id)], [self.keys.agent_prefix(job_id)]
        flat = self._call(
            f"reading agents of job {job_id}", lambda _attempt: script(keys=key_list, args=args)
        )
        pairs = sorted(
            (agent_id.decode("utf-8", "replace"), raw)
            for agent_id, raw in zip(flat[::2], flat[1::2])
            if raw is not None
        )
        return [self._decode(raw, f"agent {agent_id} of job {job_id}") for agent_id, raw in pairs]

    def read_mailboxes(self, job_id: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        script = self._scripts["read_mailboxes"]
        key_list, args = [self.keys.mailboxes(job_id)], [self.keys.mailbox_prefix(job_id)]
        flat = self._call(
            f"reading mailboxes of job {job_id}", lambda _attempt: script(keys=key_list, args=args)
        )
        boxes: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for agent_id, members in sorted(zip(flat[::2], flat[1::2])):
            rows = []
            for member in members:
                pos, _, message = member.partition(b":")
                rows.append((int(pos), self._decode(message, f"a message of job {job_id}")))
            boxes[agent_id.decode("utf-8", "replace")] = rows
        return boxes

    def get_blob(self, job_id: str, key: str) -> Any:
        hash_key = self.keys.blobs(job_id)
        raw = self._call(f"reading {key} of job {job_id}", lambda _attempt: self._client.hget(hash_key, key))
        return None if raw is None else self._decode(raw, f"value {key} of job {job_id}")

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections; later calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.disconnect()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisStore {self.url} namespace={self.namespace!r}>"

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, action: str, fn: Callable[[int], T]) -> T:
        """Run ``fn(attempt)``, retrying connection errors with backoff; any failure is a StoreError."""
        attempt, delay, started = 0, BACKOFF_BASE, time.monotonic()
        while True:
            if self._closed:
                raise StoreError(f"Redis store {self.url} is closed")
            attempt += 1
            try:
                return fn(attempt)
            except StoreError:
                raise
            except AuthenticationError as exc:  # a ConnectionError that no retry fixes
                raise StoreError(
                    f"Redis at {self.url}: {action} failed: authentication failed ({exc}); "
                    "check the password in the store URL"
                ) from exc
            except (RedisConnectionError, RedisTimeoutError) as exc:
                elapsed = time.monotonic() - started
                if elapsed + delay > self.retry_for:
                    raise StoreError(
                        f"Redis at {self.url} is unreachable: {action} failed: {_message(exc)} "
                        f"(gave up after {attempt} attempt{'s' if attempt > 1 else ''} in {elapsed:.1f}s)"
                    ) from exc
                if attempt == 1:
                    # Like the original's client restart: idle pooled connections are most
                    # likely dead too (the server went away), so do not try them one by one.
                    self._pool.disconnect(inuse_connections=False)
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP)
            except RedisError as exc:  # a script's own error, a wrong type, out of memory, …
                raise StoreError(f"Redis at {self.url}: {action} failed: {_message(exc)}") from exc
            except Exception as exc:  # e.g. OSError, or a client option the connection refuses
                raise StoreError(
                    f"Redis at {self.url}: {action} failed: {type(exc).__name__}: {exc}"
                ) from exc

    def _job_args(self, record: dict[str, Any]) -> tuple[str, bytes, str, str]:
        """A job record as script arguments: id, JSON, the text list_jobs orders by, terminal flag."""
        job_id = record.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise StoreError(f"Redis store {self.url}: a job record needs a string job_id, got {job_id!r}")
        # Ordered like the other stores: updated_at, else submitted_at, compared as text.
        # NUL separates the parts of an index member, so it cannot be part of the text.
        recent = (_text(record.get("updated_at")) or _text(record.get("submitted_at")) or "").replace(
            "\0", ""
        )
        status = record.get("status")
        terminal = "1" if isinstance(status, str) and status in TERMINAL_STATUSES else "0"
        return job_id, self._encode(record, f"job {job_id}"), recent, terminal

    def _event_args(self, job_id: str, events: Iterable[Event]) -> list[Any]:
        """``count, highest seq, "seq,seq,…", JSON, JSON, …`` in seq order, one event per seq.

        Each JSON is ``Event.to_dict()``, ending in its ``"seq":N}``. Equal seqs keep the
        first event, as the other stores do.
        """
        events = list(events)
        seqs = [e[0] for e in events]
        bad = next((seq for seq in seqs if seq.__class__ is not int or seq < 1), None)
        if bad is not None:
            raise StoreError(f"Redis store {self.url}: an event of job {job_id} has seq {bad!r}, not 1, 2, …")
        if any(a >= b for a, b in itertools.pairwise(seqs)):
            events.sort(key=lambda e: e[0])  # stable: the first of equal seqs stays first
            kept = [events[0]]
            for e in events[1:]:
                if e[0] != kept[-1][0]:
                    kept.append(e)
            events = kept
            seqs = [e[0] for e in events]
        if not events:
            return [0, 0, ""]
        try:
            dicts = []
            for e in events:
                data = e.to_dict()
                if e.extra and "seq" in e.extra:  # keep "seq" last: the read script looks for it there
                    data["seq"] = data.pop("seq")
                dicts.append(data)
            encoded = _dumps_each(dicts)
        except TypeError as exc:
            raise StoreError(f"Redis store {self.url}: an event cannot be encoded as JSON: {exc}") from exc
        return [len(events), seqs[-1], ",".join(map(str, seqs)), *encoded]

    def _encode(self, value: dict[str, Any], what: str) -> bytes:
        try:
            return dumps(value)
        except TypeError as exc:
            raise StoreError(f"Redis store {self.url}: {what} cannot be encoded as JSON: {exc}") from exc

    def _decode(self, raw: bytes | str, what: str) -> Any:
        try:
            return loads(raw)
        except ValueError as exc:
            raise StoreError(f"Redis store {self.url}: {what} does not hold JSON: {exc}") from exc


def _dumps_each(values: list[Any]) -> list[bytes]:
    """``[dumps(v) for v in values]``, several times faster for many small values.

    orjson's per-call cost dominates for small values, so encode them all as one array with
    a random marker string between them and cut the array at the markers. A marker inside
    a value would show up as extra pieces, so a miscount falls back to one call per value.
    """
    if len(values) < 16:
        return [dumps(v) for v in values]
    marker = secrets.token_hex(16)
    interleaved: list[Any] = [marker] * (2 * len(values) - 1)
    interleaved[::2] = values
    pieces = dumps(interleaved)[1:-1].split(b',"' + marker.encode() + b'",')
    return pieces if len(pieces) == len(values) else [dumps(v) for v in values]


def _message(exc: BaseException) -> str:
    """A redis-py error as one sentence, without Lua's script location."""
    text = str(exc).strip()
    match = _SCRIPT_ERROR.match(text)
    return match[1] if match else text


def _position(pos: Any, job_id: str, agent_id: str) -> int:
    if pos.__class__ is not int:
        raise StoreError(f"a mailbox position of agent {agent_id} in job {job_id} is not an integer: {pos!r}")
    return pos


def _text(value: Any) -> str | None:
    """The text form of a timestamp field, as the SQLite store indexes it."""
    return value if value is None or isinstance(value, str) else str(value)
