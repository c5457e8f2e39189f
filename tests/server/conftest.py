"""A real uvicorn server on a free loopback port, in a thread, over a temporary store."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from builders import aggregator, manifest, router
from mirror_neuron import Config
from mirror_neuron.server import ServerSettings, create_app
from waiting import eventually

START_TIMEOUT = 10.0


class ServerThread:
    """Runs the app under uvicorn in a background thread (no signal handlers there)."""

    def __init__(self, config: Config, settings: ServerSettings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config, settings)
        uv_config = uvicorn.Config(
            self.app,
            log_level="warning",
            log_config=None,
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        eventually(self._started, timeout=START_TIMEOUT, interval=0.01, what="the server to start")
        return self

    def _started(self) -> bool:
        assert self.thread.is_alive() or self.server.started, "the server's thread ended at start"
        return bool(self.server.started)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def serve(tmp: Path, **settings: Any) -> ServerThread:
    config = Config.from_env({"MIRROR_NEURON_DATA_DIR": str(tmp / "data")}, temp_dir=tmp / "tmp")
    return ServerThread(config, ServerSettings(**settings))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the whole session (short heartbeat so tests can see one)."""
    with serve(
        tmp_path_factory.mktemp("server"),
        heartbeat=0.2,
        max_body_bytes=4 * 1024 * 1024,
        allow_host_local=True,
    ) as srv:
        yield srv


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as client:
        yield client


def collect(n: int, **config: Any) -> dict[str, Any]:
    """entry router → sink aggregator that completes after ``n`` messages (1 comes from the start)."""
    return manifest(
        [router("entry"), aggregator("sink", complete_after=n, **config)], [("entry", "sink", "init")]
    )


def wait_for(api: httpx.Client, job_id: str, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the job's agents over HTTP until ``predicate(agents by id)`` holds."""

    def agents() -> dict[str, Any] | None:
        found = {a["agent_id"]: a for a in api.get(f"/jobs/{job_id}/agents").json()["data"]}
        return found if found and predicate(found) else None

    return eventually(agents, timeout=timeout, interval=0.01, what=f"the agents of job {job_id} to match")
