"""Control of jobs hosted by another process on this machine.

Every runtime with a persistent store listens on a Unix socket in a per-user directory
(mode 0700, so only the same user can connect) and records the socket in its jobs'
records. ``pause``/``resume``/``cancel``/``send_message`` on a job hosted elsewhere read
the record and send the call there: one JSON line in, one JSON line out.
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


class Unreachable(Exception):
    """The runtime that hosts the job does not answer (it has exited)."""


async def call(endpoint: str, request: dict[str, Any], timeout: float = CALL_TIMEOUT) -> Any:
    """Send one control call; raises the remote error as the same exception type."""
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
    except (ConnectionError, FileNotFoundError, TimeoutError) as exc:
        raise Unreachable(str(exc)) from exc
    if not line:
        raise Unreachable("the runtime closed the connection")
    reply = _json.loads(line)
    if reply.get("ok"):
        return reply.get("result")
    raise rebuild(reply.get("error", "MirrorNeuronError"), reply.get("message", "control call failed"))


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
