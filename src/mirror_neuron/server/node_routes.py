"""``/api/v1`` cluster routes: the nodes, draining one, and node-to-node control calls."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Request

from .. import _json
from ..errors import MirrorNeuronError
from ..runtime import Runtime
from . import schemas as s

router = APIRouter(prefix="/api/v1")

NodeName = Annotated[str, Path(max_length=256, description="Node name (`mn serve --node-name`).")]


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


@router.get("/nodes", response_model=s.NodeList, tags=["cluster"], responses=s.JOB_ERRORS)
async def nodes(request: Request) -> dict[str, Any]:
    """Every node of the cluster on this store: alive or lately dead, with what it hosts and has free."""
    return {"data": await _runtime(request).inspect_nodes()}


@router.post(
    "/nodes/{name}/drain",
    status_code=202,
    response_model=s.Drain,
    tags=["cluster"],
    responses=s.JOB_ERRORS,
)
async def drain(request: Request, name: NodeName) -> dict[str, Any]:
    """Ask a node to hand its jobs to the other nodes and take no new ones (it acts within a heartbeat)."""
    await _runtime(request).drain_node(name)
    return {"node": name, "drain": True}


@router.post("/internal/control", include_in_schema=False)
async def control(request: Request) -> dict[str, Any]:
    """A control call from another node for a job hosted here (the control socket's protocol)."""
    try:
        call = _json.loads(await request.body())
        if not isinstance(call, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return {"ok": False, "error": "MirrorNeuronError", "message": f"malformed control call: {exc}"}
    try:
        return {"ok": True, "result": await _runtime(request).control.serve(call)}
    except MirrorNeuronError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
