"""Finding 11: ids that break routes, weak tokens, corrupt stores and what a kill -9 leaves behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from builders import aggregator, manifest, router
from waiting import eventually

from .conftest import MnServer, executor, one_executor, upload

SLEEPER = "import time; time.sleep(600)"


def test_ids_that_no_route_could_reach_are_refused(default_server: MnServer, api: httpx.Client) -> None:
    for graph_id, node_id in (("a/b", "entry"), ("ok", "x\ny"), ("ok", "evil\u202egnp"), ("ok", "..")):
        body = manifest(
            [router(node_id), aggregator("sink", complete_after=1)],
            [(node_id, "sink", "init")],
            graph_id=graph_id,
        )
        response = api.post("/jobs", json=body)
        assert response.status_code == 422, (graph_id, node_id, response.text)
    default_server.assert_healthy()


def mn_serve(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mirror_neuron", "--data-dir", str(data_dir), "serve", "--port", "0", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_a_blank_or_short_token_is_refused(tmp_path: Path) -> None:
    for token in (" ", "short"):
        result = mn_serve("--host", "0.0.0.0", "--token", token, data_dir=tmp_path)
        assert result.returncode != 0
        assert "token" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_corrupt_or_empty_store_files_are_reported_without_a_traceback(tmp_path: Path) -> None:
    for name, content in (("empty", b""), ("garbage", b"not a database at all" * 100)):
        data_dir = tmp_path / name
        data_dir.mkdir()
        (data_dir / "mirror_neuron.db").write_bytes(content)
        result = mn_serve(data_dir=data_dir)
        assert result.returncode != 0, result
        assert "mirror_neuron.db" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert (data_dir / "mirror_neuron.db").read_bytes() == content  # left as it was


@pytest.mark.slow
def test_what_a_kill_9_leaves_behind_is_swept_at_the_next_start() -> None:
    server = MnServer(Path(tempfile.mkdtemp(prefix="mn-sec-kill9-"))).start()
    try:
        with server.client() as api:
            response = upload(api, one_executor(executor("w", SLEEPER)), {"w.py": SLEEPER})
            assert response.status_code == 201, response.text
            job_id = response.json()["job_id"]
            eventually(
                lambda: any(server.temp_dir.glob("run-*/mirror_neuron_*")),  # its staging tree exists
                timeout=60,
                interval=0.05,
                what="the run to start",
            )
        left = sorted(server.temp_dir.glob("run-*"))
        uploads = sorted((server.data_dir / "uploads").glob("bundle-*"))
        assert left and uploads
        server.stop(signal.SIGKILL)
        assert all(path.exists() for path in left)  # kill -9: nothing cleaned up
        server.start()
        assert not any(path.exists() for path in left)  # a dead runtime's run dirs are gone
        with server.client() as api:
            record = api.get(f"/jobs/{job_id}").json()
            assert record["status"] == "running", record  # recovered, its bundle still there
            assert all(path.exists() for path in uploads)
            assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
            api.get(f"/jobs/{job_id}/wait", params={"timeout": 60})
        eventually(
            lambda: not any(path.exists() for path in uploads),
            interval=0.05,
            what=f"the uploads removed once their job ended: {uploads}",
        )
        server.assert_healthy()
        stored = json.loads(server.mn("job", "inspect", job_id, "--json").stdout)
        assert stored["status"] == "cancelled"
    finally:
        server.stop()
