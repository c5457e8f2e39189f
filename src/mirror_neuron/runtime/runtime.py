"""The runtime: hosts jobs on one asyncio loop, over one store.

``async with Runtime(config) as rt: job_id = await rt.submit("examples/research_flow")``.
Jobs hosted here are answered from memory; jobs hosted by another process (another
``mn run``) are answered from the shared store, so every call works on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, cast

from .._time import iso, now_iso
from ..agents import preflight
from ..bundle.model import Bundle
from ..config import Config
from ..errors import NoEligibleNode, NotFound, StoreError
from ..execution import LeaseManager, UnsafeTempDir, run_dir, sweep_stale_runs
from ..ids import job_id as new_job_id
from ..store import MemoryStore, open_store
from ..store.base import Store, WriteBatch, resolve_job_id
from ..validation import load_bundle
from . import remote, shipping, watch
from .controller import Control
from .host import Host
from .job import JobRun
from .leases import LeaseKeeper
from .placement import runtime_nodes
from .reads import JobReader
from .scheduler import Scheduler
from .writer import StoreWriter

_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


def _tune_gc(threshold: int | None) -> None:
    global _gc_users, _gc_saved
    if threshold is None:
        return
    if _gc_users == 0:
        _gc_saved = gc.get_threshold()
        if _gc_saved[0] < threshold:
            gc.set_threshold(threshold, _gc_saved[1], _gc_saved[2])
    _gc_users += 1


def _restore_gc(threshold: int | None) -> None:
    global _gc_users
    if threshold is None:
        return
    _gc_users -= 1
    if _gc_users == 0 and _gc_saved is not None:
        gc.set_threshold(*_gc_saved)


class Runtime:
    """Hosts jobs. Use as an async context manager, or call :meth:`start` / :meth:`close`.

    Reads (``inspect_job``, ``events``, ``wait``, …) answer for any job of the store;
    operator actions are on :attr:`control` (``await rt.control.pause(job_id)``).
    """

    def __init__(self, config: Config | None = None, *, store: Store | None = None) -> None:
        self.config = config or Config()
        self.store: Store = store if store is not None else open_store(self.config.store_url)
        self.jobs: dict[str, JobRun] = {}
        #: Runtime-wide services agents use; the executor lease manager bounds concurrent runs.
        self.services: dict[str, Any] = {"leases": LeaseManager.from_config(self.config)}
        self.scheduler = Scheduler(self.config.agent_batch)
        self.writer = StoreWriter(
            self.store, self.scheduler, self.config.flush_interval, self.config.flush_max_events
        )
        self.writer.on_error = self._store_failed
        self.scheduler.on_idle = self._quiet
        #: The leases of the jobs hosted here (a memory store is this process's alone: none).
        self.leases = (
            LeaseKeeper(self.store, self.config.node_name, self.config.lease_ttl, self._fence)
            if self.durable
            else None
        )
        self._letting_go: list[str] = []
        self._let_go_task: asyncio.Task[None] | None = None
        self.host = Host(
            config=self.config,
            store=self.store,
            writer=self.writer,
            scheduler=self.scheduler,
            services=self.services,
            spawn=self.spawn,
            release=self._release,
            control_endpoint=lambda: self.control_endpoint,
            leases=self.leases,
        )
        self.reader = JobReader(
            self.store, self.jobs, flush=self.writer.flush, heartbeat_interval=self.config.heartbeat_interval
        )
        self.control = Control(
            self.host, self.jobs, self.reader, started=self.start, describe=self.inspect_node
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._control: remote.ControlServer | None = None

    @property
    def durable(self) -> bool:
        """True when jobs outlive this process (a store other than ``memory://``)."""
        return not isinstance(self.store, MemoryStore)

    @property
    def node_client(self) -> remote.NodeClient:
        """The HTTP client this runtime calls the other nodes of a cluster with (kept open)."""
        return self.host.nodes

    @property
    def control_endpoint(self) -> str | None:
        """Where other processes reach this runtime's jobs (None for in-memory runtimes)."""
        return self._control.endpoint if self._control is not None else None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> Runtime:
        if self._driver is None:
            if self.config.control and self.durable:
                self._control = remote.ControlServer(self.control.serve)
                await self._control.start()
            # What a runtime killed with -9 left in the temp dir (staging trees, its /etc copy).
            # An unsafe temp dir is not touched; executor runs report it when they need it.
            with contextlib.suppress(UnsafeTempDir):
                await asyncio.to_thread(sweep_stale_runs, self.config.temp_dir)
            _tune_gc(self.config.gc_threshold)
            self._driver = asyncio.create_task(self.scheduler.run(), name="mn-scheduler")
            self._heartbeat = asyncio.create_task(self._beat(), name="mn-heartbeat")
            if self.leases is not None:
                self._renewer = asyncio.create_task(self.leases.run(), name="mn-leases")
        return self

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def suspend(self, reason: str, *, handoff: bool = False) -> list[str]:
        """Suspend every job hosted here at a message boundary (running scripts are stopped).

        Each gets a ``job_suspended`` event and the status ``suspended``, and stays in the
        store for ``mn job recover`` (or the next ``mn serve``) to resume; with ``handoff``,
        any other node of the cluster takes it up at once. Returns their ids.
        """
        suspended = []
        for job in list(self.jobs.values()):
            if await job.suspend(reason, handoff=handoff):
                suspended.append(job.job_id)
        if suspended:
            await self.writer.flush()
        if self._let_go_task is not None:  # their leases released too: another node may claim them
            await self._let_go_task
        return suspended

    async def close(self, *, keep_jobs: bool = False, handoff: bool = False) -> None:
        """Stop hosting, flush everything and close the store.

        Live jobs fail with a clear reason, or with ``keep_jobs`` (``mn serve``) are
        suspended at their last message boundary, running scripts stopped, so that the next
        runtime on this store recovers them.
        """
        if self._closed:
            return
        self._closed = True
        if keep_jobs:
            await self.suspend("the runtime hosting it stopped", handoff=handoff)
        for job in list(self.jobs.values()):
            job.fail("job_runner", "runtime stopped before the job finished")
        if keep_jobs:
            for task in self._tasks:  # e.g. waiters on suspended jobs, which will not end here
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._let_go_task is not None:  # the leases of jobs that left: after their last write
            await self._let_go_task
        if self.leases is not None:  # nothing renews them from now on: let other nodes claim at once
            await self.writer.flush()
            for job_id in list(self.leases.held):
                await self.writer.run_blocking(self.leases.release_now, job_id)
        for background in (self._driver, self._heartbeat, self._renewer):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        if self._control is not None:
            await self._control.close()
        await self.host.nodes.aclose()
        await self.writer.close()
        self.store.close()
        if self._driver is not None:
            _restore_gc(self.config.gc_threshold)

    def _store_failed(self, exc: BaseException) -> None:
        """The store takes no writes (the writer is degraded): end every job here, in memory.

        Their failure is written when the store works again (the writer retries); should
        this runtime be gone by then, the last commit of each job stays and can be recovered.
        """
        reason = (
            f"the store failed, so the job cannot go on safely: {exc}; this failure is stored once the "
            "store works again, or else its last committed state is kept and `mn job recover` resumes it"
        )
        for job in list(self.jobs.values()):
            job.fail("job_runner", reason)

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}``, or ``"degraded"`` with the reason and since when (ISO-8601).

        Degraded means the store takes no writes at all: jobs here have failed, and held-back
        writes are retried until one succeeds (see :class:`StoreWriter`).
        """
        state = self.writer.degraded
        if state is None:
            return {"status": "ok"}
        return {"status": "degraded", "reason": state.reason, "since": iso(state.since)}

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a runtime-owned background task (kept referenced until done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _release(self, job_id: str) -> None:
        """A job left this runtime (ended, suspended or fenced): so does its lease."""
        job = self.jobs.pop(job_id, None)
        if job is not None and not self.store.blocking:  # the memory store keeps no manifest
            self.reader.ended(job_id, job.bundle.manifest)
        root = job.bundle.root_path if job is not None else None
        if (
            root is not None
            and root.name.startswith(shipping.PREFIX)
            and shipping.is_shipped(root, run_dir(self.config.temp_dir))
        ):
            self.spawn(asyncio.to_thread(shutil.rmtree, root, True))  # this node's copy of its files
        if self.leases is None or job_id not in self.leases.held:
            return
        if job is not None and job.fenced:
            self.leases.forget(job_id)
            return
        self._letting_go.append(job_id)
        if self._let_go_task is None or self._let_go_task.done():
            self._let_go_task = asyncio.get_running_loop().create_task(self._let_go(), name="mn-release")

    async def _let_go(self) -> None:
        """Release the leases of jobs that left, once their last state is stored."""
        assert self.leases is not None
        while self._letting_go:
            await self.writer.flush()
            ids, self._letting_go = self._letting_go, []
            for job_id in ids:
                await self.writer.run_blocking(self.leases.release_now, job_id)

    def _fence(self, job_id: str, reason: str) -> None:
        """Another node claimed a job hosted here: it stops here, unwritten."""
        job = self.jobs.get(job_id)
        if job is not None:
            job.fence(reason)

    def _quiet(self) -> None:
        """The run queue is empty: a job hosted here may now be unable to go on by itself."""
        for job in self.jobs.values():
            job.check_stall()

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """Each executor pool's capacity and use (``capacity``, ``in_use``, ``available``, ``queued``)."""
        return cast("dict[str, dict[str, int]]", self.services["leases"].stats())

    def inspect_node(self) -> dict[str, Any]:
        """This runtime: its name, the jobs it hosts and its executor pools (with live usage)."""
        return {
            "name": self.config.node_name,
            "pid": os.getpid(),
            "control": self.control_endpoint,
            "store": self.store.url,
            "jobs": sorted(self.jobs),
            "executor_pools": self.pool_stats(),
            "health": self.health(),
        }

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            stamp = now_iso()
            for job in self.jobs.values():
                job.heartbeat_at = stamp
                job.record_dirty = True
                self.writer.mark(job)

    async def inspect_nodes(self, *, local: bool = False) -> list[dict[str, Any]]:
        """Every node of the cluster on this store (``mn serve`` processes on any machine, alive
        or lately dead), each with ``"cluster": True``; with ``local``, then the other live
        runtimes of this user on this machine (``mn run``) that are no node."""
        nodes = [{**n, "cluster": True} for n in await self.host.read(self.store.list_nodes)]
        if local:
            known = {n["name"] for n in nodes}
            nodes += [
                n
                for n in await remote.live_runtimes()
                if n.get("name") not in known and n.get("control") != self.control_endpoint
            ]
        return nodes

    async def drain_node(self, name: str) -> None:
        """Ask node ``name`` to hand its jobs to the other nodes (it notices within a heartbeat).

        Raises:
            NotFound: no node of that name is registered.
            NoEligibleNode: no other live runtime node could take its jobs.
        """
        nodes = await self.inspect_nodes()
        if not any(n["name"] == name for n in nodes):
            known = ", ".join(n["name"] for n in nodes) or "none"
            raise NotFound(f"no node named {name} in the cluster (nodes: {known})")
        if not any(runtime_nodes(n for n in nodes if n["name"] != name)):
            raise NoEligibleNode(f"no other live runtime node can take the jobs of {name}: start one first")
        if not await self.host.read(self.store.request_drain, name):
            raise NotFound(f"no node named {name} in the cluster")

    # -- jobs -----------------------------------------------------------------------

    async def submit(self, source: Any, *, job_id: str | None = None, placed: str | None = None) -> str:
        """Validate and start a job; returns its id once the ``pending`` record is stored.

        ``placed`` says why a cluster chose this node (the job's first event, ``job_placed``).
        """
        if self._driver is None:
            await self.start()
        # Parsing and validating a big manifest takes seconds: never on the event loop.
        bundle = source if isinstance(source, Bundle) else await asyncio.to_thread(load_bundle, source)
        await asyncio.to_thread(preflight, bundle, self.config)  # stats upload sources, may probe bwrap
        job_id = job_id or new_job_id(bundle.manifest.graph_id)
        job = JobRun(self.host, bundle, job_id)
        if self.leases is not None:  # owned before it exists: no sweep can take it meanwhile
            job.lease_epoch = await self.leases.claim(job_id)
            if job.lease_epoch is None:
                raise StoreError(f"job {job_id} is already owned by another node")
        try:
            await self.writer.run_blocking(self._create, job.record(), bundle)
        except Exception as exc:
            if self.leases is not None:
                await self.writer.run_blocking(self.leases.release_now, job_id)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"failed to persist initial job: {exc}") from exc
        job.record_dirty = False
        self.jobs[job_id] = job
        if placed is not None:
            job.event("job_placed", None, None, {"node": self.config.node_name, "reason": placed})
        job.start()
        return job_id

    def _create(self, record: dict[str, Any], bundle: Bundle) -> None:
        """Store the pending record and, for a job that may outlive this process, its manifest.

        The manifest is committed with the pending record, before submit returns, so the job is
        recoverable from the store (built here, in the writer's thread: big manifests take time).
        """
        self.writer.check_writable()  # a degraded runtime takes no new jobs: it could not store them
        self.store.create_job(record)
        if self.store.blocking:
            blobs: dict[str, Any] = {"manifest": bundle.manifest.to_dict()}
            if self.config.ship_bundles and bundle.root_path is not None:
                files = shipping.pack(bundle.root_path)
                if files is not None:
                    blobs[shipping.BLOB] = files
            self.store.write_batch(WriteBatch(blobs={record["job_id"]: blobs}))

    async def run(self, source: Any, *, timeout: float | None = None) -> tuple[str, dict[str, Any]]:
        """Submit and wait: ``(job_id, terminal job record)``."""
        job_id = await self.submit(source)
        return job_id, await self.wait(job_id, timeout)

    async def wait(
        self, job_id: str, timeout: float | None = None, *, idle_timeout: float | None = None
    ) -> dict[str, Any]:
        """The terminal job record, as soon as the job is completed, failed or cancelled.

        With ``idle_timeout``, a job hosted here that has been stalled that long (nothing
        queued, no handler running: see ``job_stalled``) fails with the reason. Raises
        ``JobTimeout``, ``JobNotFound``, or ``JobOrphaned`` when the job's runtime is gone.
        """
        return await self.reader.wait(job_id, timeout, idle_timeout=idle_timeout)

    async def inspect_job(self, job_id: str) -> dict[str, Any]:
        return await self.reader.inspect_job(job_id)

    async def inspect_agents(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Agent views sorted by id: those with an id above ``after``, at most ``limit``."""
        return await self.reader.inspect_agents(job_id, after=after, limit=limit)

    async def inspect_agent(self, job_id: str, agent_id: str) -> dict[str, Any]:
        """One agent's view: status, mailbox, in-flight message, state (``AgentNotFound``)."""
        return await self.reader.inspect_agent(job_id, agent_id)

    async def events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return await self.reader.events(job_id, after=after, limit=limit)

    def follow(self, job_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Events with ``seq > after`` as they happen, ending after the job's terminal event."""
        return self.reader.follow(job_id, after=after)

    def updates(
        self, job_id: str, *, after: int = 0, agents: bool = True
    ) -> AsyncGenerator[watch.Update, None]:
        """Events after ``after`` and (with ``agents``) changed agent statuses, merged, ending with
        ``("end", {"status": …})`` (see :func:`~.watch.updates`)."""
        return watch.updates(self.reader, job_id, after=after, agents=agents)

    def agent_statuses(self, job_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The agents whose status changed (all of them first), every ~250 ms, until the job ends:
        ``agent_id``, ``status``, ``mailbox_depth``, ``processed``, ``last_error``."""
        return watch.agent_statuses(self.reader, job_id)

    async def resolve_job_id(self, text: str) -> str:
        """The id of the one job whose id is ``text`` or starts with it (``JobNotFound``,
        ``AmbiguousJobId`` otherwise)."""
        full_id: str = await self.reader.read(resolve_job_id, self.store, text)
        return full_id

    async def graph(self, job_id: str) -> dict[str, Any]:
        """The job's agents and routing edges, as monitors draw them."""
        return await self.reader.graph(job_id)

    async def logs(self, job_id: str, agent_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """The executor runs of ``agent_id`` kept for the job (the newest 50): stdout, stderr, exit code."""
        return await self.reader.logs(job_id, agent_id, after=after)

    async def list_jobs(
        self,
        *,
        limit: int | None = None,
        include_terminal: bool = True,
        status: str | list[str] | tuple[str, ...] | frozenset[str] | None = None,
        cursor: str | None = None,
    ) -> list[dict[str, Any]]:
        """The store's ``list_jobs`` (a ``JobList``: with ``limit``, its ``next_cursor`` pages on)."""
        return await self.reader.list_jobs(
            limit=limit, include_terminal=include_terminal, status=status, cursor=cursor
        )
