"""Where a job submitted to any node of a cluster runs: the live runtime node with the most
free capacity for it.

Capacity is read from the nodes' heartbeats (about a second old), so jobs placed since a
node's last heartbeat (``seen_at``, monotonic seconds) are counted against it as well: a
burst of submissions spreads over the nodes instead of landing on the one that looked
freest a second ago. A node without
an executor pool the job needs (or with fewer slots than one of its executors asks) is
never chosen; when none is left the submission fails, naming what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..bundle.model import Manifest
from ..errors import NoEligibleNode

#: Seconds a placement counts against a node whose heartbeat time is not known.
RECENT = 3.0


def pool_needs(manifest: Manifest) -> dict[str, int]:
    """The executor pools the job's executors use, each with the most slots one run takes."""
    needs: dict[str, int] = {}
    for node in manifest.nodes:
        if node.kind != "executor":
            continue
        config = node.config or {}
        pool = str(config.get("pool") or "default")
        slots = config.get("pool_slots")
        slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
        needs[pool] = max(slots, needs.get(pool, 0))
    return needs


def _free(node: dict[str, Any], needs: dict[str, int]) -> int:
    pools = node.get("executor_pools") or {}
    wanted = needs or {"default": 0}
    return sum(
        max(
            int(pools[p].get("capacity", 0))
            - int(pools[p].get("in_use", 0))
            - int(pools[p].get("queued", 0)),
            0,
        )
        for p in wanted
        if p in pools
    )


def _missing(node: dict[str, Any], needs: dict[str, int]) -> list[str]:
    """What a node lacks for the job: pools it has not, or has with too few slots."""
    pools = node.get("executor_pools") or {}
    out = []
    for pool, slots in sorted(needs.items()):
        if pool not in pools:
            out.append(f"pool {pool}")
        elif int(pools[pool].get("capacity", 0)) < slots:
            out.append(f"{slots} slots of pool {pool}")
    return out


def takes_jobs(node: dict[str, Any]) -> bool:
    """Whether a node (as ``list_nodes`` shows it) may take a job: alive, a runtime node, not
    draining (asked to, or doing it), healthy."""
    return bool(
        node.get("alive")
        and node.get("role") == "runtime"
        and not node.get("drain")
        and not node.get("draining")
        and node.get("health", "ok") == "ok"
    )


def runtime_nodes(nodes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes that may take a job (:func:`takes_jobs`)."""
    return [n for n in nodes if takes_jobs(n)]


@dataclass
class Placer:
    """Chooses nodes for jobs, remembering its own recent choices (see the module doc)."""

    #: Node name → when jobs were placed there (monotonic seconds), until its next heartbeat.
    recent: dict[str, list[float]] = field(default_factory=dict)

    def choose(
        self, nodes: Iterable[dict[str, Any]], manifest: Manifest, pin: str | None = None
    ) -> tuple[str, str]:
        """``(node name, reason)`` for the job of ``manifest``.

        Raises:
            NoEligibleNode: no live runtime node (or not ``pin``) can host it; says why.
        """
        needs = pool_needs(manifest)
        live = runtime_nodes(nodes)
        if pin is not None:
            match = [n for n in live if n["name"] == pin]
            if not match:
                known = ", ".join(n["name"] for n in live) or "none"
                raise NoEligibleNode(
                    f"node {pin} is not a live runtime node of the cluster (live runtime nodes: {known})"
                )
            lacking = _missing(match[0], needs)
            if lacking:
                raise NoEligibleNode(f"node {pin} cannot host this job: it has no {', '.join(lacking)}")
            self._placed(pin)
            return pin, "pinned (--node)"
        if not live:
            raise NoEligibleNode("no live runtime node in the cluster can host the job (start `mn serve`)")
        eligible = [n for n in live if not _missing(n, needs)]
        if not eligible:
            lacks = "; ".join(f"{n['name']} has no {', '.join(_missing(n, needs))}" for n in live)
            raise NoEligibleNode(f"no live runtime node has the executor pools this job needs: {lacks}")
        now = time.monotonic()
        best = max(eligible, key=lambda n: self._score(n, needs, now))
        free, load = _free(best, needs), self._load(best, now)
        self._placed(best["name"])
        reason = (
            f"most free capacity of {len(eligible)} eligible node(s): {free} free executor slot(s), "
            f"{load} job(s), {int(best.get('agents') or 0)} agent(s) hosted"
        )
        return best["name"], reason

    def _load(self, node: dict[str, Any], now: float) -> int:
        """Jobs hosted at the node's last heartbeat, plus those placed there since."""
        since = node.get("seen_at", now - RECENT)
        recent = [t for t in self.recent.get(node["name"], []) if t > since and now - t < RECENT * 10]
        self.recent[node["name"]] = recent
        return int(node.get("jobs") or 0) + len(recent)

    def _score(self, node: dict[str, Any], needs: dict[str, int], now: float) -> tuple[int, int, int, str]:
        load = self._load(node, now)
        # More free slots first; then fewer jobs (recent placements included), fewer agents, the name.
        free = _free(node, needs) - load * sum(needs.values())
        return free, -load, -int(node.get("agents") or 0), node["name"]

    def _placed(self, name: str) -> None:
        self.recent.setdefault(name, []).append(time.monotonic())
