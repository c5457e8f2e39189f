"""The web UI of ``mn serve``: the jobs page (``/ui``) and a job's page (``/ui/jobs/{job_id}``).

Why here, and this small: the pages are one static shell whose script (``ui_assets/app.js``,
an ES module importing its sibling modules, no build step) reads the URL and calls
``/api/v1``, so they hold no data and are open without the API token (the script asks for it
on a 401). Everything is served from the package (no CDN), the shell with a strict
Content-Security-Policy (no inline script or style), so text from untrusted bundles that
reaches the page can never run. Only the files of ``ui_assets`` and ``ui_assets/vendor`` are
served, by name; their URLs carry a hash of their content, so browsers may cache them for
good: the shell's links, and the modules' static imports of each other (``from './x.js'``
is served as ``from './x.js?v=<hash>'``, the hash of ``x.js`` as served, its own imports
versioned in turn).
"""

from __future__ import annotations

import hashlib
import html
import re
from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

UI_PREFIX = "/ui"
STATIC = UI_PREFIX + "/static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}
#: Versioned asset URLs (``?v=<hash>``) never change; others are revalidated.
IMMUTABLE = "public, max-age=31536000, immutable"
#: A static import of a sibling module (``import … from './x.js'``, ``import './x.js'``).
SIBLING_IMPORT = re.compile(r"""(\b(?:from|import)\s*)(['"])\./([\w.-]+\.js)\2""")

router = APIRouter(include_in_schema=False)
READS = ["GET", "HEAD"]


class Asset:
    """One file: its bytes, media type and content hash."""

    def __init__(self, name: str, body: bytes) -> None:
        self.name = name
        self.body = body
        self.version = hashlib.sha256(body).hexdigest()[:16]
        suffix = name[name.rfind(".") :] if "." in name else ""
        self.media_type = MEDIA_TYPES.get(suffix, "text/plain; charset=utf-8")


@cache
def assets() -> dict[str, Asset]:
    """Every file of ``ui_assets`` and ``ui_assets/vendor``, by its path under ``/ui/static``.

    The modules of ``ui_assets`` import each other by versioned URLs (see ``_versioned``).
    """
    root = files(__package__ or "mirror_neuron.server") / "ui_assets"
    raw: dict[str, bytes] = {}
    for folder, prefix in ((root, ""), (root / "vendor", "vendor/")):
        for entry in folder.iterdir():
            if entry.is_file() and not entry.name.startswith("."):
                raw[prefix + entry.name] = entry.read_bytes()
    found: dict[str, Asset] = {}
    for name in raw:
        _versioned(name, raw, found, ())
    return found


def _versioned(
    name: str, raw: dict[str, bytes], found: dict[str, Asset], importers: tuple[str, ...]
) -> Asset:
    """The asset ``name``; a module's imports of its siblings carry their hashes (theirs first)."""
    if name in found:
        return found[name]
    if name in importers:  # a hash cannot cover itself
        raise ValueError("ui_assets modules import each other: " + " -> ".join((*importers, name)))
    body = raw[name]
    if name.endswith(".js") and "/" not in name:

        def versioned(match: re.Match[str]) -> str:
            keyword, quote, sibling = match.groups()
            if sibling not in raw:
                return match.group(0)
            version = _versioned(sibling, raw, found, (*importers, name)).version
            return f"{keyword}{quote}./{sibling}?v={version}{quote}"

        body = SIBLING_IMPORT.sub(versioned, body.decode()).encode()
    found[name] = Asset(name, body)
    return found[name]


@cache
def _shell(root: str) -> bytes:
    """The page with ``{{root}}`` and ``{{v:<asset>}}`` filled in (the hashes of the assets)."""
    text = assets()["index.html"].body.decode()
    for name, asset in assets().items():
        text = text.replace("{{v:" + name + "}}", asset.version)
    return text.replace("{{root}}", html.escape(root)).encode()


def _page(request: Request) -> HTMLResponse:
    return HTMLResponse(_shell(str(request.scope.get("root_path", ""))), headers=PAGE_HEADERS)


@router.api_route(UI_PREFIX, methods=READS)
async def jobs_page(request: Request) -> HTMLResponse:
    return _page(request)


@router.api_route(UI_PREFIX + "/", methods=READS)
async def jobs_page_slash(request: Request) -> RedirectResponse:
    return RedirectResponse(str(request.scope.get("root_path", "")) + UI_PREFIX, status_code=308)


@router.api_route(UI_PREFIX + "/jobs/{job_id}", methods=READS)
async def job_page(request: Request, job_id: Annotated[str, Path(max_length=1024)]) -> HTMLResponse:
    return _page(request)  # the script reads the job id from the URL


@router.api_route(STATIC + "/{name:path}", methods=READS)
async def asset(
    request: Request, name: str, v: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    found = assets().get(name)
    if found is None or name == "index.html":
        raise HTTPException(404, "Not Found")
    etag = f'"{found.version}"'
    headers = {
        "Cache-Control": IMMUTABLE if v == found.version else "no-cache",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
