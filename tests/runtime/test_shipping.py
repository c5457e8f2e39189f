"""A job's bundle files, stored with it and written back on another machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror_neuron.runtime.shipping import is_shipped, pack, unpack


def bundle(root: Path) -> Path:
    (root / "payloads" / "tool" / "empty").mkdir(parents=True)
    (root / "manifest.json").write_text("{}")
    script = root / "payloads" / "tool" / "run.sh"
    script.write_text("echo hi\n")
    script.chmod(0o4755)  # setuid must not travel
    (root / "payloads" / "tool" / "__pycache__").mkdir()
    (root / "payloads" / "tool" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return root


def test_files_and_folders_travel_and_come_back_runnable(tmp_path: Path) -> None:
    files = pack(bundle(tmp_path / "b"))
    assert files is not None and "payloads/tool/__pycache__/x.pyc" not in files
    back = unpack(files, tmp_path, "job-1")
    assert is_shipped(back, tmp_path)
    assert (back / "payloads" / "tool" / "run.sh").read_text() == "echo hi\n"
    assert (back / "payloads" / "tool" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (back / "payloads" / "tool" / "empty").is_dir()
    assert (back / "manifest.json").read_text() == "{}"


def test_a_link_out_of_the_bundle_is_not_shipped(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server password")
    root = bundle(tmp_path / "b")
    os.symlink(secret, root / "payloads" / "leak.txt")
    files = pack(root)
    assert files is not None and "payloads/leak.txt" not in files


def test_an_oversize_bundle_is_not_shipped(tmp_path: Path) -> None:
    root = bundle(tmp_path / "b")
    (root / "payloads" / "big.bin").write_bytes(b"x" * 2048)
    assert pack(root, max_bytes=1024) is None


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "payloads/../../x"])
def test_tampered_paths_are_refused_and_nothing_is_left(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not relative"):
        unpack({name: [0o644, ""]}, tmp_path, "job-2")
    assert not list(tmp_path.iterdir())
    assert not (tmp_path.parent / "escape.txt").exists()
