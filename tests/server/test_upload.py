"""POST /jobs/upload: a zipped bundle is unpacked safely, validated and run in the server."""

from __future__ import annotations

import io
import json
import stat
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from builders import manifest, router
from mirror_neuron.errors import MirrorNeuronError
from mirror_neuron.server.client import zip_bundle
from waiting import eventually

from .conftest import ServerThread, collect, serve

EMIT_TO_GHOST = """
import json
print(json.dumps({"emit_messages": [{"type": "lost", "to": "ghost", "body": {"k": 1}}]}))
"""


def make_zip(entries: dict[str, bytes | str], **infos: zipfile.ZipInfo) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for data_name, info in infos.items():
            archive.writestr(info, data_name)
    return buffer.getvalue()


def bundle_entries(data: dict, prefix: str = "") -> dict[str, bytes | str]:
    return {f"{prefix}manifest.json": json.dumps(data), f"{prefix}payloads/": b""}


def upload(api: httpx.Client, data: bytes) -> httpx.Response:
    return api.post("/jobs/upload", files={"bundle": ("b.zip", data, "application/zip")})


@pytest.mark.parametrize("prefix", ["", "my_bundle/"])
def test_a_zipped_bundle_runs_in_the_server(api: httpx.Client, prefix: str) -> None:
    response = upload(api, make_zip(bundle_entries(collect(1), prefix)))
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    record = api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()
    assert record["status"] == "completed"
    assert record["node"] == api.get("/system/summary").json()["node"]  # ran in the server


def test_uploaded_folders_are_removed_when_the_job_ends(api: httpx.Client, server: ServerThread) -> None:
    uploads = server.app.state.uploads.root
    job_id = upload(api, make_zip(bundle_entries(collect(2)))).json()["job_id"]
    assert any(uploads.iterdir())
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    eventually(lambda: not any(uploads.iterdir()), what="the upload folder emptied (background task)")


def test_dead_letters_of_an_uploaded_executor_bundle_can_be_redriven(api: httpx.Client) -> None:
    data = manifest(
        [
            {
                "node_id": "worker",
                "agent_type": "executor",
                "config": {
                    "runner": "host_local",
                    "upload_path": "emit.py",
                    "command": [sys.executable, "emit.py"],
                },
            },
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": 1}},
        ],
    )
    entries = {**bundle_entries(data), "payloads/emit.py": EMIT_TO_GHOST}
    job_id = upload(api, make_zip(entries)).json()["job_id"]
    [letter] = eventually(
        lambda: api.get(f"/jobs/{job_id}/dead-letters").json()["data"], what="a dead letter"
    )
    assert letter["agent_id"] == "ghost" and letter["message"]["body"] == {"k": 1}
    assert (
        api.post(f"/jobs/{job_id}/dead-letters/{letter['id']}/redrive").status_code == 404
    )  # still no ghost
    sent = api.post(f"/jobs/{job_id}/dead-letters/{letter['id']}/redrive", params={"agent_id": "sink"})
    assert sent.status_code == 202 and sent.json()["agent_id"] == "sink"
    record = api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()
    assert record["status"] == "completed" and record["result"]["output"]["messages"] == [{"k": 1}]


def link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entries", "infos", "message"),
    [
        ({"../evil.txt": "x"}, {}, "unsafe path in archive: '../evil.txt'"),
        ({"payloads/../../evil.txt": "x"}, {}, "unsafe path"),
        ({"/etc/evil.txt": "x"}, {}, "unsafe path in archive: '/etc/evil.txt'"),
        ({"..\\evil.txt": "x"}, {}, "unsafe path"),
        ({"C:/evil.txt": "x"}, {}, "unsafe path"),
        ({}, {"/etc/passwd": link("payloads/passwd")}, "is a symbolic link"),
    ],
)
def test_unsafe_archives_are_rejected_with_400(
    api: httpx.Client, server: ServerThread, entries: dict, infos: dict, message: str
) -> None:
    response = upload(api, make_zip({**bundle_entries(collect(1)), **entries}, **infos))
    assert response.status_code == 400
    assert message in response.json()["error"]
    uploads = server.app.state.uploads.root
    assert not (uploads / "evil.txt").exists() and not (uploads.parent / "evil.txt").exists()
    assert not Path("/etc/evil.txt").exists()


def test_oversized_archives_are_rejected_with_413(tmp_path: Path) -> None:
    from mirror_neuron.server import UploadLimits

    from .conftest import serve

    limits = UploadLimits(max_total_bytes=3000, max_file_bytes=2000, max_entries=20)
    with (
        serve(tmp_path, uploads=limits, max_body_bytes=100_000) as srv,
        httpx.Client(base_url=srv.url + "/api/v1", timeout=30) as api,
    ):
        base = bundle_entries(collect(1))
        bomb = upload(api, make_zip({**base, "payloads/zeros": b"\0" * 2001}))
        assert bomb.status_code == 413 and "is larger than 2000 bytes" in bomb.json()["error"]
        total = upload(api, make_zip({**base, **{f"payloads/{i}": b"\0" * 1500 for i in range(3)}}))
        assert total.status_code == 413 and "unpacks to more than 3000 bytes" in total.json()["error"]
        many = upload(api, make_zip({**base, **{f"payloads/{i}": b"" for i in range(30)}}))
        assert many.status_code == 413 and "more than the limit of 20" in many.json()["error"]
        body = upload(api, b"\0" * 200_000)
        assert body.status_code == 413 and "larger than the server's limit" in body.json()["error"]
        assert not any((srv.app.state.uploads.root).iterdir())


def test_broken_or_incomplete_uploads_are_rejected(api: httpx.Client) -> None:
    response = upload(api, b"this is not a zip")
    assert response.status_code == 400 and response.json()["error"].startswith("failed to unzip the upload")
    response = api.post("/jobs/upload", files={"other": ("b.zip", b"", "application/zip")})
    assert response.status_code == 422 and "bundle" in response.json()["error"]
    response = upload(api, make_zip({"a/manifest.json": "{}", "b/manifest.json": "{}"}))
    assert response.status_code == 422 and "no manifest.json" in response.json()["error"]
    response = upload(api, make_zip({"manifest.json": json.dumps(manifest([router("a")]))}))
    assert response.status_code == 422 and "missing payloads/" in response.json()["error"]
    response = upload(api, make_zip(bundle_entries({"manifest_version": "1.0", "nodes": []})))
    assert response.status_code == 422 and "graph_id is required" in response.json()["errors"]


def test_a_server_refuses_unsandboxed_executors_unless_allowed(tmp_path: Path) -> None:
    data = manifest(
        [{"node_id": "w", "agent_type": "executor", "config": {"runner": "host_local", "command": "id"}}]
    )
    with serve(tmp_path) as srv, httpx.Client(base_url=srv.url + "/api/v1", timeout=30) as api:
        refused = api.post("/jobs", json=data)
        assert refused.status_code == 422
        assert "host_local" in refused.json()["error"] and "--allow-host-local" in refused.json()["error"]
        assert upload(api, make_zip(bundle_entries(data))).status_code == 422
        assert api.get("/jobs").json()["data"] == []


def test_the_client_never_ships_what_a_symlink_out_of_the_bundle_points_to(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = abc")
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "payloads" / "inside.txt").write_text("fine")
    (bundle / "payloads" / "alias.txt").symlink_to("inside.txt")  # inside: stored as its content
    with zipfile.ZipFile(io.BytesIO(zip_bundle(bundle))) as archive:
        assert archive.read("payloads/alias.txt") == b"fine"
    (bundle / "payloads" / "creds").symlink_to(secret)
    with pytest.raises(MirrorNeuronError, match=r"payloads/creds is a symlink to .* outside the bundle"):
        zip_bundle(bundle)
