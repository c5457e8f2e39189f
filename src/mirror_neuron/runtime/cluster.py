"""This process as a node of a cluster of runtimes that share one store.

Every ``mn serve`` is a node: it registers in the store and heartbeats what placement and
operators need (role, address, jobs, agents, executor pools, hardware). A runtime node
also **sweeps**, every couple of seconds and for as long as it lives, for live jobs whose
lease expired (their owner died or was cut off), claims each one atomically and applies
the job's ``recovery_mode``:

* ``cluster_recover`` (and any job its own node, restarted under the same name, finds):
  recovered here from its last commit;
* ``manual_recover``: suspended for an operator (``mn job recover``);
* otherwise (``local_restart``): failed with the original's reason.

A job *handed off* (suspended by a draining or stopping node) is recovered by whichever
node claims it first, whatever its policy. Jobs of runtimes outside the cluster (``mn
run``, a script) are left for ``mn job recover``: their owner was never a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._time import now_iso
from ..config import env
from ..errors import ConfigError, JobNotFound, JobStateError, StoreError, Unrecoverable
from ..states import JobStatus
from ..store.base import TERMINAL_STATUSES
from .blocking import call_store
from .placement import Placer, takes_jobs
from .recovery import settle_stored
from .runtime import Runtime

log = logging.getLogger("mirror_neuron.cluster")

ROLES = ("runtime", "control")
#: Jobs one sweep looks at (those it leaves alone, e.g. of `mn run` processes, count too).
SWEEP_BATCH = 1000
#: The original's reason for a job whose node died, when it is not set to recover elsewhere.
OWNER_DIED = "Node running the job died and job is not configured for cluster recovery."


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """How this process takes part in the cluster."""

    #: ``runtime`` hosts jobs; ``control`` hosts none and forwards every submission.
    role: str = "runtime"
    #: Where other nodes and clients reach this node's API (``http://host:port``).
    address: str | None = None
    #: Seconds between heartbeats; a node unseen for ``node_ttl`` is listed as dead.
    heartbeat: float = 1.0
    node_ttl: float = 5.0
    #: Seconds between sweeps for jobs whose owner is gone.
    sweep_interval: float = 2.0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"node role must be one of {', '.join(ROLES)}, not {self.role!r}")


def hardware() -> dict[str, Any]:
    """Logical CPUs, memory and GPUs (from ``nvidia-smi``, when there is one) of this host, and
    the host's name (``MIRROR_NEURON_NODE_HOST``, else the hostname): nodes with the same host
    share a filesystem, so a ``local_restart`` job may restart on any of them."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    gpus: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
            gpus = [line.strip() for line in out.splitlines() if line.strip()]
    return {
        "cpu": {"logical_processors": os.cpu_count() or 1, "architecture": os.uname().machine},
        "memory": {"total_bytes": memory, "total_mb": memory // (1024 * 1024)},
        "gpu": gpus,
        "host": env("NODE_HOST") or os.uname().nodename,
    }


def compatible(mine: str, theirs: str) -> bool:
    """Nodes of one cluster must run the same major.minor version (the same store layout)."""
    return mine.split(".")[:2] == str(theirs).split(".")[:2]


def check_join(nodes: list[dict[str, Any]], name: str, version: str) -> None:
    """Refuse to join a cluster (``nodes`` as ``list_nodes`` gives them) this node does not fit.

    Raises:
        ConfigError: a live node runs another major.minor version, or has this node's name.
    """
    alive = [n for n in nodes if n["alive"]]
    wrong = [n for n in alive if n["name"] != name and not compatible(version, str(n.get("version", "")))]
    if wrong:
        named = ", ".join(f"{n['name']} ({n.get('version')})" for n in wrong)
        raise ConfigError(
            f"cannot join the cluster: node(s) {named} run another version than this one ({version}); "
            "run the same MirrorNeuron version on every node"
        )
    if any(n["name"] == name for n in alive):
        raise ConfigError(f"a live node named {name} is already in the cluster; choose another --node-name")


class ClusterNode:
    """Registers a runtime as a node, heartbeats, sweeps for ownerless jobs and drains."""

    def __init__(self, runtime: Runtime, settings: NodeSettings, version: str) -> None:
        self.runtime = runtime
        self.settings = settings
        self.version = version
        self.name = runtime.config.node_name
        self.started = now_iso()
        self.draining = False
        self._hardware: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        #: The cluster as last read (name → node view), refreshed by every heartbeat.
        self.nodes: dict[str, dict[str, Any]] = {}
        #: Chooses the node for each job submitted here.
        self.placer = Placer()

    @property
    def hosts_jobs(self) -> bool:
        return self.settings.role == "runtime" and not self.draining

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A store call, off the event loop when the store blocks."""
        return await call_store(self.runtime.store, fn, *args, **kwargs)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Join: refuse an incompatible cluster, register, and (a runtime node alone in the
        cluster) resume every orphaned job at once. Returns the ids of the jobs resumed."""
        await self.runtime.start()
        self._hardware = await asyncio.to_thread(hardware)
        nodes = await self._store(self.runtime.store.list_nodes)
        check_join(nodes, self.name, self.version)
        if any(n["name"] == self.name for n in nodes):  # a dead registration of this name:
            await self._store(self.runtime.store.remove_node, self.name)  # its drain request goes
        await self.beat()
        recovered: list[str] = []
        if self.settings.role == "runtime":
            done = await self.sweep(startup=True)
            recovered = [d["job_id"] for d in done if d["action"] == "recover"]
            self._tasks.append(asyncio.create_task(self._sweeping(), name="mn-sweep"))
        self._tasks.append(asyncio.create_task(self._beating(), name="mn-node-heartbeat"))
        return recovered

    async def others_alive(self) -> bool:
        """Whether another runtime node is alive (and not draining) to take this one's jobs."""
        nodes = await self._store(self.runtime.store.list_nodes)
        return any(n["name"] != self.name and takes_jobs(n) for n in nodes)

    async def stop(self) -> bool:
        """Stop heartbeating and sweeping. True when another runtime node is alive to take
        this one's jobs (so the runtime should close handing them off)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            return self.settings.role == "runtime" and await self.others_alive()
        except StoreError:
            return False

    async def leave(self) -> None:
        """Leave the registry (after the runtime closed: its jobs are stored and released)."""
        with contextlib.suppress(StoreError):
            await self._store(self.runtime.store.remove_node, self.name)

    # -- heartbeat ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What this node registers: who it is, what it hosts, what it has free."""
        rt = self.runtime
        return {
            "role": self.settings.role,
            "address": self.settings.address,
            "version": self.version,
            "started": self.started,
            "pid": os.getpid(),
            "draining": self.draining,
            "jobs": len(rt.jobs),
            "agents": sum(len(job.cells) for job in rt.jobs.values()),
            "executor_pools": rt.pool_stats(),
            "hardware": self._hardware,
            "health": rt.health()["status"],
        }

    async def beat(self) -> None:
        """Heartbeat once; read the cluster; drain if an operator asked."""
        store = self.runtime.store
        await self._store(store.put_node, self.name, self.info(), self.settings.node_ttl)
        await self.refresh()
        me = self.nodes.get(self.name)
        if me is not None and me["drain"] and not self.draining:
            self.draining = True  # placement and the sweep skip this node from now on
            self._tasks.append(asyncio.create_task(self.drain(), name="mn-drain"))

    async def refresh(self) -> dict[str, dict[str, Any]]:
        """Read the cluster again (:attr:`nodes`): placement decides on what is there now."""
        read_at = time.monotonic()
        views = await self._store(self.runtime.store.list_nodes)
        self.nodes = {n["name"]: {**n, "seen_at": read_at - n["seen_ago"]} for n in views}
        return self.nodes

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            try:
                await self.beat()
            except StoreError as exc:
                log.warning("node %s: heartbeat failed: %s", self.name, exc)
            except Exception:  # a bug must not stop the heartbeat (the node would look dead)
                log.exception("node %s: heartbeat failed", self.name)

    # -- drain ----------------------------------------------------------------------------

    async def drain(self) -> list[str]:
        """Hand every job hosted here to the other nodes, and take no new ones.

        Each job is suspended at a message boundary and its lease released once that is
        stored; another node's sweep claims it within one sweep interval.
        """
        self.draining = True
        with contextlib.suppress(StoreError):
            await self._store(self.runtime.store.put_node, self.name, self.info(), self.settings.node_ttl)
        moved = await self.runtime.suspend(f"node {self.name} is draining", handoff=True)
        log.warning("node %s drained: %d job(s) handed to other nodes", self.name, len(moved))
        return moved

    # -- failover --------------------------------------------------------------------------

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            if self.draining:
                continue
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("node %s: sweep failed: %s", self.name, exc)
            except Exception:  # a bug must not stop failover for good
                log.exception("node %s: sweep failed", self.name)

    async def sweep(self, *, startup: bool = False) -> list[dict[str, str]]:
        """Claim the jobs whose owner is gone and apply their policy; what was done to which.

        At ``startup`` every live job is looked at, not only those whose lease expired: a
        runtime of this machine that is provably dead (its control socket is gone) loses its
        jobs at once, and jobs stopped by runtimes outside the cluster resume here.
        """
        store = self.runtime.store
        if startup:
            ids = [r["job_id"] for r in await self._store(store.list_jobs, include_terminal=False)]
        else:
            ids = await self._store(store.unowned_jobs, SWEEP_BATCH)
        if not ids:
            return []
        owners = {n["name"]: n for n in await self._store(store.list_nodes)}
        done = []
        for job_id in ids:
            if self.draining:
                break  # a draining node takes no job
            try:
                action = await self._take(job_id, owners, startup)
            except Exception:  # one job's trouble must not stop the others' failover
                log.exception("node %s: failover of job %s failed", self.name, job_id)
                continue
            if action is not None:
                done.append({"job_id": job_id, "action": action})
        return done

    async def _take(self, job_id: str, owners: dict[str, dict[str, Any]], startup: bool) -> str | None:
        """Apply the policy to one job; what was done (``None``: left alone, or taken by another)."""
        record = await self._store(self.runtime.store.get_job, job_id)
        if record is None or record.get("status") in TERMINAL_STATUSES:
            return None
        action = self._decide(record, owners, startup)
        if action is None:
            return None
        try:
            if action == "recover":
                await self.runtime.control.recover(job_id)
            elif not await self._settle(record, action):
                return None
        except Unrecoverable as exc:  # it would fail on every node: end it, once
            if not await self._settle(record, "fail", str(exc)):
                return None
            action = "fail"
        except (JobStateError, JobNotFound):
            return None  # another node claimed it first, or it ended meanwhile
        log.warning("node %s: job %s of %s: %s", self.name, job_id, record.get("node"), action)
        return action

    def _decide(self, record: dict[str, Any], owners: dict[str, dict[str, Any]], startup: bool) -> str | None:
        """What to do with a live job nobody holds: recover, suspend, fail, or leave it."""
        owner = record.get("node")
        node = owners.get(str(owner))
        if record.get("status") == JobStatus.SUSPENDED:
            if record.get("handoff"):
                return "recover"  # handed off by a draining or stopping node
            # Stopped for an operator; a node starting resumes what it stopped itself (under
            # the same name) and what runtimes outside the cluster (`mn run`, a script) stopped.
            return "recover" if startup and (owner == self.name or node is None) else None
        if owner == self.name:
            return "recover"  # this node, restarted under its name: a local restart
        if node is None:  # not a node's job (`mn run`, a script): `mn job recover`, or a starting server
            return "recover" if startup else None
        policy = record.get("recovery_policy")
        if policy == "manual_recover":
            return "suspend"
        dead_host = (node.get("hardware") or {}).get("host")
        if policy == "cluster_recover" or dead_host == self._hardware.get("host"):
            return "recover"  # local_restart: on the machine it ran on (its files are here)
        if any(
            takes_jobs(n) and n["name"] != owner and (n.get("hardware") or {}).get("host") == dead_host
            for n in owners.values()
        ):
            return None  # a live runtime node of that machine takes it up
        return "fail"

    async def _settle(self, record: dict[str, Any], action: str, reason: str = OWNER_DIED) -> bool:
        """Claim a dead owner's job and store it failed (for ``reason``) or suspended."""
        leases = self.runtime.leases
        job_id = record["job_id"]
        epoch = await leases.claim(job_id) if leases is not None else None
        if epoch is None:
            return False

        def settled(stored: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
            previous = stored.get("node")
            changes: dict[str, Any] = {"node": self.name, "lease_epoch": epoch, "control": None}
            events = [
                ("job_owner_lost", {"node": previous, "epoch": stored.get("lease_epoch")}),
                ("job_claimed", {"node": self.name, "epoch": epoch, "previous": previous}),
            ]
            if action == "fail":
                changes.update(status="failed", result={"agent_id": "job_runner", "error": reason})
                events.append(("job_failed", {"reason": reason}))
            else:
                changes.update(status="suspended", suspended_from=stored.get("status"), handoff=False)
                why = f"its node {previous} died and the job is set to manual_recover"
                events.append(("job_suspended", {"reason": why, "resume_with": f"mn job recover {job_id}"}))
            return changes, events

        written, _ = await settle_stored(self.runtime.host, job_id, epoch, settled)
        return written
