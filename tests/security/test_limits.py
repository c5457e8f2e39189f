"""Finding 6: a bundle may only lower the server's limits, and they hold for the sandbox as a whole."""

from __future__ import annotations

import httpx
import pytest

from execution.test_sandbox_limits import CHILDREN

from .conftest import MnServer, executor, one_executor, upload, wait

#: Children that each hold 100 MB at the same moment (a barrier), so only a limit on the whole
#: sandbox stops them: each alone is far below it.
HOG = CHILDREN
FILL = """
import sys
path, mb = sys.argv[1], int(sys.argv[2])
try:
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(b"x" * 1024 * 1024)
    print("wrote", mb)
except OSError as e:
    print("refused", e.errno)
"""
SHOUT = """import sys; sys.stdout.write("y" * (40 * 1024 * 1024))"""


def test_limits_cannot_be_lifted_or_raised(default_server: MnServer, api: httpx.Client) -> None:
    for limits, fragment in (
        ({"processes": None}, "would lift the limit"),
        ({"memory_mb": None, "cpu_seconds": None}, "would lift the limit"),
        ({"memory_mb": 10**9}, "above this runtime's cap"),
        ({"workdir_mb": 10**9}, "above this runtime's cap"),
    ):
        response = upload(api, one_executor(executor("w", "", limits=limits)), {"w.py": ""})
        assert response.status_code == 422, (limits, response.text)
        assert fragment in response.json()["error"], (limits, response.json())
    response = upload(api, one_executor(executor("w", "", max_output_bytes=10**12)), {"w.py": ""})
    assert response.status_code == 422 and "max_output_bytes" in response.json()["error"]
    default_server.assert_healthy()


def test_memory_is_limited_for_the_sandbox_as_a_whole(default_server: MnServer, api: httpx.Client) -> None:
    one = one_executor(executor("w", HOG, command=["python3", "w.py", "1"], limits={"memory_mb": 256}))
    response = upload(api, one, {"w.py": HOG})
    assert wait(api, response.json()["job_id"])["status"] == "completed"
    four = one_executor(executor("w", HOG, command=["python3", "w.py", "4"], limits={"memory_mb": 256}))
    response = upload(api, four, {"w.py": HOG})
    record = wait(api, response.json()["job_id"])
    assert record["status"] == "failed", record
    assert "memory limit" in record["result"]["error"], record["result"]
    default_server.assert_healthy()


def test_tmp_and_workdir_are_size_capped(default_server: MnServer, api: httpx.Client) -> None:
    for path in ("/tmp/fill", "/sandbox/job/fill", "/dev/shm/fill"):
        node = executor(
            "w", FILL, command=["python3", "w.py", path, "64"], limits={"tmp_mb": 16, "workdir_mb": 16}
        )
        response = upload(api, one_executor(node, graph_id="fill", **{}), {"w.py": FILL})
        record = wait(api, response.json()["job_id"])
        stdout = record["result"]["output"]["sandbox"]["stdout"] if record["status"] == "completed" else ""
        assert record["status"] == "completed" and stdout.startswith("refused 28"), (path, record["result"])
    default_server.assert_healthy()


@pytest.mark.slow
def test_output_is_capped_by_the_server(default_server: MnServer, api: httpx.Client) -> None:
    node = executor("w", SHOUT, max_output_bytes=16 * 1024 * 1024)  # the server's cap: allowed
    response = upload(api, one_executor(node), {"w.py": SHOUT})
    record = wait(api, response.json()["job_id"])
    assert record["status"] == "completed", record
    sandbox = record["result"]["output"]["sandbox"]
    assert len(sandbox["stdout"]) == 16 * 1024 * 1024
    assert "truncated" in sandbox["logs"]
    default_server.assert_healthy()
