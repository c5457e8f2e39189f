"""An executor node's ``config`` read once into typed settings, with the original's defaults.

Reading is lenient where the original is lenient (an invalid ``max_attempts`` means 1),
because bundles that ran under MirrorNeuron must keep running; :mod:`.validate` reports
the same values as problems so authors can fix them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..policy import SANDBOX_LIMITS, ExecutionPolicy, Limits, positive_int
from .errors import RunnerError

DEFAULT_SANDBOX_ROOT = "/sandbox/job"
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
DEFAULT_BACKOFF_MS = 500.0
DEFAULT_KILL_GRACE_SECONDS = 2.0
#: Upper bounds of the delays a node sets (they hold a job, or the end of a run, that long).
MAX_DELAY_MS = 600_000.0
MAX_KILL_GRACE_SECONDS = 60.0
DEFAULT_OUTPUT_TYPE = "executor_result"

#: ``runner_module`` values of the original and the runner each one selects here.
RUNNER_MODULES = {
    "MirrorNeuron.Runner.HostLocal": "host_local",
    "MirrorNeuron.Sandbox.OpenShell": "sandbox",
    "MirrorNeuron.Runner.OpenShell": "sandbox",
}
#: ``runner`` values accepted (new key; wins over ``runner_module``).
RUNNER_NAMES = {
    "host_local": "host_local",
    "host": "host_local",
    "sandbox": "sandbox",
    "bwrap": "sandbox",
    "bubblewrap": "sandbox",
    "openshell": "openshell",
}


def runner_kind(config: Mapping[str, Any]) -> str:
    """``host_local``, ``sandbox`` or ``openshell`` for a node config.

    Raises:
        RunnerError: for a runner the Python runtime does not implement.
    """
    runner = config.get("runner")
    if runner is not None:
        kind = RUNNER_NAMES.get(str(runner).strip().lower())
        if kind is None:
            expected = ", ".join(sorted(RUNNER_NAMES))
            raise RunnerError(f"unknown executor runner {runner!r} (expected one of {expected})")
        return kind
    module = config.get("runner_module")
    if module is None:
        return "sandbox"
    kind = RUNNER_MODULES.get(str(module))
    if kind is None:
        raise RunnerError(
            f'runner_module {module!r} is not supported; use runner: "sandbox" (bubblewrap) '
            'or runner: "host_local" (trusted code, no isolation)'
        )
    return kind


def positive_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 else None


def non_negative(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return default
    return float(value)


def env_value(value: Any) -> str:
    """Stringify an ``environment`` value like the original (booleans lower-case, JSON for maps)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    from .._json import dumps_str

    return dumps_str(value)


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """Everything an executor reads from its node config, parsed once per agent."""

    runner: str = "sandbox"
    command: str | list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    workdir: str | None = None
    sandbox_root: str = DEFAULT_SANDBOX_ROOT
    pool: str = "default"
    pool_slots: int = 1
    startup_delay_ms: float = 0.0
    max_attempts: int = 1
    retry_backoff_ms: float = DEFAULT_BACKOFF_MS
    timeout_seconds: float | None = None
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    network: bool = False
    login_shell: bool = False
    limits: Limits = SANDBOX_LIMITS
    output_message_type: str | None = DEFAULT_OUTPUT_TYPE
    complete_job: bool = False
    name_prefix: str = "mirror-neuron"
    #: The raw config, for runner-specific keys (OpenShell flags, uploads).
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], policy: ExecutionPolicy | None = None
    ) -> ExecutorSettings:
        """Parse a node config under ``policy`` (its caps bound the limits and the output).

        Raises:
            RunnerError: unknown runner, or ``command`` that is neither a string nor a list.
        """
        runner = runner_kind(config)
        command = config.get("command")
        if command is not None and not isinstance(command, str | list):
            raise RunnerError(f"command must be a string or a list of strings, got {type(command).__name__}")
        if isinstance(command, list):
            command = [env_value(part) for part in command]
        environment = config.get("environment")
        pass_env = config.get("pass_env")
        root = str(config.get("sandbox_upload_path") or DEFAULT_SANDBOX_ROOT).rstrip("/") or "/"
        policy = policy or ExecutionPolicy()
        # Limits and the output cap may only be lowered by a bundle. A host_local command is
        # trusted code run like any other program of the operator's, without sandbox limits.
        caps = policy.limits if runner == "sandbox" else Limits()
        max_output = positive_int(config.get("max_output_bytes")) or DEFAULT_MAX_OUTPUT_BYTES
        return cls(
            runner=runner,
            command=command,
            environment=(
                {str(k): env_value(v) for k, v in environment.items()}
                if isinstance(environment, Mapping)
                else {}
            ),
            pass_env=tuple(str(n) for n in pass_env) if isinstance(pass_env, list) else (),
            workdir=str(config["workdir"]) if config.get("workdir") else None,
            sandbox_root=root,
            pool=str(config.get("pool") or "default"),
            pool_slots=positive_int(config.get("pool_slots")) or 1,
            startup_delay_ms=min(non_negative(config.get("startup_delay_ms"), 0.0), MAX_DELAY_MS),
            max_attempts=positive_int(config.get("max_attempts")) or 1,
            retry_backoff_ms=non_negative(config.get("retry_backoff_ms"), DEFAULT_BACKOFF_MS),
            timeout_seconds=_capped(positive_number(config.get("timeout_seconds")), policy.max_run_seconds),
            max_output_bytes=min(max_output, policy.max_output_bytes),
            kill_grace_seconds=min(
                non_negative(config.get("kill_grace_seconds"), DEFAULT_KILL_GRACE_SECONDS),
                MAX_KILL_GRACE_SECONDS,
            ),
            network=bool(config.get("network", False)),
            login_shell=bool(config.get("login_shell", False)),
            limits=caps.lowered(config.get("limits")),
            output_message_type=_output_type(config),
            complete_job=bool(config.get("complete_job", False)),
            name_prefix=str(
                config.get("name_prefix") or ("host-local" if runner == "host_local" else "mirror-neuron")
            ),
            raw=config,
        )


def _capped(value: float | None, cap: float | None) -> float | None:
    """``value`` no higher than ``cap``; with no value of its own, the cap itself."""
    if cap is None:
        return value
    return cap if value is None else min(value, cap)


def _output_type(config: Mapping[str, Any]) -> str | None:
    """Absent → ``executor_result``; ``null`` (or empty) → no default emit; a string → that type."""
    if "output_message_type" not in config:
        return DEFAULT_OUTPUT_TYPE
    value = config["output_message_type"]
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else DEFAULT_OUTPUT_TYPE
