"""Retries: only transient failures on the process's own error channel, exponential capped backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror_neuron.execution.retry import backoff_seconds, is_transient

from .conftest import PY, run_config, write

FLAKY = """
import pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
if n < int(sys.argv[2]):
    print(sys.argv[3], file=sys.stderr if sys.argv[4] == "err" else sys.stdout)
    sys.exit(7)
print("ok on attempt", n)
"""


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff_seconds(n, 500) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_seconds(20, 500) == 30.0
    assert backoff_seconds(1000, 500) == 30.0


def test_transient_markers_are_matched_case_insensitively() -> None:
    assert is_transient(["Error: Connection reset by peer"])
    assert is_transient([None, "upstream request TIMED OUT"])
    assert not is_transient(["ValueError: bad input", None, ""])


def flaky_config(
    tmp_path: Path, payloads: Path, fail_until: int, text: str, stream: str, attempts: int
) -> dict:
    write(payloads / "flaky.py", FLAKY)
    counter = tmp_path / "counter"
    return {
        "runner": "host_local",
        "upload_path": "flaky.py",
        "command": [PY, "flaky.py", str(counter), str(fail_until), text, stream],
        "max_attempts": attempts,
        "retry_backoff_ms": 1,
    }


async def test_transient_stderr_is_retried_until_success(
    tmp_path: Path, payloads: Path, temp_root: Path
) -> None:
    config = flaky_config(tmp_path, payloads, 3, "grpc: connection reset by peer", "err", 3)
    outcome = await run_config(config, payloads, temp_root)
    assert outcome.ok
    assert outcome.attempts == 3
    assert outcome.result["stdout"] == "ok on attempt 3\n"
    assert outcome.result["sandbox_name"].endswith("-a3")


async def test_non_transient_failure_is_not_retried(tmp_path: Path, payloads: Path, temp_root: Path) -> None:
    config = flaky_config(tmp_path, payloads, 3, "ValueError: bad input", "err", 3)
    outcome = await run_config(config, payloads, temp_root)
    assert not outcome.ok
    assert outcome.attempts == 1
    assert outcome.error == "command exited with status 7: ValueError: bad input"
    assert outcome.details == {"exit_code": 7, "attempts": 1, "stderr_tail": "ValueError: bad input"}


async def test_markers_in_application_stdout_do_not_trigger_retries(
    tmp_path: Path, payloads: Path, temp_root: Path
) -> None:
    config = flaky_config(tmp_path, payloads, 3, "status: service unavailable", "out", 3)
    outcome = await run_config(config, payloads, temp_root)
    assert (outcome.ok, outcome.attempts) == (False, 1)


async def test_retries_stop_at_max_attempts_with_backoff(
    tmp_path: Path, payloads: Path, temp_root: Path
) -> None:
    from mirror_neuron.execution import Executor, ExecutorSettings, Invocation
    from mirror_neuron.messages import normalize

    config = flaky_config(tmp_path, payloads, 99, "deadline exceeded", "err", 3)
    config["retry_backoff_ms"] = 100
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    executor = Executor(ExecutorSettings.from_config(config))
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    outcome = await executor.execute(inv, sleep=fake_sleep)
    assert (outcome.ok, outcome.attempts) == (False, 3)
    assert slept == [0.1, 0.2]
    assert outcome.details["attempts"] == 3


@pytest.mark.usefixtures("sandbox")
async def test_a_timeout_counts_as_transient(payloads: Path, temp_root: Path) -> None:
    config = {"command": "sleep 5", "timeout_seconds": 0.2, "max_attempts": 2, "retry_backoff_ms": 1}
    outcome = await run_config(config, payloads, temp_root)
    assert (outcome.ok, outcome.attempts) == (False, 2)
    assert outcome.error == "command timed out after 0.2s and was killed"
