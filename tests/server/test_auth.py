"""Bearer-token protection, and the refusal to listen off loopback without a token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirror_neuron.server import auth as auth_module
from mirror_neuron.server import check_bind, is_loopback
from mirror_neuron.server.auth import InsecureBind

from .conftest import ServerThread, collect, serve

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with serve(tmp_path_factory.mktemp("guarded"), token=TOKEN) as srv:
        yield srv


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", "/api/v1/system/summary"),
        ("GET", "/api/v1/nodes"),
        ("POST", "/api/v1/nodes/anyone/drain"),
        ("POST", "/api/v1/internal/control"),  # node-to-node calls need the token too
        ("GET", "/docs-assets/nope.js"),
        ("GET", "/nope"),
    ],
)
def test_every_request_without_the_token_is_401(
    guarded: ServerThread, headers: dict, method: str, path: str
) -> None:
    response = httpx.request(method, guarded.url + path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json() == {"error": "missing or invalid API token"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_right_token_is_let_through(guarded: ServerThread) -> None:
    auth = {"Authorization": f"bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url + "/api/v1", headers=auth, timeout=30) as api:
        job_id = api.post("/jobs", json=collect(1)).json()["job_id"]
        assert api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()["status"] == "completed"
        schema = httpx.get(guarded.url + "/openapi.json", headers=auth).json()
    bearer = schema["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert schema["paths"]["/api/v1/health"]["get"]["security"] == []


def test_a_stream_ticket_opens_one_jobs_stream_and_nothing_else(guarded: ServerThread) -> None:
    """A browser's EventSource cannot send the header: a short-lived ticket opens the stream of
    the job it was made for. It is no token: no other job, no other route, no write."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    api = guarded.url + "/api/v1"
    job_id = httpx.post(f"{api}/jobs", json=collect(1), headers=auth).json()["job_id"]
    other = httpx.post(f"{api}/jobs", json=collect(1), headers=auth).json()["job_id"]
    assert httpx.post(f"{api}/jobs/{job_id}/stream-ticket").status_code == 401  # it takes the token
    granted = httpx.post(f"{api}/jobs/{job_id}/stream-ticket", headers=auth).json()
    ticket = granted["ticket"]
    assert granted["expires_in"] == 300 and TOKEN not in ticket
    assert httpx.get(f"{api}/jobs/{job_id}/wait", params={"timeout": 10}, headers=auth).status_code == 200
    with httpx.stream("GET", f"{api}/jobs/{job_id}/stream", params={"ticket": ticket}) as response:
        assert response.status_code == 200 and "job_completed" in response.read().decode()
    for method, path in [
        ("GET", f"/jobs/{other}/stream"),  # another job's stream
        ("GET", f"/jobs/{job_id}"),  # any other read
        ("GET", f"/jobs/{job_id}/events"),
        ("POST", f"/jobs/{job_id}/cancel"),  # any write
    ]:
        assert httpx.request(method, api + path, params={"ticket": ticket}).status_code == 401
    expired = auth_module.stream_ticket(TOKEN, job_id, now=time.time() - auth_module.TICKET_TTL - 1)
    forged = f"{int(time.time()) + 300}.{'0' * 64}"
    for bad in (expired, forged, "", "abc", ticket + "0"):
        response = httpx.get(f"{api}/jobs/{job_id}/stream", params={"ticket": bad})
        assert response.status_code == 401, bad


def test_health_stays_open_for_probes(guarded: ServerThread) -> None:
    assert httpx.get(guarded.url + "/api/v1/health").json() == {"status": "ok"}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_other_addresses_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(InsecureBind, match=f"refusing to listen on {host} without an API token"):
        check_bind(host, None)
    check_bind(host, TOKEN)


def test_mn_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIRROR_NEURON_API_TOKEN", "MN_API_TOKEN")}
    env["MIRROR_NEURON_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: refusing to listen on 0.0.0.0 without an API token")
    assert "MIRROR_NEURON_API_TOKEN" in out.stderr


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Host": "rebound.example:4000"},
        {"Host": "rebound.example", "Origin": "http://rebound.example"},
    ],
)
def test_without_a_token_web_pages_cannot_reach_the_server(api: httpx.Client, headers: dict) -> None:
    """A browser on another site (or a DNS name rebound to 127.0.0.1) gets 403, even for uploads."""
    response = api.post(
        "/jobs/upload", files={"bundle": ("b.zip", b"PK", "application/zip")}, headers=headers
    )
    assert response.status_code == 403
    assert response.json() == {"error": "only local clients may call this server without an API token"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://127.0.0.1:4000"}, {"Origin": "http://localhost:8080"}, {"Host": "[::1]:4000"}],
)
def test_local_clients_and_local_pages_are_let_through(api: httpx.Client, headers: dict) -> None:
    assert api.get("/jobs", params={"limit": 1}, headers=headers).status_code == 200
