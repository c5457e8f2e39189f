"""Sandbox overhead and executor throughput, measured side by side in one run.

    python bench/bench_sandbox.py [--runs 60] [--jobs 200] [--script json|print] [--json]

Per-run latency (median of ``--runs``) of the same trivial ``python3`` script:
  * bare      - ``asyncio.create_subprocess_exec(python3, script)`` with pipes
  * host      - the host_local runner (bash wrapper, own process group, capped pipes)
  * sandbox   - the bubblewrap runner (namespaces, mounts, uid drop, rlimits)
  * executor  - the whole sandboxed invocation: staging dir, runtime files, run, cleanup
Throughput: ``--jobs`` invocations through a LeaseManager pool of 4, bare vs executor.
The script is run by the *system* ``python3`` in every case, which is what the sandbox sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mirror_neuron.execution import Executor, ExecutorSettings, Invocation, LeaseManager
from mirror_neuron.execution.runners import BwrapRunner, HostRunner, RunSpec, sandbox_available
from mirror_neuron.messages import normalize

SCRIPTS = {
    "json": "import json, os\nprint(json.dumps({'ok': True, 'pid': os.getpid()}))\n",
    "print": "print('ok')\n",
}
SCRIPT = SCRIPTS["json"]
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"


async def bare(script: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        PYTHON, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=script.parent
    )
    await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("bare run failed")


async def medians_ms(fns: dict[str, Callable[[], Awaitable[object]]], runs: int) -> dict[str, float]:
    """Median latency of each variant, interleaved so machine drift hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        await fn()  # warm up (page cache, sandbox /etc copy)
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            await fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def runner_spec(staging: Path, root: str) -> RunSpec:
    return RunSpec(name="bench", command="python3 s.py", env={}, staging_dir=staging, root=root, workdir=root)


async def throughput(fn: Callable[[], Awaitable[object]], jobs: int, pool: int = 4) -> float:
    leases = LeaseManager({"default": pool})

    async def one() -> None:
        lease = await leases.acquire()
        try:
            await fn()
        finally:
            leases.release(lease)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return jobs / (time.perf_counter() - start)


def setup() -> Path:
    """A world-traversable work dir with the script in payloads/, bare/ and staged/."""
    work = Path(tempfile.mkdtemp(prefix="mn-bench-", dir="/tmp"))
    work.chmod(0o755)
    for name in ("payloads", "bare", "staged"):
        (work / name).mkdir()
        (work / name / "s.py").write_text(SCRIPT)
    return work


async def main(runs: int, jobs: int) -> dict[str, float]:
    ok, why = sandbox_available()
    if not ok:
        raise SystemExit(f"sandbox unavailable: {why}")
    work = setup()
    payloads, bare_dir, staged = work / "payloads", work / "bare", work / "staged"
    sandbox, host = BwrapRunner(), HostRunner({"PATH": "/usr/local/bin:/usr/bin:/bin"})
    sandbox.prepare(staged)
    settings = ExecutorSettings.from_config({"command": ["python3", "s.py"], "upload_path": "s.py"})
    executor = Executor(settings)
    invocation = Invocation(
        job_id="bench-1",
        agent_id="worker",
        message=normalize({"n": 1}),
        payloads_path=payloads,
        temp_dir=work,
    )

    async def run_sandbox() -> None:
        result = await sandbox.run(runner_spec(staged, "/sandbox/job"))
        assert result.ok, result

    async def run_host() -> None:
        result = await host.run(runner_spec(staged, str(staged)))
        assert result.ok, result

    async def run_executor() -> None:
        outcome = await executor.execute(invocation)
        assert outcome.ok, outcome.error

    out = await medians_ms(
        {
            "bare_ms": lambda: bare(bare_dir / "s.py"),
            "host_runner_ms": run_host,
            "sandbox_runner_ms": run_sandbox,
            "sandbox_executor_ms": run_executor,
        },
        runs,
    )
    out["sandbox_runner_over_bare"] = out["sandbox_runner_ms"] / out["bare_ms"]
    out["sandbox_executor_over_bare"] = out["sandbox_executor_ms"] / out["bare_ms"]
    out["sandbox_runner_over_host_runner"] = out["sandbox_runner_ms"] / out["host_runner_ms"]
    out["bare_runs_per_s_pool4"] = await throughput(lambda: bare(bare_dir / "s.py"), jobs)
    out["sandbox_executor_runs_per_s_pool4"] = await throughput(run_executor, jobs)
    shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument(
        "--script", choices=sorted(SCRIPTS), default="json", help="what the trivial script does"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    SCRIPT = SCRIPTS[args.script]
    results = asyncio.run(main(args.runs, args.jobs))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for key, value in results.items():
            print(f"{key:36s} {value:10.2f}")
