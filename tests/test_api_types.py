"""The public API's types say what it returns: a type checker sees ``run_manifest``'s two
shapes, typed records instead of ``Any``, and rejects a misuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USE = """
from typing import assert_type
import mirror_neuron as mn
from mirror_neuron.records import AgentView, ControlResult, JobRecord

job_id = mn.run_manifest("examples/research_flow")
assert_type(job_id, str)
done = mn.run_manifest("examples/research_flow", wait=True)
assert_type(done, tuple[str, JobRecord])
assert_type(mn.wait_for_job(job_id, idle_timeout=5.0), JobRecord)
assert_type(mn.inspect_agents(job_id), list[AgentView])
assert_type(mn.pause(job_id), ControlResult)
status: str = done[1]["status"]
"""

MISUSE = """
import mirror_neuron as mn
mn.run_manifest(42)
"""


def mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "use.py"
    source.write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_public_api_is_typed_for_its_callers(tmp_path: Path) -> None:
    checked = mypy(tmp_path, USE)
    assert checked.returncode == 0, checked.stdout
    refused = mypy(tmp_path, MISUSE)
    assert refused.returncode == 1
    assert "run_manifest" in refused.stdout and "int" in refused.stdout
