"""Validation of executor nodes, for ``mn validate`` and the bundle validator.

Finds at validation time what would otherwise fail when the agent runs: missing or
escaping upload sources, unknown pools, malformed commands and limits. Every message
names the node and the field: ``executor node prime_worker: upload source payloads/x.py
does not exist``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeGuard

from ..policy import MAX_OUTPUT_BYTES, SANDBOX_LIMITS, ExecutionPolicy, Limits, limit_problems
from .contract import resolve_workdir
from .errors import ExecutionError
from .settings import DEFAULT_SANDBOX_ROOT, MAX_DELAY_MS, MAX_KILL_GRACE_SECONDS, runner_kind
from .staging import MissingUpload, plan_uploads, resolve_source

if TYPE_CHECKING:
    from ..bundle.model import Node
    from ..config import Config

POSITIVE_FIELDS = ("timeout_seconds", "max_attempts", "max_output_bytes")
NON_NEGATIVE_FIELDS = ("startup_delay_ms", "retry_backoff_ms", "kill_grace_seconds")


def check_executor_node(node: Node, payloads_path: Path | None, config: Config | None = None) -> list[str]:
    """Every problem with an executor node's config (empty when it is fine).

    Args:
        node: the node (only executor nodes are checked; others give ``[]``).
        payloads_path: the bundle's ``payloads/`` directory, ``None`` for dict manifests.
        config: when given, ``pool``/``pool_slots`` are checked against its pools.
    """
    if node.kind != "executor":
        return []
    cfg = node.config if isinstance(node.config, Mapping) else {}
    policy = config.policy if config is not None else None
    try:
        runner: str | None = runner_kind(cfg)
        problems = []
    except ExecutionError as exc:
        runner, problems = None, [str(exc)]
    problems += _command(cfg) + _numbers(cfg) + _environment(cfg)
    problems += _limits(cfg, runner, policy) + _paths(cfg, runner) + _uploads(cfg, payloads_path)
    if config is not None and policy is not None:
        problems += _pool(cfg, config) + _policy(cfg, runner, policy)
    return [f"executor node {node.node_id}: {p}" for p in problems]


def _policy(cfg: Mapping[str, Any], runner: str | None, policy: ExecutionPolicy) -> list[str]:
    """What this runtime does not let bundles ask of its host (``mn serve``'s defaults refuse it all)."""
    problems = []
    if runner == "host_local" and not policy.allow_host_local:
        problems.append(
            "asks for the host_local runner (no sandbox), which this runtime does not allow; "
            "use the default sandbox runner (mn serve --allow-host-local permits it)"
        )
    if runner == "openshell":
        if not policy.allow_openshell:
            problems.append(
                "asks for the openshell runner, which hands the command to a program on this host; "
                "this runtime does not allow it (mn serve --allow-openshell permits it)"
            )
        if not policy.trusts_host:
            problems += _openshell_host_keys(cfg)
    if cfg.get("network") and not policy.allow_network:
        problems.append(
            "asks for network: true, and this runtime gives bundles no network "
            "(mn serve --allow-network permits a sandboxed network that never reaches this host)"
        )
    timeout = cfg.get("timeout_seconds")
    if policy.max_run_seconds is not None and _is_number(timeout) and timeout > policy.max_run_seconds:
        problems.append(
            f"timeout_seconds {timeout:g} is above this runtime's cap of {policy.max_run_seconds:g} seconds "
            "per run; it may only lower it"
        )
    names = cfg.get("pass_env")
    if isinstance(names, list):
        refused = [str(n) for n in names if not policy.passes(str(n))]
        if refused:
            allowed = ", ".join(sorted(policy.pass_env or ())) or "none"
            problems.append(
                f"pass_env names {', '.join(refused)}, which this runtime does not pass to bundles "
                f"(allowed: {allowed}; mn serve --pass-env NAME allows one)"
            )
    return problems


#: OpenShell keys that act on the host or on the operator's accounts, not inside the sandbox:
#: providers inject the operator's credentials, a policy can grant the network, ssh keys and
#: remotes reach other machines as the operator.
OPENSHELL_OPERATOR_KEYS = {
    "sandbox_cli": "names a program on this host to run; the OpenShell CLI comes only from the "
    "runtime's configuration (MIRROR_NEURON_OPENSHELL_BIN)",
    "ssh_bin": "names a program on this host to run",
    "providers": "hands the operator's credentials (OpenShell providers) to the sandbox",
    "policy": "replaces the operator's OpenShell policy (it may grant the network)",
    "ssh_key": "names a key file of this host",
    "remote": "sends the command to another machine as the operator",
}


def _openshell_host_keys(cfg: Mapping[str, Any]) -> list[str]:
    """OpenShell keys that are the operator's settings, not a bundle's: :data:`OPENSHELL_OPERATOR_KEYS`."""
    problems = [
        f"{key} {why}; bundles may not set it" for key, why in OPENSHELL_OPERATOR_KEYS.items() if cfg.get(key)
    ]
    if cfg.get("no_auto_providers") is False:
        problems.append("no_auto_providers: false would hand the operator's credentials to the sandbox")
    image = cfg.get("from")
    if isinstance(image, str) and (image.startswith(("/", "~", ".")) or ".." in PurePosixPath(image).parts):
        problems.append(f"from {image!r} names a path on this host; give an image name")
    return problems


def _paths(cfg: Mapping[str, Any], runner: str | None) -> list[str]:
    """The sandbox root and workdir must stay inside the sandbox's own directory."""
    if runner not in ("sandbox", "openshell"):
        return []  # host_local runs trusted code where the operator lets it
    problems = []
    root = cfg.get("sandbox_upload_path")
    if root is not None:
        parts = PurePosixPath(str(root)).parts
        if (
            not isinstance(root, str)
            or not root.startswith("/sandbox")
            or ".." in parts
            or (len(parts) > 1 and parts[1] != "sandbox")
        ):
            problems.append(
                "sandbox_upload_path must be a folder under /sandbox "
                f"(the default is {DEFAULT_SANDBOX_ROOT}), got {root!r}"
            )
            return problems
    sandbox_root = str(root or DEFAULT_SANDBOX_ROOT).rstrip("/") or "/"
    workdir = cfg.get("workdir")
    if isinstance(workdir, str) and workdir:
        try:
            resolved = resolve_workdir(workdir, sandbox_root, sandbox_root)
        except ExecutionError as exc:
            return [*problems, str(exc)]
        if resolved != sandbox_root and not resolved.startswith(sandbox_root + "/"):
            problems.append(
                f"workdir {workdir} is outside {sandbox_root}, the only directory the sandbox sees "
                "(use a path relative to it)"
            )
    return problems


def _command(cfg: Mapping[str, Any]) -> list[str]:
    command = cfg.get("command")
    if command is None or isinstance(command, str):
        return []
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return []
    return ["command must be a string or a list of strings"]


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(cfg: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in POSITIVE_FIELDS:
        if key in cfg and cfg[key] is not None and not (_is_number(cfg[key]) and cfg[key] > 0):
            problems.append(f"{key} must be a positive number, got {cfg[key]!r}")
    for key in NON_NEGATIVE_FIELDS:
        if key in cfg and cfg[key] is not None and not (_is_number(cfg[key]) and cfg[key] >= 0):
            problems.append(f"{key} must be a non-negative number, got {cfg[key]!r}")
    for key, cap in (("startup_delay_ms", MAX_DELAY_MS), ("kill_grace_seconds", MAX_KILL_GRACE_SECONDS)):
        value = cfg.get(key)
        if _is_number(value) and value > cap:
            problems.append(f"{key} must be at most {cap:g}, got {value!r}")
    if (
        "max_attempts" in cfg
        and _is_number(cfg["max_attempts"])
        and cfg["max_attempts"] != int(cfg["max_attempts"])
    ):
        problems.append(f"max_attempts must be a whole number, got {cfg['max_attempts']!r}")
    return problems


def _environment(cfg: Mapping[str, Any]) -> list[str]:
    problems = []
    environment = cfg.get("environment")
    if environment is not None and not isinstance(environment, Mapping):
        problems.append("environment must be an object of NAME: value")
    elif isinstance(environment, Mapping):
        for key, value in environment.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                problems.append(f"environment name {str(key)[:60]!r} is not a valid variable name")
            elif isinstance(value, str) and "\0" in value:
                problems.append(f"environment value of {key} contains a NUL byte")
    pass_env = cfg.get("pass_env")
    if pass_env is not None and not (
        isinstance(pass_env, list) and all(isinstance(n, str) for n in pass_env)
    ):
        problems.append("pass_env must be a list of variable names")
    if "workdir" in cfg and cfg["workdir"] is not None and not isinstance(cfg["workdir"], str):
        problems.append("workdir must be a string")
    for key in ("workdir", "sandbox_upload_path", "upload_path", "upload_as"):
        if isinstance(cfg.get(key), str) and "\0" in cfg[key]:
            problems.append(f"{key} contains a NUL byte")
    command = cfg.get("command")
    parts = command if isinstance(command, list) else [command]
    if any(isinstance(part, str) and "\0" in part for part in parts):
        problems.append("command contains a NUL byte")
    return problems


def _limits(cfg: Mapping[str, Any], runner: str | None, policy: ExecutionPolicy | None) -> list[str]:
    """A bundle's ``limits`` may only lower the runtime's caps (any value for trusted host_local code)."""
    caps = (policy.limits if policy is not None else SANDBOX_LIMITS) if runner != "host_local" else None
    problems = limit_problems(cfg.get("limits"), caps) if caps is not None else _host_limits(cfg)
    cap = policy.max_output_bytes if policy is not None else MAX_OUTPUT_BYTES
    value = cfg.get("max_output_bytes")
    if _is_number(value) and value > cap:
        problems.append(
            f"max_output_bytes {value} is above this runtime's cap of {cap}; bundles may only lower it"
        )
    return problems


def _host_limits(cfg: Mapping[str, Any]) -> list[str]:
    limits = cfg.get("limits")
    if isinstance(limits, Mapping):
        limits = {k: v for k, v in limits.items() if v is not None}  # null: no limit, as without the key
    return limit_problems(limits, Limits())


def _uploads(cfg: Mapping[str, Any], payloads_path: Path | None) -> list[str]:
    root = str(cfg.get("sandbox_upload_path") or DEFAULT_SANDBOX_ROOT)
    try:
        plan = plan_uploads(cfg, root)
    except ExecutionError as exc:
        return [str(exc)]
    problems = []
    for upload in plan:
        try:
            resolve_source(upload.source, payloads_path)
        except MissingUpload as exc:
            problems.append(f"upload source {exc.shown} does not exist")
        except ExecutionError as exc:
            problems.append(str(exc))
    return problems


def _pool(cfg: Mapping[str, Any], config: Config) -> list[str]:
    pools = config.pools()
    pool = str(cfg.get("pool") or "default")
    if pool not in pools:
        return [f'pool "{pool}" is not a configured executor pool (configured: {", ".join(sorted(pools))})']
    slots = cfg.get("pool_slots")
    if slots is None:
        return []
    if not (_is_number(slots) and slots > 0 and int(slots) == slots):
        return [f"pool_slots must be a positive integer, got {slots!r}"]
    if slots > pools[pool]:
        return [f'pool_slots {slots} exceeds the capacity {pools[pool]} of pool "{pool}"']
    return []
