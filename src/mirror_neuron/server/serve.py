"""Running the app under uvicorn for ``mn serve``."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import replace

from ..config import Config
from ..errors import MirrorNeuronError
from .app import create_app
from .auth import check_bind
from .settings import ServerSettings

#: Seconds open connections (event streams) get to finish when the server stops.
GRACEFUL_SHUTDOWN = 3
#: Exit status when the app fails to start (uvicorn.run's).
STARTUP_FAILURE = 3
#: Pending connections the listening socket queues (uvicorn's default backlog).
LISTEN_BACKLOG = 2048


def serve(config: Config, settings: ServerSettings, *, log_level: str = "info") -> None:
    """Listen until interrupted. Refuses a non-loopback address without a token."""
    import uvicorn

    from ..store import redact_url

    check_bind(settings.host, settings.token, settings.min_token_length)
    # The port first: a server that cannot listen must not recover (take over) any job.
    sock = listen(settings.host, settings.port)
    try:
        check_store(config)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        port = sock.getsockname()[1]  # the port that --port 0 got
        if settings.advertise is None:
            settings = replace(settings, advertise=f"http://{advertised_host(settings.host)}:{port}")
        check_cluster(config, settings)
        app = create_app(config, settings)
        auth = "bearer token required" if settings.token else "no token: loopback only"
        where = f"http://{host}:{port}/api/v1"
        print(
            f"mn serve: {where} ({auth}); web UI at http://{host}:{port}/ui; docs at /docs; "
            f"store {redact_url(config.store_url)}; "
            f"node {config.node_name} ({settings.role}, advertised as {settings.advertise})",
            file=sys.stderr,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=log_level,
                ws="none",
                server_header=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            )
        )
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C stops the server (as uvicorn.run has it)
            pass
    finally:
        sock.close()
    if not server.started:  # the app's start-up failed (uvicorn logged why), as uvicorn.run exits
        sys.exit(STARTUP_FAILURE)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, for uvicorn to serve on.

    It listens at once: only a listening socket holds the port against another ``mn serve``
    (with SO_REUSEADDR, Linux lets two sockets bind one port while neither listens).

    The protocol is named (``IPPROTO_TCP``): asyncio sets ``TCP_NODELAY`` only on connections
    of such a socket, and without it every response on a kept-alive connection waited ~40 ms
    for a delayed ACK (Nagle's algorithm).

    Raises MirrorNeuronError ("cannot listen on 127.0.0.1:4000: address already in use").
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: not past a live listener
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else (exc.strerror or str(exc))
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise MirrorNeuronError(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from exc
    return sock


def advertised_host(bind: str) -> str:
    """The host other nodes use to reach a server bound to ``bind`` (a wildcard: this host's name)."""
    if bind in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{bind}]" if ":" in bind else bind


def check_cluster(config: Config, settings: ServerSettings) -> None:
    """Refuse, before serving, to join a cluster this node does not fit: nodes of another
    version, or a live node of the same name. Raises ConfigError saying which."""
    from ..runtime import NodeSettings, check_join
    from ..store import open_store

    NodeSettings(role=settings.role)  # ConfigError for a role that is none
    store = open_store(config.store_url)
    try:
        nodes = store.list_nodes()
    finally:
        store.close()
    check_join(nodes, config.node_name, _version())


def _version() -> str:
    from .. import __version__

    return __version__


def check_store(config: Config) -> None:
    """Open and close the store once, before the server starts.

    A store that cannot be opened (a corrupt or empty file, an unreachable Redis) then stops
    ``mn serve`` with one StoreError line, not a traceback from inside the server's start-up.
    """
    from ..store import open_store

    open_store(config.store_url).close()
