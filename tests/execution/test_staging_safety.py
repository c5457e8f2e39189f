"""The temp dir and staging against another local user and hostile bundles: unsafe temp dirs are
refused, symlinks are never followed, setuid bits never survive a copy, stale run dirs are swept."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from mirror_neuron.config import Config
from mirror_neuron.execution import Invocation, StagingError, UnsafeTempDir, sweep_stale_runs
from mirror_neuron.execution.staging import (
    _chmod_and_retry,
    check_tree,
    create_staging_dir,
    ensure_private_dir,
    plan_uploads,
    process_start,
    remove_staging,
    stage_uploads,
)
from mirror_neuron.messages import normalize

from .conftest import run_config, write

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_default_temp_dir_is_per_user() -> None:
    name = f"mirror_neuron-{os.geteuid()}"
    assert Config().temp_dir.name == name
    assert Invocation(job_id="j", agent_id="w", message=normalize({})).temp_dir.name == name


def test_temp_dir_and_missing_parents_are_created_private(tmp_path: Path) -> None:
    temp = tmp_path / "a" / "b" / "mn"
    ensure_private_dir(temp)
    assert stat.S_IMODE(temp.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) & 0o077 in (0o011, 0o000)  # 0711 less umask
    staging = create_staging_dir(temp, "bwrap", "n")
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    assert staging.parent.name == f"run-{os.getpid()}-{process_start(os.getpid())}"


OTHERS_WRITE = r"is writable by group or others \(mode 0{}\)"


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize(
    "make_unsafe, why",
    [
        pytest.param(
            lambda p: os.chown(p, 65534, 65534),
            r"is owned by uid 65534, not by this runtime's uid 0",
            marks=as_root,
        ),
        pytest.param(lambda p: p.chmod(0o775), OTHERS_WRITE.format("775"), id="group-writable"),
        pytest.param(lambda p: p.chmod(0o777), OTHERS_WRITE.format("777"), id="world-writable"),
    ],
)
async def test_unsafe_temp_dir_is_refused_and_nothing_is_written(
    payloads: Path, tmp_path: Path, make_unsafe: object, why: str
) -> None:
    temp = tmp_path / "shared"
    temp.mkdir()
    make_unsafe(temp)  # type: ignore[operator]
    fix = "remove it or set MIRROR_NEURON_TEMP_DIR"
    with pytest.raises(UnsafeTempDir, match=rf"^temp dir {temp} {why}; {fix}"):
        await run_config({"command": "true"}, payloads, temp)
    assert os.listdir(temp) == []


@pytest.mark.usefixtures("sandbox")
async def test_temp_dir_that_is_a_symlink_is_refused(payloads: Path, tmp_path: Path) -> None:
    victim = tmp_path / "root-only"
    victim.mkdir(mode=0o700)
    link = tmp_path / "mirror_neuron-0"
    link.symlink_to(victim)
    with pytest.raises(UnsafeTempDir, match=rf"temp dir {link} is a symlink"):
        await run_config({"command": "true"}, payloads, link)
    assert os.listdir(victim) == []


@pytest.mark.usefixtures("sandbox")
async def test_symlink_planted_as_the_run_dir_is_not_followed(payloads: Path, tmp_path: Path) -> None:
    temp, victim = tmp_path / "temp", tmp_path / "victim"
    temp.mkdir(mode=0o700)
    victim.mkdir(mode=0o700)
    (temp / f"run-{os.getpid()}-{process_start(os.getpid())}").symlink_to(victim)
    with pytest.raises(UnsafeTempDir, match="is a symlink"):
        await run_config({"command": "true"}, payloads, temp)
    assert os.listdir(victim) == []


@pytest.mark.usefixtures("sandbox")
async def test_upload_never_writes_through_a_symlink_it_planted(payloads: Path, temp_root: Path) -> None:
    write(payloads / "pkg" / "real.json", "original")
    (payloads / "pkg" / "cfg.json").symlink_to("real.json")
    write(payloads / "override.json", "override")
    config = {
        "upload_paths": [{"source": "pkg"}, {"source": "override.json", "target": "pkg/cfg.json"}],
        "command": "cat pkg/real.json; echo; cat pkg/cfg.json; echo; test -L pkg/cfg.json && echo link "
        "|| echo file",
    }
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.ok, outcome.error
    assert outcome.result["stdout"] == "original\noverride\nfile\n"


def test_upload_target_through_a_symlinked_directory_is_refused(payloads: Path, tmp_path: Path) -> None:
    write(payloads / "pkg" / "data" / "keep.txt", "keep")
    (payloads / "pkg" / "alias").symlink_to("data")
    write(payloads / "x.txt", "x")
    staging = tmp_path / "staging"
    staging.mkdir()
    uploads = [{"source": "pkg"}, {"source": "x.txt", "target": "pkg/alias/x.txt"}]
    plan = plan_uploads({"upload_paths": uploads}, "/sandbox/job")
    with pytest.raises(StagingError, match=r"upload target pkg/alias/x\.txt passes through alias"):
        stage_uploads(plan, payloads, staging)
    assert sorted(os.listdir(staging / "pkg" / "data")) == ["keep.txt"]


def test_special_files_are_never_copied(payloads: Path, tmp_path: Path) -> None:
    write(payloads / "dir" / "ok.txt", "ok")
    os.mkfifo(payloads / "dir" / "pipe")
    with pytest.raises(StagingError, match=r"upload dir/pipe is a special file"):
        stage_uploads(plan_uploads({"upload_path": "dir"}, "/sandbox/job"), payloads, tmp_path)


def test_copies_drop_setuid_and_setgid_bits(payloads: Path, tmp_path: Path) -> None:
    tool = write(payloads / "tool.sh", "#!/bin/sh\n")
    tool.chmod(0o4755)
    inner = write(payloads / "bin" / "helper", "x")
    inner.chmod(0o6750)
    stage_uploads(plan_uploads({"upload_paths": ["tool.sh", "bin"]}, "/sandbox/job"), payloads, tmp_path)
    assert stat.S_IMODE((tmp_path / "tool.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "bin" / "helper").stat().st_mode) == 0o750


@pytest.mark.usefixtures("sandbox")
async def test_setuid_uploads_arrive_without_it(payloads: Path, temp_root: Path) -> None:
    write(payloads / "tool.sh", "#!/bin/sh\necho tool\n").chmod(0o6755)
    outcome = await run_config(
        {"upload_path": "tool.sh", "command": "stat -c %a tool.sh"}, payloads, temp_root
    )
    assert outcome.result["stdout"] == "755\n"


def test_stale_run_dirs_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    ensure_private_dir(temp)
    ours = temp / f"run-{os.getpid()}-{process_start(os.getpid())}"
    dead = temp / f"run-{dead_pid()}-12345"
    reused = temp / f"run-{os.getpid()}-1"  # our pid, another process's start time
    for path in (ours, dead, reused):
        write(path / "mirror_neuron_bwrap_x" / "f.txt", "x")
        write(path / ".sandbox-etc-abc" / "passwd", "x")
    (dead / "locked").mkdir(mode=0o000)
    victim = write(tmp_path / "victim" / "keep.txt", "keep")
    (temp / "run-1-1").symlink_to(victim.parent)
    (temp / "unrelated").mkdir()
    removed = sweep_stale_runs(temp)
    assert sorted(removed) == sorted([dead, reused])
    assert sorted(os.listdir(temp)) == sorted([ours.name, "run-1-1", "unrelated"])
    assert victim.read_text() == "keep"


def test_sweep_refuses_an_unsafe_temp_dir(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir(mode=0o777)
    temp.chmod(0o777)
    (temp / f"run-{dead_pid()}-1").mkdir()
    with pytest.raises(UnsafeTempDir):
        sweep_stale_runs(temp)
    assert len(os.listdir(temp)) == 1
    assert sweep_stale_runs(tmp_path / "missing") == []


def test_removing_a_staging_dir_never_chmods_through_a_symlink(tmp_path: Path) -> None:
    victim = write(tmp_path / "victim.txt", "secret")
    victim.chmod(0o600)
    staging = tmp_path / "staging"
    (staging / "locked").mkdir(parents=True)
    link = staging / "locked" / "link"
    link.symlink_to(victim)
    # What rmtree's error handler does when unlinking the link failed (a non-root runtime
    # whose script took the write bit off "locked"):
    _chmod_and_retry(os.unlink, str(link))
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert not os.path.lexists(link)
    (staging / "locked").chmod(0o000)
    remove_staging(staging)
    assert not staging.exists()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and victim.read_text() == "secret"


def test_a_relative_link_may_not_climb_above_its_uploaded_folder(tmp_path: Path) -> None:
    payloads = tmp_path / "payloads"
    deep = payloads / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (payloads / "a" / "data.txt").write_text("x")
    (deep / "ok").symlink_to("../../data.txt")  # stays inside a/
    check_tree(payloads / "a", payloads)
    (payloads / "other.txt").write_text("y")
    (deep / "climb").symlink_to("../../../other.txt")  # inside payloads/, but above a/
    with pytest.raises(StagingError, match="pointing above its uploaded folder"):
        check_tree(payloads / "a", payloads)
