"""Finding 1: no manifest key may make the server run a host program or reach a host path."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from .conftest import MnServer, executor, one_executor, upload

EVIL = """#!/bin/sh
touch {marker}
"""


def plant_script(api: httpx.Client, server: MnServer, marker: Path) -> Path:
    """Upload a bundle carrying a host script, and find where the server unpacked it.

    An attacker learnt this path from ``manifest_ref.job_path``; here the test reads the
    server's folders, which is at least as much as any client could know.
    """
    body = one_executor(executor("holder", "", command=["sleep", "30"]), graph_id="planter")
    response = upload(api, body, {"holder.py": "", "evil.sh": EVIL.format(marker=marker)})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    found = sorted(server.data_dir.rglob("evil.sh"))
    assert found, "the planted script should be on the server's disk while its job runs"
    api.post(f"/jobs/{job_id}/cancel")
    return found[0]


def openshell_node(cli: str, **config: object) -> dict:
    node = executor("shell", "", runner="openshell", sandbox_cli=cli, **config)
    return one_executor(node, graph_id="openshell_attack")


def test_openshell_sandbox_cli_cannot_name_a_host_program(
    default_server: MnServer, api: httpx.Client
) -> None:
    marker = Path("/tmp") / f"mn-pwned-{uuid.uuid4().hex}"
    script = plant_script(api, default_server, marker)
    response = upload(api, openshell_node(str(script)), {"shell.py": ""})
    assert response.status_code == 422, response.text
    errors = " ".join(response.json()["errors"])
    assert "openshell runner" in errors and "sandbox_cli names a program" in errors
    assert not marker.exists()
    default_server.assert_healthy()


def test_openshell_stays_refused_when_host_local_is_allowed(
    open_server: MnServer, open_api: httpx.Client
) -> None:
    response = upload(open_api, openshell_node("/bin/sh"), {"shell.py": ""})
    assert response.status_code == 422, response.text
    assert "mn serve --allow-openshell" in response.json()["error"]
    open_server.assert_healthy()


def test_host_local_is_refused_by_default(default_server: MnServer, api: httpx.Client) -> None:
    marker = Path("/tmp") / f"mn-pwned-{uuid.uuid4().hex}"
    node = executor("w", "", runner="host_local", command=f"touch {marker}")
    response = upload(api, one_executor(node), {"w.py": ""})
    assert response.status_code == 422, response.text
    assert "host_local" in response.json()["error"]
    assert not marker.exists()
    default_server.assert_healthy()


def test_sandbox_paths_cannot_point_at_the_host(default_server: MnServer, api: httpx.Client) -> None:
    for config, fragment in (
        ({"sandbox_upload_path": "/"}, "sandbox_upload_path must be a folder under /sandbox"),
        ({"sandbox_upload_path": "/sandbox/../etc"}, "sandbox_upload_path must be a folder under /sandbox"),
        ({"workdir": "/etc"}, "workdir /etc is outside /sandbox/job"),
        ({"workdir": "/sandbox/job/../../root"}, "climbs out"),
    ):
        response = upload(api, one_executor(executor("w", "", **config)), {"w.py": ""})
        assert response.status_code == 422, (config, response.text)
        assert fragment in response.json()["error"], (config, response.json())
    default_server.assert_healthy()


def test_clients_never_see_host_paths(default_server: MnServer, api: httpx.Client) -> None:
    response = upload(api, one_executor(executor("w", "print('hi')")), {"w.py": "print('hi')"})
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    texts = [
        api.get(f"/jobs/{job_id}/wait", params={"timeout": 60}).text,
        api.get(f"/jobs/{job_id}").text,
        api.get("/jobs").text,
        api.get(f"/jobs/{job_id}/agents").text,
        api.get(f"/jobs/{job_id}/events").text,
    ]
    for text in texts:
        for private in (str(default_server.root), str(default_server.data_dir), str(default_server.temp_dir)):
            assert private not in text, text
    default_server.assert_healthy()


def test_a_script_sees_no_host_path_in_its_mounts(default_server: MnServer, api: httpx.Client) -> None:
    script = "print(open('/proc/self/mountinfo').read())"
    response = upload(api, one_executor(executor("w", script, complete_job=True)), {"w.py": script})
    assert response.status_code == 201, response.text
    record = api.get(f"/jobs/{response.json()['job_id']}/wait", params={"timeout": 60}).json()
    assert record["status"] == "completed", record
    mounts = record["result"]["output"]["sandbox"]["stdout"]
    assert "/sandbox/job" in mounts
    for private in (str(default_server.root), str(default_server.temp_dir), "/tmp/mirror_neuron"):
        assert private not in mounts, mounts
    default_server.assert_healthy()


#: Emits a message whose header becomes an environment variable of the next executor, with a
#: NUL byte that would split one sandbox option into several (``--share-net``, a host bind).
NUL_HEADER = r"""
import json
evil = "x\u0000--share-net\u0000--ro-bind\u0000/\u0000/host"
print(json.dumps({"emit_messages": [{"type": "go", "to": "second", "body": {},
                                     "headers": {"mn.workflow.run_id": evil}}]}))
"""
PEEK = "import os; print(os.path.exists('/host/etc/passwd'))"


def test_a_nul_byte_cannot_inject_sandbox_options(default_server: MnServer, api: httpx.Client) -> None:
    injected = "a\u0000--share-net\u0000--ro-bind\u0000/\u0000/host"
    for config in ({"environment": {"X": injected}}, {"sandbox_upload_path": "/sandbox/job" + injected}):
        response = upload(api, one_executor(executor("w", PEEK, **config)), {"w.py": PEEK})
        assert response.status_code == 422, (config, response.text)
        assert "NUL" in response.json()["error"]
    first = executor("first", NUL_HEADER, complete_job=False)
    second = executor("second", PEEK)
    body = one_executor(first)
    body["nodes"].append(second)
    response = upload(api, body, {"first.py": NUL_HEADER, "second.py": PEEK})
    assert response.status_code == 201, response.text
    record = api.get(f"/jobs/{response.json()['job_id']}/wait", params={"timeout": 60}).json()
    assert record["status"] == "failed", record  # the run is refused, nothing ran with host mounts
    assert record["result"]["agent_id"] == "second" and "NUL" in record["result"]["error"]
    default_server.assert_healthy()
