"""Hostile bundles and clients against a real ``mn serve`` (a subprocess) and real bubblewrap.

Two servers for the whole session, as an operator would run them:

* ``default_server``: ``mn serve`` with no options: submitted bundles get the sandbox only;
* ``open_server``: ``--allow-network --allow-host-local --pass-env SAFE_API_TOKEN``, the
  most an operator can open up, to show that what stays closed stays closed.

Both run with secrets in their environment. Every test ends by checking that the server
it attacked still works: healthy, runs a job to completion and stores its events.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import aggregator, manifest, router
from mirror_neuron.execution import sandbox_available
from redis_server import free_port

#: Values in the servers' environment that no bundle may ever see in a result or event.
SERVER_SECRET = "srv-db-password-9f8e7d6c5b4a"
ALLOWED_SECRET = "allowed-api-token-0a1b2c3d4e5f"
START_TIMEOUT = 60.0
READY_LINE = "Application startup complete"


class MnServer:
    """``python -m mirror_neuron serve`` in its own data and temp directories."""

    def __init__(self, root: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        root.chmod(0o711)  # like /var/lib: others may pass through, not list
        self.data_dir = root / "data"
        self.temp_dir = root / "tmp"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.flags = flags
        self.env = {
            **os.environ,
            "MIRROR_NEURON_DATA_DIR": str(self.data_dir),
            "MIRROR_NEURON_TEMP_DIR": str(self.temp_dir),
            "SERVER_DB_PASSWORD": SERVER_SECRET,
            "SAFE_API_TOKEN": ALLOWED_SECRET,
            **(env or {}),
        }
        self.env.pop("MIRROR_NEURON_API_TOKEN", None)
        self.proc: subprocess.Popen[str] | None = None
        self.stderr: list[str] = []

    def start(self) -> MnServer:
        argv = [sys.executable, "-m", "mirror_neuron", "serve", "--port", str(self.port), *self.flags]
        self.proc = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("mn serve did not start:\n" + "".join(self.stderr))
        return self

    def _read_stderr(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if READY_LINE in line:
                ready.set()
        ready.set()  # exited: let start() see it

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 60), **kwargs)

    def mn(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The ``mn`` CLI on this server's store."""
        argv = [sys.executable, "-m", "mirror_neuron", "--data-dir", str(self.data_dir), *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def assert_healthy(self) -> None:
        """The server still answers, runs a job to completion and stores its events."""
        assert self.proc is not None and self.proc.poll() is None, "".join(self.stderr)
        with self.client() as api:
            health = api.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            job = submit(api, ok_manifest())
            record = wait(api, job)
            assert record["status"] == "completed", record
            types = [e["type"] for e in api.get(f"/jobs/{job}/events").json()["data"]]
            if types[0] == "job_placed":  # a killed server's node still looked alive: a choice was made
                types.pop(0)
            assert types[0] == "job_pending" and types[-1] == "job_completed", types
        stored = self.mn("job", "inspect", job, "--json")
        assert stored.returncode == 0 and json.loads(stored.stdout)["status"] == "completed", stored


def ok_manifest() -> dict[str, Any]:
    return manifest(
        [router("entry"), aggregator("sink", complete_after=1)],
        [("entry", "sink", "init")],
        graph_id="health_check",
        initial_inputs={"entry": [{"ok": True}]},
    )


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["job_id"])


def wait(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}/wait", params={"timeout": timeout}, timeout=timeout + 10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def bundle_zip(body: dict[str, Any], files: dict[str, str | bytes] | None = None) -> bytes:
    """A bundle archive: ``manifest.json`` plus ``payloads/<name>`` for each file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(body))
        archive.writestr("payloads/", b"")
        for name, content in (files or {}).items():
            info = zipfile.ZipInfo(f"payloads/{name}")
            info.external_attr = 0o100755 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def upload(
    api: httpx.Client, body: dict[str, Any], files: dict[str, str | bytes] | None = None
) -> httpx.Response:
    archive = bundle_zip(body, files)
    return api.post("/jobs/upload", files={"bundle": ("bundle.zip", archive, "application/zip")})


def executor(node_id: str, script: str, **config: Any) -> dict[str, Any]:
    """An executor node running ``payloads/<node_id>.py`` (pass the script to ``upload``).

    It completes the job with its output unless ``complete_job=False``.
    """
    return {
        "node_id": node_id,
        "agent_type": "executor",
        "config": {
            "upload_path": f"{node_id}.py",
            "command": ["python3", f"{node_id}.py"],
            "complete_job": True,
            **config,
        },
    }


def one_executor(script_node: dict[str, Any], **top: Any) -> dict[str, Any]:
    """An executor fed one message, completing the job with its output."""
    return manifest([script_node], [], graph_id=top.pop("graph_id", "hostile"), **top)


def events_of(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


@pytest.fixture(scope="session")
def sandboxed() -> None:
    ok, why = sandbox_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the security tests: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def default_server(sandboxed: None) -> Iterator[MnServer]:
    root = Path(tempfile.mkdtemp(prefix="mn-sec-default-"))
    server = MnServer(root).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def open_server(sandboxed: None) -> Iterator[MnServer]:
    root = Path(tempfile.mkdtemp(prefix="mn-sec-open-"))
    server = MnServer(root, "--allow-network", "--allow-host-local", "--pass-env", "SAFE_API_TOKEN").start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def api(default_server: MnServer) -> Iterator[httpx.Client]:
    with default_server.client() as client:
        yield client


@pytest.fixture
def open_api(open_server: MnServer) -> Iterator[httpx.Client]:
    with open_server.client() as client:
        yield client
