"""The FastAPI application: one :class:`Runtime` hosts every job submitted to it.

The runtime lives exactly as long as the app (its lifespan): jobs submitted over HTTP
run inside this process, and stopping the server fails the jobs still running, flushes
everything to the store and closes it, as ``Runtime.close`` does for ``mn run``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..config import Config
from ..policy import ExecutionPolicy
from ..runtime import ClusterNode, NodeSettings, Runtime
from .auth import TOKEN_ENV, BearerAuth, LocalOnly
from .docs import DOCS_PATHS, install_docs
from .errors import install_error_handlers
from .middleware import BodyLimit
from .node_routes import router as node_router
from .routes import router
from .settings import ServerSettings
from .ui import router as ui_router
from .upload import Uploads

#: Paths any caller may use without the API token: the health probe and the documentation.
OPEN_PATHS = frozenset({"/api/v1/health", *DOCS_PATHS})


def create_app(config: Config | None = None, settings: ServerSettings | None = None) -> FastAPI:
    """Build the app. Nothing starts until the ASGI server runs its lifespan."""
    settings = settings or ServerSettings()
    config = config or Config.from_env()
    # Bundles come from clients: they get only what the operator allowed; everything else the
    # operator configured (caps, the OpenShell CLI, network allow/deny lists) stays.
    config = config.with_(
        policy=submitted_policy(config.policy, settings),
        api_token=settings.token or config.api_token,
        ship_bundles=True,  # any node of the cluster, on any machine, may have to recover its jobs
    )

    manifest_limits = replace(settings.manifests, max_bytes=settings.max_manifest_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upload_dir = settings.upload_dir or (config.data_dir / "uploads" if config.data_dir else None)
        if upload_dir is not None:
            upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        uploads = Uploads(upload_dir, settings.uploads, manifest_limits)
        runtime = Runtime(config)
        node_settings = NodeSettings(
            role=settings.role, address=settings.advertise, sweep_interval=settings.sweep_interval
        )
        node = ClusterNode(runtime, node_settings, _version())
        handoff = False
        try:
            # Join the cluster; alone in it, resume the jobs whose runtime died (or a previous
            # server); else the sweep hands each to a node as its recovery_mode says.
            await node.start()
            # Then their bundles get an owner again, and a killed server's leftovers go.
            await uploads.sweep(runtime)
            app.state.runtime = runtime
            app.state.uploads = uploads
            app.state.node = node
            yield
        finally:
            # Suspend, do not fail: another node (or the next server on this store) resumes them.
            handoff = await node.stop()
            # Suspended, stored and released first: until then the registry still names this
            # node, so were it killed meanwhile, the others' sweeps would take its jobs over.
            await runtime.suspend("the runtime hosting it stopped", handoff=handoff)
            await node.leave()  # before the store closes with the runtime
            await runtime.close(keep_jobs=True, handoff=handoff)
            uploads.close()

    app = FastAPI(
        title="MirrorNeuron runtime",
        version=_version(),
        description="Submit, inspect and control MirrorNeuron jobs hosted by `mn serve`.",
        lifespan=lifespan,
        docs_url=None,  # replaced by install_docs: the same pages, without a CDN
        redoc_url=None,
    )
    install_docs(app, app.title)
    app.state.settings = settings
    app.state.manifest_limits = manifest_limits
    app.include_router(router)
    app.include_router(node_router)
    app.include_router(ui_router)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.token:
        app.add_middleware(BearerAuth, token=settings.token, open_paths=OPEN_PATHS, open_prefixes=("/ui",))
        app.openapi = lambda: _openapi_with_bearer(app)  # type: ignore[method-assign]
    else:
        app.add_middleware(LocalOnly)
    return app


def submitted_policy(operator: ExecutionPolicy, settings: ServerSettings) -> ExecutionPolicy:
    """The operator's policy with every door for client bundles closed but those ``settings`` open."""
    return operator.with_(
        allow_host_local=settings.allow_host_local,
        allow_openshell=settings.allow_openshell,
        allow_network=settings.allow_network,
        pass_env=frozenset(settings.pass_env),
        max_run_seconds=operator.max_run_seconds or settings.max_run_seconds,
    )


def _openapi_with_bearer(app: FastAPI) -> dict[str, Any]:
    """Document that every route (but health) needs the bearer token."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": f"The server's API token (`mn serve --token` or {TOKEN_ENV}).",
            }
        }
        schema["security"] = [{"bearer": []}]
        schema["paths"]["/api/v1/health"]["get"]["security"] = []
        app.openapi_schema = schema
    return app.openapi_schema


def _version() -> str:
    from .. import __version__

    return __version__
