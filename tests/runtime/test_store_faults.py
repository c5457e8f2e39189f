"""Store faults: a store that stops accepting writes ends jobs clearly and keeps what it had."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from builders import EXAMPLES, manifest, router, sensor

ITEMS = 20_000


def mn(*args: str, env: dict[str, str], fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit_file_size() -> None:  # runs in the child: a real "disk full" for files it grows
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size if fsize else None,
    )


@pytest.mark.slow
def test_a_full_disk_fails_the_job_with_a_clear_error_and_loses_nothing_committed(tmp_path: Path) -> None:
    """Invariant: after the store refuses writes, every earlier commit is intact and readable."""
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}
    first = json.loads(mn("run", "--json", str(EXAMPLES / "research_flow"), env=env).stdout)
    assert first["status"] == "completed"
    before = json.loads(mn("job", "events", first["job_id"], "--json", env=env).stdout)

    big = tmp_path / "big"
    (big / "payloads").mkdir(parents=True)
    data = manifest(
        [router("a"), router("b"), sensor("sink", complete_after=ITEMS, complete_job=True)],
        [("a", "b", "init"), ("b", "sink", "init")],
        initial_inputs={"a": [{"i": i, "pad": "x" * 64} for i in range(ITEMS)]},
    )
    (big / "manifest.json").write_text(json.dumps(data))
    db = tmp_path / "data" / "mirror_neuron.db"
    # Room for the pending record and the stored manifest, not for the run's events.
    limit = db.stat().st_size + 3 * len(json.dumps(data)) + 256 * 1024
    out = mn("run", "--json", str(big), env=env, fsize=limit)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    record = json.loads(out.stdout)
    assert record["status"] == "failed"
    assert "the store failed" in record["result"]["error"]
    assert "mn job recover" in record["result"]["error"]

    after = {j["job_id"]: j for j in json.loads(mn("job", "list", "--json", env=env).stdout)}
    assert after[first["job_id"]]["status"] == "completed"
    assert json.loads(mn("job", "events", first["job_id"], "--json", env=env).stdout) == before
    stuck = after[record["job_id"]]
    assert stuck["status"] in ("pending", "running")  # its last commit, recoverable later
