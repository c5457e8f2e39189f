"""Start a real, throwaway ``redis-server`` for tests.

It listens on a free loopback port, keeps nothing on disk (``--save "" --appendonly no``)
and runs in the foreground of a child process that :meth:`RedisServer.stop` kills. The
port is kept across :meth:`RedisServer.restart`, so a client can be tested against a
server that goes away and comes back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from waiting import eventually

__all__ = ["RedisServer", "RedisServerMissing", "free_port", "redis_server_binary"]

STARTUP_TIMEOUT = 10.0


class RedisServerMissing(RuntimeError):
    """``redis-server`` is not installed (``apt-get install redis-server``)."""


def redis_server_binary() -> str | None:
    return os.environ.get("MIRROR_NEURON_TEST_REDIS_SERVER") or shutil.which("redis-server")


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:<port>``, with its own temporary directory."""

    def __init__(
        self, port: int | None = None, *, password: str | None = None, durable: bool = False
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RedisServerMissing("redis-server is not installed; run: apt-get install -y redis-server")
        self.binary = binary
        self.port = port or free_port()
        self.password = password
        #: With an fsync'ed append-only file, a killed server comes back with all its data.
        self.durable = durable
        self._dir = tempfile.TemporaryDirectory(prefix="mn-redis-")
        self._log = Path(self._dir.name) / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server through its Unix socket."""
        return f"unix://{self.socket_path}?db=0"

    @property
    def socket_path(self) -> Path:
        return Path(self._dir.name) / "redis.sock"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.durable else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--dir", self._dir.name,
            "--logfile", str(self._log),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            eventually(self._up, timeout=STARTUP_TIMEOUT, interval=0.01, what=f"redis-server on {self.port}")
        except AssertionError:
            self.kill()
            raise
        return self

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            log = self._log.read_text(errors="replace") if self._log.exists() else ""
            self._proc = None
            raise RuntimeError(f"redis-server on port {self.port} exited at startup:\n{log[-2000:]}")
        return self.ping()

    def ping(self) -> bool:
        """True when the server answers PING (``-NOAUTH`` counts: it is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        """Kill the server and start it again on the same port (empty unless ``durable``)."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        self.kill()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
