"""The README's Python code runs as pasted: each ```python block in a fresh interpreter.

Each block runs from the repository root (its example paths are relative to it), with the
store in a temporary directory and no ``MIRROR_NEURON_*`` setting of the developer's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builders import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block of the README."""
    text = README.read_text()
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def test_the_readme_has_python_blocks_to_run() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize(
    ("line", "code"), [pytest.param(*block, id=f"line{block[0]}") for block in python_blocks()]
)
def test_readme_python_block_runs_as_pasted(line: int, code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRROR_NEURON_", "MN_"))}
    env["MIRROR_NEURON_DATA_DIR"] = str(tmp_path / "data")
    env["MIRROR_NEURON_STORE_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"README.md line {line}:\n{code}\n{done.stdout}\n{done.stderr}"
