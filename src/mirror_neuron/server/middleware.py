"""Plain ASGI middleware (no buffering, so event streams pass through untouched)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _json


async def send_json(send: Send, status: int, body: object, headers: dict[str, str] | None = None) -> None:
    data = _json.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes, declared or streamed.

    A declared ``Content-Length`` over the limit is answered at once; a body that grows
    past it while being read raises a 413 ``HTTPException`` inside the app (FastAPI lets
    those through its body parsing), so an unannounced huge upload is cut off early.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await send_json(send, 413, {"error": self.message})
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited, send)

    @property
    def message(self) -> str:
        return f"request body is larger than the server's limit of {self.limit} bytes"
