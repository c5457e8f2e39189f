"""Validation of executor nodes, for ``mn validate`` and the bundle validator.

Finds at validation time what would otherwise fail when the agent runs: missing or
escaping upload sources, unknown pools, malformed commands and limits. Every message
names the node and the field: ``executor node prime_worker: upload source payloads/x.py
does not exist``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..policy import MAX_OUTPUT_BYTES, SANDBOX_LIMITS, ExecutionPolicy, limit_problems
from .contract import resolve_workdir
from .errors import ExecutionError
from .settings import DEFAULT_SANDBOX_ROOT, runner_kind
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
    names = cfg.get("pass_env")
    if isinstance(names, list):
        refused = [str(n) for n in names if not policy.passes(str(n))]
        if refused:
            allowed = ", ".join(sorted(policy.pass_env or ())) or "none"
            problems.append(
                f"pass_env names {', '.join(refused)}, which this runtime does not pass to bundles "
                f"(allowed: {allowed}; mn serve --pass-env NAME allows one)"
            )
    cap = policy.max_output_bytes
    value = cfg.get("max_output_bytes")
    if _is_number(value) and value > cap:
        problems.append(
            f"max_output_bytes {value} is above this runtime's cap of {cap}; bundles may only lower it"
        )
    return problems


def _openshell_host_keys(cfg: Mapping[str, Any]) -> list[str]:
    """OpenShell keys that name a program or a file on the host: an operator's settings, not a bundle's."""
    problems = []
    if cfg.get("sandbox_cli"):
        problems.append(
            "sandbox_cli names a program on this host to run; the OpenShell CLI comes only from the "
            "runtime's configuration (MIRROR_NEURON_OPENSHELL_BIN)"
        )
    for key in ("policy", "ssh_key", "from"):
        value = cfg.get(key)
        if isinstance(value, str) and value and _names_host_path(value, key):
            problems.append(f"{key} {value!r} names a path outside the bundle's payloads/; bundles may not")
    return problems


def _names_host_path(value: str, key: str) -> bool:
    """An absolute, home-relative or climbing path (for ``from``: any path rather than an image name)."""
    parts = PurePosixPath(value).parts
    if value.startswith(("/", "~")) or ".." in parts:
        return True
    return key == "from" and (value.startswith(".") or "Dockerfile" in value)


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(cfg: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in POSITIVE_FIELDS:
        if key in cfg and cfg[key] is not None and not (_is_number(cfg[key]) and cfg[key] > 0):
            problems.append(f"{key} must be a positive number, got {cfg[key]!r}")
    for key in NON_NEGATIVE_FIELDS:
        if key in cfg and cfg[key] is not None and not (_is_number(cfg[key]) and cfg[key] >= 0):
            problems.append(f"{key} must be a non-negative number, got {cfg[key]!r}")
    if (
        "max_attempts" in cfg
        and _is_number(cfg["max_attempts"])
        and cfg["max_attempts"] != int(cfg["max_attempts"])
    ):
        problems.append(f"max_attempts must be a whole number, got {cfg['max_attempts']!r}")
    return problems


def _environment(cfg: Mapping[str, Any]) -> list[str]:
    problems = []
    if (
        "environment" in cfg
        and cfg["environment"] is not None
        and not isinstance(cfg["environment"], Mapping)
    ):
        problems.append("environment must be an object of NAME: value")
    pass_env = cfg.get("pass_env")
    if pass_env is not None and not (
        isinstance(pass_env, list) and all(isinstance(n, str) for n in pass_env)
    ):
        problems.append("pass_env must be a list of variable names")
    if "workdir" in cfg and cfg["workdir"] is not None and not isinstance(cfg["workdir"], str):
        problems.append("workdir must be a string")
    return problems


def _limits(cfg: Mapping[str, Any], runner: str | None, policy: ExecutionPolicy | None) -> list[str]:
    """A bundle's ``limits`` may only lower the runtime's caps (any value for trusted host_local code)."""
    caps = (policy.limits if policy is not None else SANDBOX_LIMITS) if runner != "host_local" else None
    problems = limit_problems(cfg.get("limits"), caps) if caps is not None else _host_limits(cfg)
    value = cfg.get("max_output_bytes")
    if policy is None and _is_number(value) and value > MAX_OUTPUT_BYTES:
        problems.append(
            f"max_output_bytes {value} is above the cap of {MAX_OUTPUT_BYTES}; bundles may only lower it"
        )
    return problems


def _host_limits(cfg: Mapping[str, Any]) -> list[str]:
    from ..policy import Limits

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
