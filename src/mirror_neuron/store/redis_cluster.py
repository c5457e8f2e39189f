"""Job leases, fencing and the node registry of the Redis store (:mod:`.ownership`).

:class:`RedisOwnership` is a mixin of :class:`~.redis.RedisStore`: each method is one Lua
script of :mod:`.keys_cluster`, run through the store's retrying ``_call``. The fencing
check itself is part of the write script; :func:`fence_args` and :func:`fenced` are its
Python side.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from redis.exceptions import ResponseError

from ..errors import LeaseLost
from .keys import CREATION_DIGITS, Keys
from .keys_cluster import LEASE_SUFFIX
from .ownership import NODE_FORGET, Lease, node_view

__all__ = ["RedisOwnership", "fence_args", "fenced"]

T = TypeVar("T")

#: The write script's error for stale epochs: 1-based positions in the batch's ``epochs``.
_FENCED = re.compile(r"^MNSTORE FENCED ((?:\d+ ?)+)")


class _Store(Protocol):
    """What the mixin uses of :class:`~.redis.RedisStore`."""

    @property
    def keys(self) -> Keys: ...

    @property
    def url(self) -> str: ...

    @property
    def _scripts(self) -> Mapping[str, Callable[..., Any]]: ...

    def _call(self, action: str, fn: Callable[[int], T]) -> T: ...

    def _encode(self, value: dict[str, Any], what: str) -> bytes: ...

    def _decode(self, raw: bytes | str, what: str) -> Any: ...


def _run(store: _Store, name: str, action: str, keys: list[str], args: list[Any]) -> Any:
    """Run the script ``name`` once (retried on connection errors); its reply."""
    script = store._scripts[name]
    return store._call(action, lambda _attempt: script(keys=keys, args=args))


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


def fence_args(keys: Keys, epochs: Mapping[str, int], key_list: list[Any], args: list[Any]) -> None:
    """Append the write script's epochs section: the epoch counters, count, (job id, epoch)s."""
    args.append(len(epochs))
    for job_id, epoch in epochs.items():
        key_list.append(keys.epoch(job_id))
        args += (job_id, int(epoch))


def fenced(epochs: Mapping[str, int], call: Callable[[], T]) -> T:
    """``call()``, raising :class:`LeaseLost` when the write script refused stale epochs."""
    try:
        return call()
    except ResponseError as exc:
        match = _FENCED.match(str(exc))
        if match is None:
            raise
        job_ids = list(epochs)
        raise LeaseLost(job_ids[int(n) - 1] for n in match[1].split()) from exc


class RedisOwnership:
    """:class:`~.ownership.Ownership` for :class:`~.redis.RedisStore`."""

    def claim_job(self: _Store, job_id: str, node: str, ttl: float, *, steal: bool = False) -> int | None:
        k = self.keys
        epoch = _run(
            self,
            "claim_job",
            f"claiming job {job_id}",
            [k.epoch(job_id), k.lease(job_id)],
            [node, _ms(ttl), 1 if steal else 0],
        )
        return None if epoch is None else int(epoch)

    def renew_leases(self: _Store, node: str, leases: Mapping[str, int], ttl: float) -> list[str]:
        if not leases:
            return []
        key_list: list[str] = []
        args: list[Any] = [node, _ms(ttl)]
        for job_id, epoch in leases.items():
            key_list += (self.keys.epoch(job_id), self.keys.lease(job_id))
            args += (job_id, int(epoch))
        lost = _run(self, "renew_leases", f"renewing the leases of node {node}", key_list, args)
        return [job_id.decode("utf-8", "replace") for job_id in lost]

    def release_job(self: _Store, job_id: str, node: str, epoch: int) -> bool:
        k = self.keys
        key_list = [k.epoch(job_id), k.lease(job_id)]
        return bool(_run(self, "release_job", f"releasing job {job_id}", key_list, [node, int(epoch)]))

    def get_lease(self: _Store, job_id: str) -> Lease | None:
        reply = _run(self, "get_lease", f"reading the lease of job {job_id}", [self.keys.lease(job_id)], [])
        if reply is None:
            return None
        node, epoch, left_ms = reply
        return Lease(job_id, node.decode("utf-8", "replace"), int(epoch), int(left_ms) / 1000)

    def unowned_jobs(self: _Store, limit: int = 100) -> list[str]:
        args = [limit, self.keys.job_prefix, LEASE_SUFFIX, CREATION_DIGITS]
        ids = _run(self, "unowned_jobs", "listing unowned jobs", [self.keys.live], args)
        return [job_id.decode("utf-8", "replace") for job_id in ids]

    def put_node(self: _Store, name: str, info: Mapping[str, Any], ttl: float) -> None:
        data = self._encode(dict(info), f"the info of node {name}")
        k = self.keys
        _run(self, "put_node", f"registering node {name}", [k.nodes, k.nodes_seen], [name, data, _ms(ttl)])

    def list_nodes(self: _Store) -> list[dict[str, Any]]:
        k = self.keys
        key_list = [k.nodes, k.nodes_seen, k.nodes_drain]
        flat = _run(self, "list_nodes", "listing nodes", key_list, [_ms(NODE_FORGET)])
        now = int(flat[0]) / 1000
        nodes = []
        for i in range(1, len(flat), 5):
            name = flat[i].decode("utf-8", "replace")
            info = self._decode(flat[i + 1], f"the info of node {name}")
            seen, ttl, drain = int(flat[i + 2]) / 1000, int(flat[i + 3]) / 1000, bool(flat[i + 4])
            nodes.append(node_view(name, info, seen, ttl, now, drain))
        return sorted(nodes, key=lambda node: str(node["name"]))

    def request_drain(self: _Store, name: str) -> bool:
        key_list = [self.keys.nodes, self.keys.nodes_drain]
        return bool(_run(self, "request_drain", f"asking node {name} to drain", key_list, [name]))

    def remove_node(self: _Store, name: str) -> None:
        k = self.keys
        _run(self, "remove_node", f"removing node {name}", [k.nodes, k.nodes_seen, k.nodes_drain], [name])
