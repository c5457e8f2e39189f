"""The one place where exceptions become HTTP responses.

Every error body is ``{"error": "<one sentence>"}`` (plus ``errors``, every problem, for
bad input), and the status says who must act: 4xx for the caller, 5xx only for the
server itself. Handlers never re-word runtime messages: the CLI and the API say the same.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    ExecutionError,
    InvalidCursor,
    JobStateError,
    JobTimeout,
    MailboxFull,
    ManifestError,
    MessageError,
    MirrorNeuronError,
    NoEligibleNode,
    NotFound,
    StoreError,
)

log = logging.getLogger("mirror_neuron.server")

#: Seconds a client should wait before re-sending to a full mailbox.
RETRY_AFTER = "1"


class BadUpload(MirrorNeuronError):
    """An uploaded bundle archive is unusable (not a zip, unsafe entries)."""


class UploadTooLarge(BadUpload):
    """An upload or one of its entries is over a size or count limit."""


class ManifestTooLarge(UploadTooLarge):
    """A manifest (JSON body or ``manifest.json`` of an upload) has more bytes than the server takes."""


class MessageTooLarge(UploadTooLarge):
    """A message body has more bytes than any message may (checked before it is parsed)."""


class ManifestOverLimit(ManifestError):
    """A manifest has more nodes, edges or initial inputs than the server takes (each problem named)."""


# First match wins, so subclasses come before their bases.
STATUS: tuple[tuple[type[MirrorNeuronError], int], ...] = (
    (NotFound, 404),
    (JobStateError, 409),
    (MailboxFull, 429),
    (JobTimeout, 408),
    (ManifestError, 422),
    (InvalidCursor, 422),
    (MessageError, 422),
    (UploadTooLarge, 413),
    (BadUpload, 400),
    (StoreError, 503),
    (ExecutionError, 503),  # e.g. this host cannot provide the sandbox
    (NoEligibleNode, 503),  # no node of the cluster can host the job now
    (MirrorNeuronError, 400),
)


def status_of(exc: MirrorNeuronError) -> int:
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def _mirror_neuron_error(request: Request, exc: MirrorNeuronError) -> JSONResponse:
    status = status_of(exc)
    headers = {"Retry-After": RETRY_AFTER} if isinstance(exc, MailboxFull) else None
    extra = {"errors": exc.errors} if isinstance(exc, ManifestError) else {}
    return error_response(status, str(exc), headers, **extra)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid value')}" if where else str(error.get("msg"))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [_describe(e) for e in exc.errors()]
    return error_response(422, f"invalid request: {'; '.join(problems)}", errors=problems)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}")


Handler = Callable[[Request, Any], Awaitable[JSONResponse]]
#: Starlette picks the handler by the exception's MRO.
HANDLERS: tuple[tuple[type[Exception], Handler], ...] = (
    (MirrorNeuronError, _mirror_neuron_error),
    (RequestValidationError, _validation_error),
    (HTTPException, _http_error),
    (Exception, _unexpected),
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""
    for exc_class, handler in HANDLERS:
        app.add_exception_handler(exc_class, handler)
