"""A node's part in the cluster's API: where a submitted job runs, and sending it there.

A job submitted to any node is placed (:class:`~mirror_neuron.runtime.placement.Placer`)
on the live runtime node with the most free capacity for it; when that is another node,
the request is sent on to it as it came (the JSON manifest, or the zip upload) with the
cluster's token and the placement in :data:`PLACED`, and its answer is returned. A node
receiving a placed request hosts the job itself: a request is forwarded at most once.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse

from .. import _json
from ..bundle import manifest_from_data  # the graph only: executor files are checked where it runs
from ..errors import ManifestError, MirrorNeuronError, NoEligibleNode
from ..runtime import ClusterNode, Runtime, runtime_nodes

#: Header of a request another node placed here (its value: why this node).
PLACED = "X-MirrorNeuron-Placed"
#: Seconds a forwarded submission may take (validation of a big bundle included).
FORWARD_TIMEOUT = 60.0
#: Nodes tried for one submission before giving up (one may have died since its heartbeat).
ATTEMPTS = 2
#: Longest placement reason taken from a request header (it becomes an event).
MAX_REASON = 300


class NodeUnreachable(NoEligibleNode):
    """The chosen node did not take the connection: it never got the job, another may."""


def node_of(request: Request) -> ClusterNode:
    return cast(ClusterNode, request.app.state.node)


async def place(
    request: Request, raw: Any, skip: frozenset[str] = frozenset()
) -> tuple[str | None, str | None]:
    """``(node to forward to, placement reason)``; ``(None, reason)`` hosts the job here.

    A request placed by another node, and a runtime node alone in the cluster, host it here
    without a choice (reason ``None``: no ``job_placed`` event).

    Raises:
        NoEligibleNode: no node can host it (no runtime node alive, a pool missing, a bad pin).
        ManifestError: (only when no node here may host it) the manifest is invalid.
    """
    node = node_of(request)
    pin = request.query_params.get("node") or None
    placed = request.headers.get(PLACED)
    if node.hosts_jobs and placed is not None:  # placed by a node (or a caller who may pin anyway)
        return None, "".join(c for c in placed[:MAX_REASON] if c.isprintable())
    views = [n for n in (await node.refresh()).values() if n["name"] not in skip]
    live = runtime_nodes(views)
    if pin is None and node.hosts_jobs and [n["name"] for n in live] == [node.name]:
        return None, None
    try:
        manifest = await asyncio.to_thread(manifest_from_data, raw)
    except ManifestError:
        if node.hosts_jobs and pin is None:
            return None, None  # hosted here, where submitting reports every error
        raise
    name, reason = node.placer.choose(views, manifest, pin)
    return (None, reason) if name == node.name else (name, reason)


async def forward(request: Request, target: str, reason: str, **send: Any) -> JSONResponse:
    """Send the submission to node ``target`` and answer with what it answered.

    Raises:
        NoEligibleNode: the node is gone from the registry or does not answer.
    """
    import httpx

    node = node_of(request)
    view = node.nodes.get(target) or {}
    address = view.get("address")
    if not address:
        raise NodeUnreachable(f"node {target} was chosen for the job but advertises no address")
    runtime = cast(Runtime, request.app.state.runtime)
    token = runtime.config.api_token
    headers = {PLACED: reason, **({"Authorization": f"Bearer {token}"} if token else {})}
    if "content" in send:
        headers["Content-Type"] = request.headers.get("content-type", "application/json")
    url = f"{str(address).rstrip('/')}{request.url.path}"
    try:
        response = await runtime.node_client.get().post(url, headers=headers, timeout=FORWARD_TIMEOUT, **send)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # it never got the job: try another
        raise NodeUnreachable(
            f"node {target} chosen for the job does not answer at {address}: {exc}"
        ) from exc
    except httpx.HTTPError as exc:  # it may have the job already: never submit it twice
        raise MirrorNeuronError(
            f"node {target} did not answer the forwarded job in time ({exc}); see `mn job list`"
        ) from exc
    if response.status_code in (401, 403):
        raise NoEligibleNode(
            f"node {target} refused the forwarded job ({response.status_code}): every node of a cluster "
            "needs the same API token (MIRROR_NEURON_API_TOKEN)"
        )
    try:
        body = response.json()
    except ValueError:
        body = {"error": f"node {target} answered {response.status_code} without JSON"}
    return JSONResponse(body, status_code=response.status_code)


async def placed_submit(request: Request, raw: Any, **send: Any) -> tuple[JSONResponse | None, str | None]:
    """Place a submission: ``(the forwarded answer, None)``, or ``(None, reason)`` to host it here.

    A chosen node that does not answer is skipped once for the next best.
    """
    skipped: frozenset[str] = frozenset()
    for attempt in range(ATTEMPTS):
        target, reason = await place(request, raw, skipped)
        if target is None:
            return None, reason
        assert reason is not None
        try:
            return await forward(request, target, reason, **send), None
        except NodeUnreachable:
            if attempt + 1 == ATTEMPTS:
                raise
            skipped |= {target}
    raise NoEligibleNode(f"no node answered (tried {', '.join(sorted(skipped))})")


def upload_manifest(data: bytes, max_bytes: int) -> Any:
    """The decoded ``manifest.json`` of a zipped bundle, for placement (``None`` if unreadable:
    the node hosting it then reports the problem)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("manifest.json")
            if info.file_size > max_bytes:
                return None
            return _json.loads(archive.read(info))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError):
        return None


__all__ = ["PLACED", "forward", "place", "placed_submit", "upload_manifest"]
