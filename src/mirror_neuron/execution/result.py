"""Shaping a run into the contract's result dict, redacting secrets, and readable failures.

Secrets: values of ``environment``/``pass_env`` variables whose *names* contain TOKEN,
SECRET, KEY, PASSWORD or COOKIE never reach results, events or job records, even when
a script prints them. Very short values are left alone: masking every "1" is noise.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from typing import Any

from .runners.base import RunResult

SECRET_NAME_MARKERS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "COOKIE")
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
TAIL_LINES = 10
TAIL_CHARS = 2000


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_NAME_MARKERS)


def secret_values(*envs: Mapping[str, str]) -> tuple[str, ...]:
    """Values to redact, longest first (so a secret containing another is masked whole)."""
    values = {v for env in envs for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """Redact every string inside a JSON-like value (event payloads from structured stdout)."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    return value


def redact_run(run: RunResult, secrets: tuple[str, ...]) -> RunResult:
    """The same result with secrets masked in every captured text (in place, returned)."""
    if secrets:
        run.stdout = redact(run.stdout, secrets)
        run.stderr = redact(run.stderr, secrets)
        run.logs = redact(run.logs, secrets)
        run.raw_output = redact(run.raw_output, secrets)
    return run


def result_dict(run: RunResult, *, sandbox_name: str, remote_dir: str, node_name: str) -> dict[str, Any]:
    """The contract's ``sandbox`` result (the executor adds ``attempts`` and ``lease``)."""
    result: dict[str, Any] = {
        "sandbox_name": sandbox_name,
        "remote_dir": remote_dir,
        "exit_code": run.exit_code,
        "runner_exit_code": run.runner_exit_code,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "logs": run.logs,
        "raw_output": run.raw_output,
        "runner": run.extra.get("runner", "bwrap"),
        "node_name": node_name,
    }
    for key in ("openshell_exit_code", "warning"):
        if key in run.extra:
            result[key] = run.extra[key]
    return result


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last few lines of ``text``, what a person needs to see why a script failed."""
    last = "\n".join(text.strip().splitlines()[-lines:])
    return last if len(last) <= chars else "…" + last[-chars:]


def failure_message(run: RunResult) -> str:
    """``command exited with status 3: <last lines of stderr>`` (or the runner's own error)."""
    head = run.error or f"command exited with status {run.exit_code}{_signal_note(run.exit_code)}"
    detail = tail(run.stderr) or tail(run.stdout, lines=3, chars=500)
    return f"{head}: {detail}" if detail else head


def _signal_note(code: int) -> str:
    """`` (SIGKILL)`` for 137: shells report death by signal N as 128+N."""
    try:
        return f" ({signal.Signals(code - 128).name})" if code > 128 else ""
    except ValueError:
        return ""
