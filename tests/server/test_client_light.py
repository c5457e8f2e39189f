"""``mn run --server`` is a client: it must not load the server (FastAPI, pydantic, uvicorn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redis_server import free_port

from .conftest import collect

SERVER_MODULES = ("fastapi", "uvicorn", "pydantic", "mirror_neuron.server.app")
LOADED_NOW = f"sorted(m for m in {SERVER_MODULES!r} if m in sys.modules)"
LOADED = f"import sys; print({LOADED_NOW})"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )


def test_importing_the_client_does_not_import_the_server() -> None:
    out = python(f"import mirror_neuron.server.client\n{LOADED}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_server_package_still_exports_its_names() -> None:
    out = python("from mirror_neuron.server import ServerSettings, create_app; print(create_app.__module__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "mirror_neuron.server.app"


def test_mn_run_server_loads_no_server_module(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps(collect(1)))
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the client fails after its imports
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('LOADED', {LOADED_NOW}))\n"
        "from mirror_neuron.cli import main\n"
        f"sys.exit(main(['run', {str(bundle)!r}, '--server', {url!r}]))\n"
    )
    out = python(code)
    assert out.returncode == 1 and f"cannot reach the server at {url}" in out.stderr, out.stderr
    assert "LOADED []" in out.stdout
