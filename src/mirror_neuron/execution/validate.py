"""Validation of executor nodes, for ``mn validate`` and the bundle validator.

Finds at validation time what would otherwise fail when the agent runs: missing or
escaping upload sources, unknown pools, malformed commands and limits. Every message
names the node and the field: ``executor node prime_worker: upload source payloads/x.py
does not exist``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExecutionError
from .settings import DEFAULT_SANDBOX_ROOT, LIMIT_KEYS, runner_kind
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
    problems = _runner(cfg) + _command(cfg) + _numbers(cfg) + _environment(cfg) + _limits(cfg)
    problems += _uploads(cfg, payloads_path)
    if config is not None:
        problems += _pool(cfg, config)
    return [f"executor node {node.node_id}: {p}" for p in problems]


def _runner(cfg: Mapping[str, Any]) -> list[str]:
    try:
        runner_kind(cfg)
    except ExecutionError as exc:
        return [str(exc)]
    return []


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


def _limits(cfg: Mapping[str, Any]) -> list[str]:
    limits = cfg.get("limits")
    if limits is None:
        return []
    if not isinstance(limits, Mapping):
        return ["limits must be an object"]
    problems = []
    for key, value in limits.items():
        if key not in LIMIT_KEYS:
            problems.append(
                f"limits.{key} is not a known limit (expected one of {', '.join(sorted(LIMIT_KEYS))})"
            )
        elif value is not None and not (_is_number(value) and value > 0 and int(value) == value):
            problems.append(f"limits.{key} must be a positive integer or null, got {value!r}")
    return problems


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
