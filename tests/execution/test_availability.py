"""A missing or broken bubblewrap is a clear error, never a silent downgrade to the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror_neuron.execution import SandboxUnavailable, sandbox_available

from .conftest import run_config


def test_sandbox_available_reports_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        ok, why = sandbox_available(refresh=True)
    finally:
        monkeypatch.undo()
        sandbox_available(refresh=True)  # do not leave the failure cached for other tests
    assert not ok
    assert "apt-get install bubblewrap" in why
    assert 'runner: "host_local"' in why


async def test_sandboxed_run_without_bwrap_fails_with_install_hint(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*host_local"):
        await run_config({"command": "echo should-not-run-on-the-host"}, payloads, temp_root)


@pytest.mark.usefixtures("sandbox")
async def test_bwrap_that_cannot_start_is_reported_not_bypassed(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(temp_root, 0o755)  # bwrap is started as the sandbox user, who must reach the fake
    fake = temp_root / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    with pytest.raises(SandboxUnavailable, match=r"No permissions to create new namespace.*apt-get install"):
        await run_config({"command": "echo hi"}, payloads, temp_root)


@pytest.mark.usefixtures("sandbox")
async def test_a_temp_dir_the_sandbox_user_cannot_reach_works(payloads: Path, tmp_path: Path) -> None:
    """Nothing of the temp dir is mounted into the sandbox: a private (0700) one is fine."""
    private = tmp_path / "private"  # under pytest's 0700 directory
    outcome = await run_config({"command": "echo hi > out.txt && cat out.txt"}, payloads, private)
    assert outcome.ok, outcome.error
    assert outcome.result["stdout"] == "hi\n"
    assert private.stat().st_mode & 0o777 == 0o700


def test_doctor_detail_names_the_limits_mode() -> None:
    ok, why = sandbox_available()
    if ok:
        assert "whole-sandbox limits: " in why
        assert ("cgroup v1 memory+pids" in why) or ("cgroup v2 memory+pids" in why) or ("rlimits only" in why)
