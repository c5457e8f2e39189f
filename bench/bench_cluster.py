"""A 3-node cluster on one redis-server: failover, throughput, control through a non-owner, idle memory.

    python bench/bench_cluster.py [--lease-ttl 5] [--sweep-interval 2] [--repeat 5] [--jobs 30] [--quick]

Starts its own ``redis-server`` (a free port, nothing on disk) and ``mn serve`` nodes on it
(``sys.executable -m mirror_neuron serve --allow-host-local``, each with its own data and
temp directories, one fresh Redis namespace), then measures:

* failover (median / min / max of ``--repeat`` kills): a ``cluster_recover`` job of slow
  host_local executors is submitted through node A; once its sink has a message, the node
  hosting it is killed (SIGKILL, its process group). From the kill instant to the stored
  events' timestamps: the ``job_claimed`` of the node that took it over, the first event
  after its ``job_recovery_started`` (the job progressing again) and ``job_completed``.
  The killed node is restarted (same name, once its registration is dead) before the next
  kill. Goal: kill -> progressing <= 2 x the lease TTL;
* throughput: ``--jobs`` tiny jobs (router -> aggregator, no executor) submitted at once
  through node A, each awaited with ``/wait`` on the node hosting it; first submit -> last
  completion, with A alone and with 3 nodes (median of ``--repeat`` batches, after one
  warm-up batch);
* control calls: 200 ``POST /jobs/{id}/agents/sink/messages`` (and 50 pause / resume pairs)
  to a job pinned on A that never ends, sent to B (not the owner: forwarded to A) and to A;
  p50 / p99. Goal: <= 20 ms p99 on loopback through a non-owner;
* memory: VmRSS of each node started and idle (before it hosted anything), median.

``--quick``: ``--repeat 3 --jobs 12``. Nodes and redis are killed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

READY_LINE = "Application startup complete"
START_TIMEOUT = 60.0
TERMINAL_EVENTS = frozenset({"job_completed", "job_failed", "job_cancelled"})
#: Inputs of the failover job: runs of ~0.3 s, one after the other (one executor agent).
FAILOVER_INPUTS = 6
WORK_SECONDS = 0.3
CONTROL_CALLS = 200
PAUSE_PAIRS = 50
GOAL_CONTROL_P99_MS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any] | None) -> None:
    """SIGKILL a child started in its own session, with whatever it started."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# -- processes --------------------------------------------------------------------------


class Redis:
    """A throwaway ``redis-server`` on a free loopback port, keeping nothing on disk."""

    def __init__(self, root: Path) -> None:
        binary = os.environ.get("MIRROR_NEURON_TEST_REDIS_SERVER") or shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        kill_group(self.proc)


class Node:
    """One ``mn serve`` of the cluster; its name survives restarts."""

    def __init__(self, name: str, root: Path, store_url: str, env: dict[str, str], flags: list[str]) -> None:
        self.name = name
        self.root = root
        self.store_url = store_url
        self.env = {
            **env,
            "MIRROR_NEURON_DATA_DIR": str(root / "data"),
            "MIRROR_NEURON_TEMP_DIR": str(root / "tmp"),
        }
        self.flags = flags
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.url = ""
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)

    def start(self) -> Node:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        argv = [
            sys.executable, "-m", "mirror_neuron", "serve", "--store", self.store_url,
            "--port", str(self.port), "--node-name", self.name, "--allow-host-local", *self.flags,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the bench only; it kills the nodes
        )
        ready = threading.Event()
        threading.Thread(target=self._read_stderr, args=(self.proc, ready), daemon=True).start()
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(f"node {self.name} did not start:\n" + "".join(self.stderr))
        return self

    def _read_stderr(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.stderr.append(line)
            if READY_LINE in line:
                ready.set()
        ready.set()  # exited: let start() see it

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        kill_group(self.proc)

    def stop(self) -> None:
        """SIGINT (the node leaves the registry), SIGKILL if it takes too long."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


class Cluster:
    """redis-server and up to 3 nodes named a, b, c, in one temporary directory."""

    def __init__(self, root: Path, lease_ttl: float, sweep_interval: float) -> None:
        self.root = root
        self.redis = Redis(root).start()
        env = {
            **os.environ,
            "MIRROR_NEURON_LEASE_TTL": str(lease_ttl),
            "MIRROR_NEURON_REDIS_NAMESPACE": f"mnbench{uuid.uuid4().hex[:12]}",
        }
        for name in ("MIRROR_NEURON_API_TOKEN", "MIRROR_NEURON_STORE_URL", "MIRROR_NEURON_NODE_NAME"):
            env.pop(name, None)
        flags = ["--sweep-interval", str(sweep_interval)]
        self.nodes = {name: Node(name, root / name, self.redis.url, env, flags) for name in ("a", "b", "c")}

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive]

    def urls(self) -> dict[str, str]:
        return {n.name: n.url for n in self.running()}

    def see_each_other(self, timeout: float = 20.0) -> None:
        """Until every running node lists exactly the running nodes as alive."""
        want = {n.name for n in self.running()}
        deadline = time.monotonic() + timeout
        while True:
            seen = []
            for node in self.running():
                data = httpx.get(f"{node.url}/nodes", timeout=10).json()["data"]
                seen.append({n["name"] for n in data if n["alive"]})
            if all(s == want for s in seen):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes do not see each other: want {want}, seen {seen}")
            time.sleep(0.2)

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
        self.redis.stop()


# -- measurements -------------------------------------------------------------------------


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slow_manifest(n: int) -> dict[str, Any]:
    script = (
        "import json,os,time;i=json.load(open(os.environ['MIRROR_NEURON_INPUT_FILE']))['i'];"
        f"time.sleep({WORK_SECONDS});print(json.dumps({{'i': i}}))"
    )
    return {
        "manifest_version": "1.0",
        "graph_id": "bench_failover",
        "entrypoints": ["split"],
        "initial_inputs": {"split": [{"i": k} for k in range(n)]},
        "policies": {"recovery_mode": "cluster_recover"},
        "nodes": [
            {"node_id": "split", "agent_type": "router", "config": {"emit_type": "work"}},
            {
                "node_id": "work",
                "agent_type": "executor",
                "config": {"runner": "host_local", "command": [sys.executable, "-c", script]},
            },
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": n}},
        ],
        "edges": [
            {"edge_id": "e1", "from_node": "split", "to_node": "work", "message_type": "work"},
            {"edge_id": "e2", "from_node": "work", "to_node": "sink", "message_type": "*"},
        ],
    }


def tiny_manifest(complete_after: int = 1, graph_id: str = "bench_tiny") -> dict[str, Any]:
    return {
        "manifest_version": "1.0",
        "graph_id": graph_id,
        "entrypoints": ["entry"],
        "initial_inputs": {"entry": [{"ok": True}]},
        "nodes": [
            {"node_id": "entry", "agent_type": "router"},
            {"node_id": "sink", "agent_type": "aggregator", "config": {"complete_after": complete_after}},
        ],
        "edges": [{"from_node": "entry", "to_node": "sink", "message_type": "init"}],
    }


def new_events(api: httpx.Client, job_id: str, after: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        response = api.get(f"/jobs/{job_id}/events", params={"after": after, "limit": 1000})
        response.raise_for_status()
        page = response.json()
        out += page["data"]
        if page.get("next") is None:
            return out
        after = page["next"]


def failover_once(cluster: Cluster, inputs: int) -> dict[str, Any]:
    """Kill the node hosting a running cluster_recover job; seconds from the kill to each step."""
    entry = cluster.nodes["a"]
    with httpx.Client(base_url=entry.url, timeout=30) as api:
        response = api.post("/jobs", json=slow_manifest(inputs))
        if response.status_code != 201:
            raise RuntimeError(f"submit: {response.status_code} {response.text}")
        job_id = response.json()["job_id"]
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not any(e["type"] == "aggregator_received" for e in events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id}: the sink got nothing in 60 s: {events[-5:]}")
            time.sleep(0.02)
            events += new_events(api, job_id, events[-1]["seq"] if events else 0)
        record = api.get(f"/jobs/{job_id}").json()
    if record["status"] != "running":
        raise RuntimeError(f"job {job_id} is {record['status']} before the kill: make it slower")
    owner = cluster.nodes[record["node"]]
    killed_at = time.time()
    owner.kill()
    before = events[-1]["seq"]
    survivor = next(n for n in cluster.running() if n is not owner)
    with httpx.Client(base_url=survivor.url, timeout=30) as api:
        after = new_events(api, job_id, 0)  # everything: the dead owner's last writes included
        deadline = time.monotonic() + 120
        while not any(e["type"] in TERMINAL_EVENTS for e in after):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not end within 120 s of the kill: {after[-5:]}")
            time.sleep(0.05)
            after += new_events(api, job_id, after[-1]["seq"])
        final = api.get(f"/jobs/{job_id}").json()
    claims = [e for e in after if e["type"] == "job_claimed" and e["seq"] > before]
    started = [e for e in after if e["type"] == "job_recovery_started" and e["seq"] > before]
    end = next(e for e in after if e["type"] in TERMINAL_EVENTS)
    if not claims or not started or end["type"] != "job_completed":
        types = [e["type"] for e in after if e["seq"] > before]
        raise RuntimeError(f"job {job_id} after killing {owner.name}: {types[:40]} ... record {final}")
    progressing = next((e for e in after if e["seq"] > started[0]["seq"]), end)
    count = ((final.get("result") or {}).get("output") or {}).get("count")
    return {
        "victim": owner.name,
        "claimed_by": claims[0].get("node"),
        "claimed": epoch(claims[0]["timestamp"]) - killed_at,
        "progressing": epoch(progressing["timestamp"]) - killed_at,
        "completed": epoch(end["timestamp"]) - killed_at,
        "count": count,
        "claims": len(claims),
    }


def restart(cluster: Cluster, node: Node) -> None:
    """Start a killed node again under its name once the others list it dead."""
    deadline = time.monotonic() + 30
    probe = next(n for n in cluster.running())
    while True:
        data = httpx.get(f"{probe.url}/nodes", timeout=10).json()["data"]
        if not any(n["name"] == node.name and n["alive"] for n in data):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {node.name} still listed alive 30 s after its kill")
        time.sleep(0.2)
    node.start()
    cluster.see_each_other()


def failover(cluster: Cluster, repeat: int, inputs: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(repeat):
        run = failover_once(cluster, inputs)
        runs.append(run)
        restart(cluster, cluster.nodes[run["victim"]])
    return runs


async def batch(entry: str, urls: dict[str, str], jobs: int) -> float:
    """Seconds from the first submit of ``jobs`` tiny jobs (at once, through ``entry``) to the last end."""
    limits = httpx.Limits(max_connections=4 * jobs, max_keepalive_connections=4 * jobs)
    manifest = tiny_manifest()
    async with httpx.AsyncClient(base_url=entry, timeout=60, limits=limits) as api:

        async def one() -> None:
            response = await api.post("/jobs", json=manifest)
            if response.status_code != 201:
                raise RuntimeError(f"submit: {response.status_code} {response.text}")
            job_id = response.json()["job_id"]
            host = (await api.get(f"/jobs/{job_id}")).json()["node"]
            done = await api.get(f"{urls[host]}/jobs/{job_id}/wait", params={"timeout": 60}, timeout=70)
            if done.status_code != 200 or done.json()["status"] != "completed":
                raise RuntimeError(f"job {job_id} on {host}: {done.status_code} {done.text}")

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return time.perf_counter() - start


def throughput(cluster: Cluster, repeat: int, jobs: int) -> float:
    """Median jobs/s of ``repeat`` batches (after one warm-up batch) through node a."""
    entry, urls = cluster.nodes["a"].url, cluster.urls()
    asyncio.run(batch(entry, urls, jobs))
    return statistics.median(jobs / asyncio.run(batch(entry, urls, jobs)) for _ in range(repeat))


def timed(api: httpx.Client, path: str, status: int, **kwargs: Any) -> float:
    start = time.perf_counter()
    response = api.post(path, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != status:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
    return elapsed


def control(cluster: Cluster) -> dict[str, dict[str, float]]:
    """p50 / p99 ms of control calls to a job hosted on a, sent to b (not the owner) and to a."""
    owner, other = cluster.nodes["a"], cluster.nodes["b"]
    body = tiny_manifest(complete_after=10**9, graph_id="bench_control")
    with httpx.Client(base_url=owner.url, timeout=30) as api:
        response = api.post("/jobs", params={"node": owner.name}, json=body)
        if response.status_code != 201:
            raise RuntimeError(f"submit pinned: {response.status_code} {response.text}")
        job_id = response.json()["job_id"]
        record = api.get(f"/jobs/{job_id}").json()
        if record["node"] != owner.name or record["status"] != "running":
            raise RuntimeError(f"pinned job: {record}")
    results = {}
    try:
        for label, node in (("b (non-owner)", other), ("a (owner)", owner)):
            with httpx.Client(base_url=node.url, timeout=30) as api:
                path = f"/jobs/{job_id}/agents/sink/messages"
                for i in range(20):  # warm the connection, the handlers and the node-to-node link
                    timed(api, path, 202, json={"warm": i})
                sends = [timed(api, path, 202, json={"n": i}) for i in range(CONTROL_CALLS)]
                pairs = []
                for _ in range(PAUSE_PAIRS):
                    pairs.append(timed(api, f"/jobs/{job_id}/pause", 200))
                    pairs.append(timed(api, f"/jobs/{job_id}/resume", 200))
            results[f"message -> {label}"] = {"p50": pct(sends, 0.5), "p99": pct(sends, 0.99)}
            results[f"pause/resume -> {label}"] = {"p50": pct(pairs, 0.5), "p99": pct(pairs, 0.99)}
    finally:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{owner.url}/jobs/{job_id}/cancel", timeout=30)
    return results


def idle_rss(nodes: list[Node]) -> dict[str, float]:
    time.sleep(1.0)  # a few heartbeats and a sweep: idle, not starting
    return {n.name: n.rss_mb() for n in nodes}


# -- report --------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    runs = results["failover"]
    print(
        f"cluster of 3 mn serve nodes on redis-server; lease TTL {args.lease_ttl:g} s, "
        f"sweep {args.sweep_interval:g} s, repeat {args.repeat}, jobs {args.jobs}"
    )
    print()
    print(
        f"failover: kill -9 the owner of a cluster_recover job ({FAILOVER_INPUTS} x {WORK_SECONDS} s runs), "
        f"{len(runs)} kills"
    )
    print(f"  {'from the kill to':<40} {'median s':>9} {'min s':>7} {'max s':>7}")
    for key, label in (
        ("claimed", "job_claimed"),
        ("progressing", "progressing (1st event after recovery)"),
        ("completed", "job_completed"),
    ):
        values = [r[key] for r in runs]
        median = statistics.median(values)
        print(f"  {label:<40} {median:>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    victims = ", ".join(f"{r['victim']}->{r['claimed_by']}" for r in runs)
    counts = sorted({r["count"] for r in runs}, key=str)
    print(f"  killed -> claimed by: {victims}; sink count {counts} (want {FAILOVER_INPUTS})")
    goal = 2 * args.lease_ttl
    worst = max(r["progressing"] for r in runs)
    flag = "ok" if worst <= goal else "MISSED"
    print(f"  goal: kill → progressing ≤ 2 × lease TTL ({goal:g} s): {flag} (max {worst:.2f} s)")  # noqa: RUF001
    print()
    one, three = results["throughput"]
    print(f"throughput: {args.jobs} tiny jobs submitted at once through node a (median of {args.repeat})")
    print(f"  1 node    {one:>8.1f} jobs/s")
    print(f"  3 nodes   {three:>8.1f} jobs/s")
    print(f"  ratio     {three / one:>8.2f} x")
    print()
    print(f"control calls to a job hosted on a ({CONTROL_CALLS} messages, {PAUSE_PAIRS} pause/resume pairs)")
    print(f"  {'call -> node':<32} {'p50 ms':>8} {'p99 ms':>8}")
    for label, r in results["control"].items():
        print(f"  {label:<32} {r['p50']:>8.2f} {r['p99']:>8.2f}")
    worst_ms = max(r["p99"] for label, r in results["control"].items() if "non-owner" in label)
    flag = "ok" if worst_ms <= GOAL_CONTROL_P99_MS else "MISSED"
    print(f"  goal: ≤ {GOAL_CONTROL_P99_MS:g} ms p99 on loopback (through the non-owner): {flag}")
    print()
    rss = results["rss"]
    each = ", ".join(f"{name} {mb:.1f}" for name, mb in rss.items())
    print(f"memory of an idle node: median {statistics.median(rss.values()):.1f} MB RSS ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease-ttl", type=float, default=5.0)
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=None, help="default 5 (3 with --quick)")
    parser.add_argument("--jobs", type=int, default=None, help="default 30 (12 with --quick)")
    parser.add_argument("--quick", action="store_true", help="--repeat 3 --jobs 12")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    args = parser.parse_args()
    args.repeat = args.repeat or (3 if args.quick else 5)
    args.jobs = args.jobs or (12 if args.quick else 30)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C

    root = Path(tempfile.mkdtemp(prefix="mn-bench-cluster-"))
    cluster: Cluster | None = None
    try:
        cluster = Cluster(root, args.lease_ttl, args.sweep_interval)
        a, b, c = cluster.nodes.values()
        a.start()
        rss = idle_rss([a])
        cluster.see_each_other()
        one = throughput(cluster, args.repeat, args.jobs)
        b.start()
        c.start()
        rss |= idle_rss([b, c])
        cluster.see_each_other()
        three = throughput(cluster, args.repeat, args.jobs)
        calls = control(cluster)
        runs = failover(cluster, args.repeat, FAILOVER_INPUTS)
        results = {"failover": runs, "throughput": (one, three), "control": calls, "rss": rss}
    except BaseException:
        if cluster is not None:
            for node in cluster.nodes.values():
                if node.stderr:
                    tail = "".join(list(node.stderr)[-15:])
                    print(f"--- node {node.name} stderr (last lines) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    report(args, results)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
