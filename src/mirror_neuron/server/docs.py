"""The API documentation, ``/docs`` (Swagger UI) and ``/redoc``, served whole by this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they stay blank on a machine
without internet access. Here the pages point at copies served under :data:`ASSET_PREFIX`:
the files the ``fastapi-offline`` package (MIT) ships, Swagger UI's bundle and stylesheet
and ReDoc's standalone script. Only those named files are served, never a directory.

With an API token the pages still open: they, their assets and ``/openapi.json`` hold
nothing a caller could act on without the token (:data:`DOCS_PATHS` are left open by the
bearer check). The OpenAPI document then declares the bearer scheme, so Swagger UI's
*Authorize* button takes the token and sends it as an ``Authorization`` header with every
request it makes (``persistAuthorization`` keeps it in the browser across reloads). The
token never goes into a URL, where access logs and browser history would keep it.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
ASSET_PREFIX = "/docs-assets"
#: Asset file name → media type; nothing else under :data:`ASSET_PREFIX` is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
#: Paths open without the API token: the pages, their assets and the OpenAPI document.
DOCS_PATHS = frozenset({DOCS_URL, REDOC_URL, OPENAPI_URL, *(f"{ASSET_PREFIX}/{name}" for name in ASSETS)})
SWAGGER_PARAMETERS = {
    "persistAuthorization": True,  # the token typed into "Authorize" survives a reload
    "validatorUrl": None,  # Swagger UI would otherwise send the document to validator.swagger.io
}
ASSET_CACHE = "public, max-age=86400"


def asset_dir() -> Path:
    """The folder of the ``fastapi-offline`` package's files, found without importing it."""
    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package is not installed: pip install fastapi-offline")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs(app: FastAPI, title: str) -> None:
    """Add the pages and their assets to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    folder = asset_dir()
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_URL)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @router.get(REDOC_URL)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSET_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(ASSET_PREFIX + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, "Not Found")
        return FileResponse(folder / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})

    app.include_router(router)
