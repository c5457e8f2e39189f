"""A real cluster: `mn serve` processes on one real `redis-server` (or one SQLite file).

Each test starts its own nodes (subprocesses, loopback ports) on a fresh Redis namespace,
with a short lease (``MIRROR_NEURON_LEASE_TTL``) and sweep interval so that failover takes
about two seconds. Executors run ``host_local`` and append to a log file outside any
sandbox, so the tests count executor runs from outside.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from redis_server import RedisServer
from security.conftest import MnServer
from waiting import eventually

pytestmark = pytest.mark.slow

LEASE_TTL = "1.5"
SWEEP = "0.3"
WAIT = 60.0
_namespaces = itertools.count(1)


def slow_job(n: int, log: Path, *, seconds: float = 0.3, policy: str = "cluster_recover") -> dict[str, Any]:
    """``n`` executor runs of ``seconds`` each (one at a time), then a sink that completes after ``n``."""
    script = (
        "import json,os,time;"
        "i=json.load(open(os.environ['MIRROR_NEURON_INPUT_FILE']))['i'];"
        f"open({str(log)!r},'a').write(f'start {{i}}\\n');"
        f"time.sleep({seconds});"
        "print(json.dumps({'i': i, 'square': i * i}))"
    )
    worker = {"runner": "host_local", "command": [sys.executable, "-c", script]}
    return {
        "manifest_version": "1.0",
        "graph_id": "slow_squares",
        "entrypoints": ["split"],
        "initial_inputs": {"split": [{"i": k} for k in range(n)]},
        "policies": {"recovery_mode": policy},
        "nodes": [
            {"node_id": "split", "agent_type": "router", "config": {"emit_type": "work"}},
            {"node_id": "work", "agent_type": "executor", "config": worker},
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": n}},
        ],
        "edges": [
            {"edge_id": "e1", "from_node": "split", "to_node": "work", "message_type": "work"},
            {"edge_id": "e2", "from_node": "work", "to_node": "sink", "message_type": "*"},
        ],
    }


def waiting_job(**config: Any) -> dict[str, Any]:
    """Stays running until a second message reaches its sink; ``config`` goes to an executor
    (only when given, to ask for a pool)."""
    nodes: list[dict[str, Any]] = [
        {"node_id": "entry", "agent_type": "router", "config": {}},
        {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": 2}},
    ]
    edges = [{"edge_id": "e1", "from_node": "entry", "to_node": "sink", "message_type": "init"}]
    if config:
        nodes.append(
            {"node_id": "gpu_work", "agent_type": "executor", "config": {"command": ["true"], **config}}
        )
        edges.append({"edge_id": "e2", "from_node": "entry", "to_node": "gpu_work", "message_type": "never"})
    return {
        "manifest_version": "1.0",
        "graph_id": "waiting",
        "entrypoints": ["entry"],
        "initial_inputs": {"entry": [{"n": 1}]},
        "nodes": nodes,
        "edges": edges,
    }


class Cluster:
    """Named `mn serve` nodes on one store."""

    def __init__(self, root: Path, store_url: str, namespace: str) -> None:
        self.root = root
        self.store_url = store_url
        self.env = {
            "MIRROR_NEURON_LEASE_TTL": LEASE_TTL,
            "MIRROR_NEURON_REDIS_NAMESPACE": namespace,
            "MIRROR_NEURON_STORE_URL": store_url,
        }
        self.nodes: dict[str, MnServer] = {}

    def start(self, name: str, *flags: str, env: dict[str, str] | None = None) -> MnServer:
        (self.root / name).mkdir(exist_ok=True)
        server = MnServer(
            self.root / name,
            "--store",
            self.store_url,
            "--node-name",
            name,
            "--allow-host-local",
            "--sweep-interval",
            SWEEP,
            *flags,
            env={**self.env, **(env or {})},
        )
        self.nodes[name] = server.start()
        return server

    def api(self, name: str) -> httpx.Client:
        return self.nodes[name].client(timeout=WAIT)

    def mn(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``mn`` CLI as a separate process with only the store URL (no server named)."""
        env = {**os.environ, **self.env}
        env.pop("MIRROR_NEURON_API_TOKEN", None)
        argv = [sys.executable, "-m", "mirror_neuron", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT, check=False)

    def stop_all(self) -> None:
        for name, server in self.nodes.items():
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.stop(signal.SIGKILL)
            (self.root / f"{name}.stderr").write_text("".join(server.stderr))  # to read after a failure


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    group = Cluster(tmp_path, redis_server.url, f"mn_cluster_{os.getpid()}_{next(_namespaces)}")
    yield group
    group.stop_all()


def submit(api: httpx.Client, job: dict[str, Any], **params: str) -> str:
    response = api.post("/jobs", json=job, params=params)
    assert response.status_code == 201, response.text
    return str(response.json()["job_id"])


def record(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def events(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/jobs/{job_id}/events", params={"limit": 10_000}).json()["data"])


def sink_processed(api: httpx.Client, job_id: str) -> int:
    agents = {a["agent_id"]: a for a in api.get(f"/jobs/{job_id}/agents").json()["data"]}
    return int(agents.get("sink", {}).get("processed_messages") or 0)  # none yet: not stored yet


def at_least(low: int, count: int) -> int:
    """``count`` when it is at least ``low``, else 0 (for :func:`eventually`, which returns it)."""
    return count if count >= low else 0


def finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}/wait", params={"timeout": WAIT})
    assert response.status_code == 200, response.text
    return dict(response.json())


def squares(done: dict[str, Any]) -> list[Any]:
    """The result as an uninterrupted run gives it: each executor's output, in input order."""
    return [json.loads(m["sandbox"]["stdout"]) for m in done["result"]["output"]["messages"]]


def starts(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines()]


def frozen_until_claimed(owner: MnServer, api: httpx.Client, job_id: str, claimer: str) -> None:
    """SIGSTOP the owner until node ``claimer`` owns the job, then let the owner go on (a zombie)."""
    assert owner.proc is not None
    os.kill(owner.proc.pid, signal.SIGSTOP)
    try:
        eventually(lambda: record(api, job_id)["node"] == claimer, what=f"{claimer} claims the job")
    finally:
        os.kill(owner.proc.pid, signal.SIGCONT)


def assert_clean_history(history: list[dict[str, Any]]) -> None:
    """Dense seqs from 1, one start and one end: no gap and no duplicate."""
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    types = [e["type"] for e in history]
    assert types.count("job_running") == 1 and types.count("job_completed") == 1, types


def test_a_killed_owners_job_is_claimed_and_completes_exactly(cluster: Cluster, tmp_path: Path) -> None:
    for name in ("n1", "n2", "n3"):
        cluster.start(name)
    log, n = tmp_path / "runs.log", 6
    with cluster.api("n1") as api:
        job_id = submit(api, slow_job(n, log))
        owner = record(api, job_id)["node"]
        first = eventually(lambda: events(api, job_id), what="the first events stored")[0]
        assert first["type"] == "job_placed"
        committed = eventually(lambda: at_least(2, sink_processed(api, job_id)), what="two results stored")
    cluster.nodes[owner].stop(signal.SIGKILL)
    other = next(name for name in cluster.nodes if name != owner)
    with cluster.api(other) as api:
        done = finished(api, job_id)
        history = events(api, job_id)
    assert done["status"] == "completed" and done["node"] != owner and done["lease_epoch"] == 2
    assert squares(done) == [{"i": i, "square": i * i} for i in range(n)]
    claimed = [e for e in history if e["type"] == "job_claimed"]
    assert len(claimed) == 1 and claimed[0]["previous"] == owner and claimed[0]["epoch"] == 2
    assert "job_owner_lost" in [e["type"] for e in history]
    assert_clean_history(history)
    runs = starts(log)
    assert all(runs.count(i) == 1 for i in range(committed)), runs  # finished before the kill: never again
    assert sorted(set(runs)) == list(range(n)) and len(runs) <= n + 1, runs  # at most the one in flight


def test_a_zombie_owner_is_fenced_and_the_history_has_no_gap_or_duplicate(
    cluster: Cluster, tmp_path: Path
) -> None:
    for name in ("n1", "n2"):
        cluster.start(name)
    log, n = tmp_path / "runs.log", 8
    zombie = cluster.nodes["n2"]
    with cluster.api("n1") as api:
        job_id = submit(api, slow_job(n, log), node="n2")
        eventually(lambda: sink_processed(api, job_id) >= 1, what="the job under way on n2")
        frozen_until_claimed(zombie, api, job_id, "n1")
        done = finished(api, job_id)
        history = events(api, job_id)
    assert done["status"] == "completed" and done["lease_epoch"] == 2
    assert squares(done) == [{"i": i, "square": i * i} for i in range(n)]
    assert_clean_history(history)
    assert len({e["seq"] for e in history}) == len(history)
    with zombie.client() as old:  # the woken owner let the job go without writing
        eventually(lambda: old.get("/system/summary").json()["hosted"] == 0, what="n2 stopped the job")
        assert record(old, job_id)["status"] == "completed"


def test_control_through_a_node_that_does_not_own_the_job_and_from_the_cli(cluster: Cluster) -> None:
    for name in ("n1", "n2"):
        cluster.start(name)
    with cluster.api("n1") as owner_api, cluster.api("n2") as api:
        job_id = submit(owner_api, waiting_job(), node="n1")
        assert api.post(f"/jobs/{job_id}/pause").json()["status"] == "paused"
        assert record(api, job_id)["status"] == "paused"
        sent = api.post(f"/jobs/{job_id}/agents/sink/messages", json={"n": 2})
        assert sent.status_code == 202 and sent.json()["status"] == "enqueued", sent.text
        assert record(api, job_id)["status"] == "paused"  # sent while paused: it waits
        assert api.post(f"/jobs/{job_id}/resume").json()["status"] == "running"
        assert finished(api, job_id)["result"]["output"]["count"] == 2
        # From a separate `mn` process that knows only the store.
        second = submit(owner_api, waiting_job(), node="n1")
        for verb, status in (("pause", "paused"), ("resume", "running")):
            out = cluster.mn("job", verb, second, "--json")
            assert out.returncode == 0 and json.loads(out.stdout)["status"] == status, out.stderr
        out = cluster.mn("job", "cancel", second, "--json", "-y")
        assert out.returncode == 0 and json.loads(out.stdout)["status"] == "cancelled", out.stderr
        assert "forced" not in json.loads(out.stdout)  # cancelled by its live owner
        assert record(api, second)["status"] == "cancelled"


def test_placement_spreads_jobs_and_follows_pools(cluster: Cluster) -> None:
    cluster.start("n1")
    cluster.start("n2")
    cluster.start("n3", env={"MIRROR_NEURON_EXECUTOR_POOL_CAPACITIES": "gpu=1"})
    with cluster.api("n1") as api:
        eventually(lambda: len(api.get("/nodes").json()["data"]) == 3, what="three nodes registered")
        jobs = [submit(api, waiting_job()) for _ in range(12)]
        placed = [record(api, job_id)["node"] for job_id in jobs]
        counts = sorted(placed.count(name) for name in ("n1", "n2", "n3"))
        assert counts[0] >= 3 and counts[-1] <= 5, placed  # spread by load, not all on the first node
        gpu = submit(api, waiting_job(pool="gpu"))
        assert record(api, gpu)["node"] == "n3"
        reason = eventually(lambda: events(api, gpu), what="the first events stored")[0]
        assert reason["type"] == "job_placed" and reason["node"] == "n3"
        refused = api.post("/jobs", json=waiting_job(pool="tpu"))
        assert refused.status_code == 503
        assert "no live runtime node has the executor pools" in refused.json()["error"]
        assert "n1 has no pool tpu" in refused.json()["error"]
        pinned = api.post("/jobs", json=waiting_job(pool="gpu"), params={"node": "n2"})
        assert pinned.status_code == 503 and "node n2 cannot host this job: it has no pool gpu" in pinned.text


def test_a_control_node_places_every_job_and_hosts_none(cluster: Cluster) -> None:
    cluster.start("worker")
    cluster.start("front", "--role", "control")
    with cluster.api("front") as api:
        job_id = submit(api, waiting_job())
        assert record(api, job_id)["node"] == "worker"
        assert api.get("/system/summary").json()["hosted"] == 0
        roles = {n["name"]: n["role"] for n in api.get("/nodes").json()["data"]}
        assert roles == {"worker": "runtime", "front": "control"}
    cluster.nodes["worker"].stop()
    with cluster.api("front") as api:
        refused = api.post("/jobs", json=waiting_job())
        assert refused.status_code == 503 and "no live runtime node" in refused.json()["error"]


def test_drain_moves_live_jobs_to_other_nodes(cluster: Cluster, tmp_path: Path) -> None:
    for name in ("n1", "n2"):
        cluster.start(name)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with cluster.api("n2") as api:
        jobs = [submit(api, slow_job(6, log, policy="local_restart"), node="n1") for log in logs]
        for job_id in jobs:
            eventually(lambda j=job_id: sink_processed(api, j) >= 1, what="under way on n1")
        out = cluster.mn("node", "drain", "n1")
        assert out.returncode == 0 and "draining" in out.stdout, out.stderr
        for job_id, log in zip(jobs, logs, strict=True):
            done = finished(api, job_id)
            assert done["status"] == "completed" and done["node"] == "n2"
            assert squares(done) == [{"i": i, "square": i * i} for i in range(6)]
            types = [e["type"] for e in events(api, job_id)]
            assert types.count("job_suspended") == 1 and types.count("job_claimed") == 1
            assert sorted(set(starts(log))) == list(range(6))
        listed = json.loads(cluster.mn("node", "list", "--json").stdout)
        assert {n["name"]: n["drain"] for n in listed if n.get("cluster")} == {"n1": True, "n2": False}
        refused = api.post("/jobs", json=waiting_job(), params={"node": "n1"})
        assert refused.status_code == 503  # a draining node takes no job
    unknown = cluster.mn("node", "drain", "nope")
    assert unknown.returncode != 0 and "no node named nope" in unknown.stderr


def test_two_nodes_sharing_one_sqlite_file_fail_over_and_fence(tmp_path: Path) -> None:
    group = Cluster(tmp_path, f"sqlite:///{tmp_path / 'cluster.db'}", "unused")
    try:
        group.start("a")
        group.start("b")
        log = tmp_path / "runs.log"
        with group.api("b") as api:
            job_id = submit(api, slow_job(6, log), node="a")
            committed = eventually(lambda: at_least(1, sink_processed(api, job_id)), what="under way on a")
            frozen_until_claimed(group.nodes["a"], api, job_id, "b")
            done = finished(api, job_id)
            history = events(api, job_id)
        assert done["status"] == "completed" and squares(done) == [
            {"i": i, "square": i * i} for i in range(6)
        ]
        assert_clean_history(history)
        assert all(starts(log).count(i) == 1 for i in range(committed))
    finally:
        group.stop_all()


def test_a_node_of_another_version_keeps_a_new_node_out(cluster: Cluster) -> None:
    from mirror_neuron.store.redis import RedisStore

    store = RedisStore(cluster.store_url, namespace=cluster.env["MIRROR_NEURON_REDIS_NAMESPACE"])
    store.put_node("old", {"role": "runtime", "version": "9.9.0"}, 60)
    store.close()
    refused = cluster.mn("serve", "--port", "0", "--node-name", "new")
    assert refused.returncode == 1, refused.stderr
    assert "node(s) old (9.9.0) run another version than this one" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_nodes_call_each_other_with_the_clusters_token(cluster: Cluster) -> None:
    token, other = "cluster-token-" + "x" * 24, "another-token-" + "y" * 24
    cluster.start("n1", "--token", token)
    cluster.start("n2", "--token", token)
    cluster.start("odd", "--token", other)
    auth = {"Authorization": f"Bearer {token}"}
    with cluster.nodes["n1"].client(headers=auth) as api:
        job_id = submit(api, waiting_job(), node="n2")  # forwarded to n2 with the token
        assert record(api, job_id)["node"] == "n2"
        assert api.post(f"/jobs/{job_id}/pause").json()["status"] == "paused"  # a call to n2
        assert api.post("/internal/control", json={"op": "node"}).json()["ok"] is True
    with cluster.nodes["n1"].client() as anonymous:
        assert anonymous.post("/internal/control", json={"op": "node"}).status_code == 401
    with cluster.nodes["odd"].client(headers={"Authorization": f"Bearer {other}"}) as api:
        refused = api.post("/jobs", json=waiting_job(), params={"node": "n1"})
        assert refused.status_code == 503
        assert "every node of a cluster needs the same API token" in refused.json()["error"]


def test_a_job_recovers_on_a_node_without_its_bundle_folder(cluster: Cluster, tmp_path: Path) -> None:
    """The bundle's files are stored with the job: a node of another machine (here: the dead
    node's upload folder deleted) recovers it from the store."""
    log = tmp_path / "runs.log"
    bundle = tmp_path / "bundle"
    (bundle / "payloads" / "work").mkdir(parents=True)
    (bundle / "payloads" / "work" / "square.py").write_text(
        "import json, os, time\n"
        "i = json.load(open(os.environ['MIRROR_NEURON_INPUT_FILE']))['i']\n"
        f"open({str(log)!r}, 'a').write(f'start {{i}}\\n')\n"
        "time.sleep(0.3)\n"
        "print(json.dumps({'i': i, 'square': i * i}))\n"
    )
    job = slow_job(6, log)
    job["nodes"][1]["config"] = {
        "runner": "host_local",
        "upload_path": "work",
        "workdir": "/sandbox/job/work",
        "command": [sys.executable, "square.py"],
    }
    (bundle / "manifest.json").write_text(json.dumps(job))
    first = cluster.start("n1")
    cluster.start("n2")
    from mirror_neuron.server.client import zip_bundle

    with cluster.api("n2") as api:
        files = {"bundle": ("bundle.zip", zip_bundle(bundle), "application/zip")}
        sent = api.post("/jobs/upload", files=files, params={"node": "n1"})
        assert sent.status_code == 201, sent.text
        job_id = sent.json()["job_id"]
        eventually(lambda: sink_processed(api, job_id) >= 1, what="under way on n1")
        first.stop(signal.SIGKILL)
        uploads = first.data_dir / "uploads"
        assert any(uploads.iterdir())
        shutil.rmtree(uploads)  # what a node on another machine does not have
        done = finished(api, job_id)
    assert done["status"] == "completed" and done["node"] == "n2"
    assert squares(done) == [{"i": i, "square": i * i} for i in range(6)]
