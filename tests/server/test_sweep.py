"""After ``kill -9`` of ``mn serve``, the next server cleans the upload folder.

The killed server never removed its uploaded bundles. The next one recovers the jobs
that were still running (they run from those folders, so they are kept until they end)
and removes every other ``bundle-*`` folder: jobs that ended meanwhile (here one is
force-cancelled while no server runs) and uploads that never became jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import aggregator, manifest, router
from redis_server import free_port
from waiting import eventually

from .conftest import serve, wait_for
from .test_upload import bundle_entries, make_zip, upload

START_TIMEOUT = 30.0


def waiting_job(graph_id: str) -> dict[str, Any]:
    """entry → sink, complete after two messages: the seed, and one sent later."""
    return manifest(
        [router("entry"), aggregator("sink", complete_after=2)],
        [("entry", "sink", "init")],
        graph_id=graph_id,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}
    for name in ("MIRROR_NEURON_STORE_URL", "MIRROR_NEURON_API_TOKEN"):
        env.pop(name, None)
    return env


@pytest.fixture
def first_server(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mn serve`` as a process of its own, so that it can be killed with SIGKILL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:  # an external process: polled until it answers
        assert proc.poll() is None, "mn serve exited at start"
        return httpx.get(url + "/api/v1/health", timeout=1).status_code == 200

    eventually(
        answers,
        timeout=START_TIMEOUT,
        interval=0.05,
        ignoring=(httpx.TransportError,),
        what="mn serve to start",
    )
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def folder_of(uploads: Path, graph_id: str) -> Path:
    [folder] = [
        p
        for p in uploads.glob("bundle-*")
        if json.loads((p / "manifest.json").read_text())["graph_id"] == graph_id
    ]
    return folder


@pytest.mark.slow
def test_a_killed_servers_uploads_are_swept_or_kept_for_their_job(
    tmp_path: Path, env: dict[str, str], first_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = first_server
    uploads = tmp_path / "data" / "uploads"
    with httpx.Client(base_url=url + "/api/v1", timeout=30) as api:
        kept = upload(api, make_zip(bundle_entries(waiting_job("kept")))).json()["job_id"]
        ended = upload(api, make_zip(bundle_entries(waiting_job("ended")))).json()["job_id"]
        for job_id in (kept, ended):
            wait_for(api, job_id, lambda a: a["sink"]["processed_messages"] == 1)
    kept_folder, ended_folder = folder_of(uploads, "kept"), folder_of(uploads, "ended")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # While no server runs, one job is cancelled from the command line (forced: its runtime is gone).
    out = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "job", "cancel", ended, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json.loads(out.stdout)["forced"] is True, out.stderr
    stray = uploads / "bundle-never-became-a-job"  # e.g. killed while unpacking
    (stray / "payloads").mkdir(parents=True)
    outside = uploads / "not-ours"  # only bundle-* folders are the server's to remove
    outside.mkdir()

    with serve(tmp_path) as second, httpx.Client(base_url=second.url + "/api/v1", timeout=30) as api:
        assert not ended_folder.exists() and not stray.exists()
        assert kept_folder.is_dir() and outside.is_dir()
        assert api.get(f"/jobs/{kept}").json()["status"] == "running"  # recovered, from its folder
        api.post(f"/jobs/{kept}/agents/sink/messages", json={"late": True}).raise_for_status()
        assert api.get(f"/jobs/{kept}/wait", params={"timeout": 30}).json()["status"] == "completed"
        eventually(lambda: not kept_folder.exists(), what="the ended job's folder removed (background task)")
        assert outside.is_dir()
