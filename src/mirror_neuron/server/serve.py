"""Running the app under uvicorn for ``mn serve``."""

from __future__ import annotations

import re
import sys

from ..config import Config
from .app import create_app
from .auth import check_bind
from .settings import ServerSettings

#: Seconds open connections (event streams) get to finish when the server stops.
GRACEFUL_SHUTDOWN = 3


def serve(config: Config, settings: ServerSettings, *, log_level: str = "info") -> None:
    """Listen until interrupted. Refuses a non-loopback address without a token."""
    import uvicorn

    check_bind(settings.host, settings.token, settings.min_token_length)
    check_store(config)
    app = create_app(config, settings)
    auth = "bearer token required" if settings.token else "no token: loopback only"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    where = f"http://{host}:{settings.port}/api/v1"
    print(f"mn serve: {where} ({auth}); docs at /docs; store {_redact(config.store_url)}", file=sys.stderr)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


def check_store(config: Config) -> None:
    """Open and close the store once, before the server starts.

    A store that cannot be opened (a corrupt or empty file, an unreachable Redis) then stops
    ``mn serve`` with one StoreError line, not a traceback from inside the server's start-up.
    """
    from ..store import open_store

    open_store(config.store_url).close()


def _redact(url: str) -> str:
    """Hide credentials in a store URL (``redis://:secret@host`` → ``redis://***@host``)."""
    return re.sub(r"//[^/@]*@", "//***@", url)
