"""Control of jobs hosted by another process: on this machine, or on a node of the cluster.

Every runtime with a persistent store listens on a Unix socket in a per-user directory
(mode 0700, so only the same user can connect) and records the socket in its jobs'
records. ``pause``/``resume``/``cancel``/``send_message`` on a job hosted elsewhere read
the record and send the call there: one JSON line in, one JSON line out. A node of a
cluster (``mn serve``) takes the same call as an HTTP POST of that line to
``<its address>/api/v1/internal/control``, with the cluster's API token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import _json, errors

SCHEME = "unix://"
CALL_TIMEOUT = 15.0
MAX_LINE = 64 * 1024 * 1024

_ERRORS: dict[str, type[errors.MirrorNeuronError]] = {
    cls.__name__: cls
    for cls in (
        errors.JobNotFound,
        errors.NotHosted,
        errors.AgentNotFound,
        errors.JobStateError,
        errors.MailboxFull,
        errors.MessageError,
        errors.NotFound,
        errors.StoreError,
        errors.MirrorNeuronError,
    )
}


def socket_dir() -> Path:
    """A short per-user directory (Unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.gettempdir()) / f"mirror_neuron-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class ControlServer:
    """Serves control calls for the jobs of one runtime."""

    def __init__(self, handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.handler = handler
        self.path = socket_dir() / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self.endpoint = SCHEME + str(self.path)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = {"ok": True, "result": await self.handler(_json.loads(line))}
                except errors.MirrorNeuronError as exc:
                    reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
                except Exception as exc:  # never take the runtime down for a bad request
                    reply = {
                        "ok": False,
                        "error": "MirrorNeuronError",
                        "message": f"control call failed: {exc}",
                    }
                writer.write(_json.dumps(reply) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class NodeClient:
    """The HTTP client for calls to the nodes of a cluster, one per runtime, made on first use.

    Building an ``httpx.AsyncClient`` costs ~50 ms of CPU (its TLS context): once per call,
    that blocked the event loop and made every forwarded call ~100 ms.
    """

    def __init__(self) -> None:
        self._client: Any = None

    def get(self) -> Any:
        """The ``httpx.AsyncClient`` (keeps connections to the nodes open between calls)."""
        if self._client is None:
            import httpx  # only nodes of a cluster need it

            self._client = httpx.AsyncClient(timeout=CALL_TIMEOUT)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class Unreachable(Exception):
    """The runtime that hosts the job does not answer (it has exited).

    ``refused`` is True only when its socket file exists here and nobody listens on it: the
    proof that its process is gone (a missing file or a timeout proves nothing).
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


async def call(
    endpoint: str,
    request: dict[str, Any],
    timeout: float = CALL_TIMEOUT,
    token: str | None = None,
    client: NodeClient | None = None,
) -> Any:
    """Send one control call; raises the remote error as the same exception type."""
    if endpoint.startswith(("http://", "https://")):
        return await _call_node(endpoint, request, timeout, token, client or NodeClient())
    if not endpoint.startswith(SCHEME):
        raise Unreachable(f"unsupported control endpoint {endpoint!r}")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(endpoint[len(SCHEME) :], limit=MAX_LINE)
            try:
                writer.write(_json.dumps(request) + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except ConnectionRefusedError as exc:
        raise Unreachable(str(exc), refused=True) from exc
    except (ConnectionError, FileNotFoundError, TimeoutError) as exc:
        raise Unreachable(str(exc)) from exc
    if not line:
        raise Unreachable("the runtime closed the connection")
    return _answer(_json.loads(line))


def _answer(reply: Any) -> Any:
    """The result of a control reply, or the remote error raised here."""
    if not isinstance(reply, dict):
        raise errors.MirrorNeuronError(f"a control call got a malformed reply: {str(reply)[:200]}")
    if reply.get("ok"):
        return reply.get("result")
    raise rebuild(reply.get("error", "MirrorNeuronError"), reply.get("message", "control call failed"))


async def _call_node(
    address: str, request: dict[str, Any], timeout: float, token: str | None, client: NodeClient
) -> Any:
    """A control call to a node of the cluster, over its HTTP API."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = address.rstrip("/") + "/api/v1/internal/control"
    try:
        response = await client.get().post(
            url, content=_json.dumps(request), headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise Unreachable(f"{address}: {exc or type(exc).__name__}") from exc
    if response.status_code in (401, 403):
        raise errors.MirrorNeuronError(
            f"node {address} refused the call ({response.status_code}): every node of a cluster "
            "needs the same API token (MIRROR_NEURON_API_TOKEN)"
        )
    if response.status_code != 200:
        raise Unreachable(f"{address} answered {response.status_code}")
    try:
        reply = response.json()
    except ValueError as exc:
        raise Unreachable(f"{address} answered with something other than JSON") from exc
    return _answer(reply)


def rebuild(name: str, message: str) -> errors.MirrorNeuronError:
    """The exception a remote runtime raised, as the same class with the same message."""
    cls = _ERRORS.get(name, errors.MirrorNeuronError)
    exc = cls.__new__(cls)
    errors.MirrorNeuronError.__init__(exc, message)
    return exc


async def live_runtimes(timeout: float = 2.0) -> list[dict[str, Any]]:
    """Ask every runtime of this user on this machine to describe itself; stale sockets are removed."""
    found: list[dict[str, Any]] = []
    for path in sorted(socket_dir().glob("*.sock")):
        try:
            found.append(await call(SCHEME + str(path), {"op": "node"}, timeout=timeout))
        except Unreachable:
            with contextlib.suppress(OSError):
                path.unlink()
        except errors.MirrorNeuronError:
            continue
    return found
