"""A hostile REST client against the real server: oversized manifests, unreachable ids, host paths.

Each test repeats an attack that once worked: a 1e6-node manifest stalled the server (so
caps are configured low here and the request just over them must fail fast, before any
bundle is built), a ``/`` in a graph id made a job no route could reach, and job records
told clients the server's private upload folder and control socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import aggregator, manifest, router
from mirror_neuron.server import ManifestLimits

from .conftest import ServerThread, collect, serve
from .test_upload import bundle_entries, make_zip, upload

CAP = 5
LIMITS = ManifestLimits(max_bytes=4_000, max_nodes=CAP, max_edges=CAP, max_initial_inputs=CAP)
#: Long enough for a loaded 2-core box; a server whose loop is blocked never answers.
PATIENCE = 20.0


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with serve(tmp_path_factory.mktemp("capped"), manifests=LIMITS, max_body_bytes=100_000) as srv:
        yield srv


@pytest.fixture
def capped_api(capped: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=capped.url + "/api/v1", timeout=30) as client:
        yield client


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every source the runtime was asked to load (the server thread shares this process)."""
    import mirror_neuron.runtime.runtime as runtime_module

    calls: list[Any] = []
    real = runtime_module.load_bundle

    def recording(source: Any) -> Any:
        calls.append(source)
        return real(source)

    monkeypatch.setattr(runtime_module, "load_bundle", recording)
    return calls


def routers(n: int, **top: Any) -> dict[str, Any]:
    return manifest([router(f"n{i:04d}") for i in range(n)], **top)


def chain(n_edges: int) -> dict[str, Any]:
    return manifest([router("a"), router("b")], [("a", "b", f"t{i}") for i in range(n_edges)])


# -- caps on what a manifest may ask for ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (routers(CAP + 1), f"manifest has {CAP + 1} nodes, more than this server's limit of {CAP}"),
        (chain(CAP + 1), f"manifest has {CAP + 1} edges, more than this server's limit of {CAP}"),
        (
            routers(2, entrypoints=["n0000", "n0001"], initial_inputs=[{}, {}, {}]),
            f"manifest has 6 initial inputs (a list counts once per entrypoint), more than this "
            f"server's limit of {CAP}",
        ),
        (routers(1, initial_inputs={"n0000": [{}] * (CAP + 1)}), f"manifest has {CAP + 1} initial inputs"),
        (routers(1, entrypoints=["n0000"] * (CAP + 1)), f"manifest has {CAP + 1} initial inputs"),
    ],
    ids=["nodes", "edges", "list-inputs-per-entrypoint", "dict-inputs", "repeated-entrypoints"],
)
def test_counts_over_a_cap_are_422_before_any_bundle_is_built(
    capped: ServerThread, capped_api: httpx.Client, built: list[Any], data: dict, message: str
) -> None:
    response = capped_api.post("/jobs", json=data)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"] and message in response.json()["errors"][0]
    response = upload(capped_api, make_zip(bundle_entries(data)))
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert built == []  # refused before normalising or validating
    assert not any(capped.app.state.uploads.root.iterdir())


def test_a_manifest_at_every_cap_is_accepted(capped_api: httpx.Client, built: list[Any]) -> None:
    data = manifest(
        [router(f"n{i}") for i in range(CAP)],
        [("n0", "n1", f"t{i}") for i in range(CAP)],
        initial_inputs=[{"i": i} for i in range(CAP)],
    )
    response = capped_api.post("/jobs", json=data)
    assert response.status_code == 201, response.text
    assert len(built) == 1
    capped_api.post(f"/jobs/{response.json()['job_id']}/cancel")


def test_manifest_bytes_over_the_cap_are_413(
    capped: ServerThread, capped_api: httpx.Client, built: list
) -> None:
    fat = manifest([router("a")], metadata={"padding": "x" * LIMITS.max_bytes})
    response = capped_api.post("/jobs", json=fat)
    assert response.status_code == 413, response.text
    assert f"more than this server's limit of {LIMITS.max_bytes} bytes" in response.json()["error"]
    # In a zip the manifest compresses to almost nothing: its unpacked size is what counts.
    response = upload(capped_api, make_zip(bundle_entries(fat)))
    assert response.status_code == 413, response.text
    assert response.json()["error"].startswith("manifest.json is ")
    assert built == [] and not any(capped.app.state.uploads.root.iterdir())


# -- parsing never blocks the event loop ----------------------------------------------------


def blocking(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> tuple[threading.Event, threading.Event]:
    """Make ``module.name`` wait for a go-ahead: (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    real: Callable[..., Any] = getattr(module, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(PATIENCE)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    return entered, release


def _runtime_module() -> Any:
    import mirror_neuron.runtime.runtime as module

    return module


def _routes_module() -> Any:
    import mirror_neuron.server.routes as module

    return module


def _upload_module() -> Any:
    import mirror_neuron.server.upload as module

    return module


@pytest.mark.parametrize(
    ("how", "where"),
    [
        ("json", lambda: (_routes_module(), "decode_body")),
        ("json", lambda: (_runtime_module(), "load_bundle")),
        ("zip", lambda: (_upload_module(), "check_manifest_file")),
        ("zip", lambda: (_runtime_module(), "load_bundle")),
    ],
    ids=["json-decode", "json-validate", "zip-decode", "zip-validate"],
)
def test_health_answers_while_a_big_manifest_is_parsed(
    server: ServerThread, api: httpx.Client, monkeypatch: pytest.MonkeyPatch, how: str, where: Any
) -> None:
    """Parsing is held mid-way (as a slow parse of a huge manifest would be): the server
    must go on answering, which it cannot if the parse runs on its event loop."""
    module, name = where()
    entered, release = blocking(monkeypatch, module, name)
    data = manifest([router(f"n{i}") for i in range(5_000)])
    results: list[httpx.Response] = []

    def submit() -> None:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=60) as client:
            if how == "json":
                results.append(client.post("/jobs", json=data))
            else:
                results.append(upload(client, make_zip(bundle_entries(data))))

    submitter = threading.Thread(target=submit)
    submitter.start()
    try:
        assert entered.wait(PATIENCE), "the manifest never reached the parser"
        health = httpx.get(server.url + "/api/v1/health", timeout=PATIENCE)
        assert health.status_code == 200
        assert api.get("/jobs", params={"limit": 1}).status_code == 200
    finally:
        release.set()
        submitter.join(60)
    [response] = results
    assert response.status_code == 201, response.text
    api.post(f"/jobs/{response.json()['job_id']}/cancel")


# -- paged lists ---------------------------------------------------------------------------


def test_agents_come_in_pages_sorted_by_id(api: httpx.Client) -> None:
    ids = [f"agent_{i:04d}" for i in range(1_001)]
    job_id = api.post("/jobs", json=manifest([router(i) for i in reversed(ids)])).json()["job_id"]
    first = api.get(f"/jobs/{job_id}/agents").json()  # the default page: 1,000
    assert [a["agent_id"] for a in first["data"]] == ids[:1000] and first["next"] == ids[999]
    last = api.get(f"/jobs/{job_id}/agents", params={"after": first["next"]}).json()
    assert [a["agent_id"] for a in last["data"]] == ids[1000:] and last["next"] is None
    assert api.get(f"/jobs/{job_id}/agents", params={"limit": 10_001}).status_code == 422
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    # An ended job is read from the store: the same pages.
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 300} | ({"after": after} if after else {})
        page = api.get(f"/jobs/{job_id}/agents", params=params).json()
        seen += [a["agent_id"] for a in page["data"]]
        if (after := page["next"]) is None:
            break
    assert seen == ids


def test_events_come_in_pages_with_the_last_seq_as_next(api: httpx.Client) -> None:
    job_id = api.post("/jobs", json=collect(1)).json()["job_id"]
    api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).raise_for_status()
    every = api.get(f"/jobs/{job_id}/events").json()
    assert every["next"] is None and len(every["data"]) > 4
    page = api.get(f"/jobs/{job_id}/events", params={"limit": 3}).json()
    assert page["data"] == every["data"][:3] and page["next"] == 3
    seen, after = [], 0
    while after is not None:
        page = api.get(f"/jobs/{job_id}/events", params={"after": after, "limit": 3}).json()
        seen += page["data"]
        after = page["next"]
    assert seen == every["data"]


def test_default_pages_and_the_client_that_walks_them(tmp_path: Path) -> None:
    from mirror_neuron.server.client import ServerClient

    with serve(tmp_path, agents_page=3, events_page=4) as srv, ServerClient(srv.url) as client:
        data = manifest(
            [router("a"), router("b"), router("c"), router("d"), aggregator("z", complete_after=1)]
        )
        job_id = client.request("POST", "/jobs", json=data)["job_id"]
        page = client.request("GET", f"/jobs/{job_id}/agents")
        assert len(page["data"]) == 3 and page["next"] == "c"
        assert [a["agent_id"] for a in client.agents(job_id)] == ["a", "b", "c", "d", "z"]
        client.cancel(job_id)
        client.wait(job_id, 10)
        page = client.request("GET", f"/jobs/{job_id}/events")
        assert len(page["data"]) == 4 and page["next"] == 4
        events = client.events(job_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)) and len(events) > 4
        assert events[-1]["type"] == "job_cancelled"


# -- ids no route can reach ----------------------------------------------------------------


@pytest.mark.parametrize("graph_id", ["a/b", "..", "evil\u202etxt", "title\x1b]0;x\x07", " g"])
def test_a_graph_id_that_no_route_could_reach_is_refused(api: httpx.Client, graph_id: str) -> None:
    response = api.post("/jobs", json=manifest([router("a")], graph_id=graph_id))
    assert response.status_code == 422
    assert response.json()["errors"][0].startswith("graph_id ")


def test_a_node_id_with_a_slash_is_refused(api: httpx.Client) -> None:
    response = upload(api, make_zip(bundle_entries(manifest([router("a/b")]))))
    assert response.status_code == 422
    assert 'node_id "a/b" of node #1 is not a valid id: it contains a slash (/)' in response.json()["errors"]


# -- host paths ----------------------------------------------------------------------------


def test_job_records_never_show_host_paths(server: ServerThread, api: httpx.Client) -> None:
    uploads = str(server.app.state.uploads.root)
    control = server.app.state.runtime.control_endpoint
    job_id = upload(api, make_zip(bundle_entries(collect(2)))).json()["job_id"]
    answers = [
        api.get(f"/jobs/{job_id}"),
        api.get("/jobs"),
        api.get("/jobs", params={"include_terminal": "false"}),
        api.get(f"/jobs/{job_id}/events"),
        api.get(f"/jobs/{job_id}/agents"),
    ]
    record = answers[0].json()
    assert record["manifest_ref"]["job_path"] is None and record["manifest_ref"]["manifest_path"] is None
    assert record["manifest_ref"]["graph_id"] == "test_graph" and "control" not in record
    listed = next(j for j in answers[1].json()["data"] if j["job_id"] == job_id)
    assert "manifest_ref" not in listed and "control" not in listed  # a list shows summaries
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    answers.append(api.get(f"/jobs/{job_id}/wait", params={"timeout": 10}))
    with api.stream("GET", f"/jobs/{job_id}/stream") as stream:
        frames = "".join(stream.iter_text())
    assert "job_cancelled" in frames
    for text in [*(a.text for a in answers), frames]:
        assert uploads not in text and 'job_path":"/' not in text
        assert control is None or control not in text
    # The local CLI reads the store itself and still shows where the bundle was.
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(server.app.state.runtime.config.data_dir)}
    env.pop("MIRROR_NEURON_STORE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "job", "inspect", job_id, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    job_path = Path(json.loads(out.stdout)["manifest_ref"]["job_path"])
    assert job_path.is_relative_to(Path(uploads).resolve()), out.stderr


def test_upload_errors_do_not_name_the_upload_folder(server: ServerThread, api: httpx.Client) -> None:
    response = upload(api, make_zip({"manifest.json": json.dumps(manifest([router("a")]))}))
    assert response.status_code == 422 and "missing payloads/: <upload>/payloads" in response.json()["error"]
    assert str(server.app.state.uploads.root) not in response.text
