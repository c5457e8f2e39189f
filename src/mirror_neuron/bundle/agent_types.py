"""The agent types a manifest may name, as plain data: their templates and their config keys.

The bundle layer owns this list, so validation gives the same answer whatever else has
been imported; :mod:`mirror_neuron.agents` implements the types against these names.
The config keys are what the built-in agents read (:mod:`mirror_neuron.agents`,
:mod:`mirror_neuron.execution.settings`) plus the keys the original MirrorNeuron and its
published bundles give them, so that a bundle written for the original validates without
warnings (see :mod:`mirror_neuron.bundle.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_TEMPLATES = ("generic", "stream", "map", "reduce", "batch")

#: Keys any agent's config may carry: the runtime's own (``max_queue_size``), the later
#: Core's per-node settings (beacons, backpressure, step retries and deadlines, which it
#: reads from the config of every node bound to a workflow step), and the template
#: settings (``stream_id``, ``batch_size``). Bundles of the later Core also give routers
#: a ``runner_module``.
SHARED_CONFIG_KEYS = frozenset(
    {
        "max_queue_size",
        "backpressure",
        "beacon_enabled",
        "beacon_interval_ms",
        "beacon_timeout_ms",
        "beacon_missed_action",
        "agent_beacon_required",
        "idempotent",
        "safe_to_retry",
        "max_attempts",
        "retry_backoff_ms",
        "timeout_seconds",
        "stream_id",
        "batch_size",
        "runner_module",
    }
)

#: Every key an executor reads (:class:`~mirror_neuron.execution.settings.ExecutorSettings`,
#: uploads, OpenShell flags) and the original's executor keys (§8.2 of the behaviour spec).
EXECUTOR_CONFIG_KEYS = frozenset(
    {
        # the runner and the command
        "runner",
        "runner_module",
        "command",
        "environment",
        "pass_env",
        "workdir",
        "sandbox_upload_path",
        "name_prefix",
        "login_shell",
        "network",
        "limits",
        # pools, retries, time
        "pool",
        "pool_slots",
        "startup_delay_ms",
        "max_attempts",
        "retry_backoff_ms",
        "timeout_seconds",
        "kill_grace_seconds",
        "max_output_bytes",
        # output
        "output_message_type",
        "complete_job",
        # uploads
        "upload_path",
        "upload_as",
        "upload_paths",
        "uploads",
        # the original's other keys
        "content_type",
        "content_encoding",
        "lease_manager",
        # OpenShell only
        "sandbox_cli",
        "reuse_shared_sandbox",
        "persistent_workspace",
        "cleanup_remote_dir",
        "ssh_bin",
        "shared_sandbox_prefix",
        "no_keep",
        "no_auto_providers",
        "gpu",
        "from",
        "remote",
        "ssh_key",
        "policy",
        "providers",
        "tty",
        # the later Core (F2 workflow bundles): step completion, venvs, the Docker runner
        "workflow_complete_step",
        "python_environment",
        "image",
        "docker_worker_image",
        "shared_container",
        "reuse_shared_container",
        "node_type",
        "role",
        "script",
    }
)


@dataclass(frozen=True, slots=True)
class AgentType:
    """An agent type a manifest may name in ``agent_type``."""

    name: str
    #: The templates (``type``) it accepts.
    templates: tuple[str, ...]
    #: The config keys it knows; ``None`` when any key is fine (user code reads them).
    config_keys: frozenset[str] | None


AGENT_TYPES: dict[str, AgentType] = {
    t.name: t
    for t in (
        AgentType("router", ("generic", "map"), SHARED_CONFIG_KEYS | {"emit_type"}),
        AgentType("executor", ALL_TEMPLATES, SHARED_CONFIG_KEYS | EXECUTOR_CONFIG_KEYS),
        AgentType(
            "aggregator",
            ("generic", "reduce"),
            SHARED_CONFIG_KEYS
            | {"complete_on_message", "complete_after", "output_message_type", "complete_job"}
            | {"complete_run", "terminal_sink"},  # the later Core's terminal sink
        ),
        AgentType(
            "sensor",
            ("generic",),
            SHARED_CONFIG_KEYS | {"output_message_type", "complete_after", "complete_job"},
        ),
        # A module agent's config is read by its own code; the Python runtime refuses to run it.
        AgentType("module", ALL_TEMPLATES, None),
    )
}
#: Older names of the built-in types, accepted everywhere the canonical name is.
AGENT_ALIASES = {"relay": "router", "sandbox_worker": "executor", "collector": "aggregator"}
#: Canonical agent type → the templates it accepts.
TEMPLATES_BY_AGENT: dict[str, tuple[str, ...]] = {name: t.templates for name, t in AGENT_TYPES.items()}


def config_keys(kind: str | None) -> frozenset[str] | None:
    """The config keys known for a canonical agent type; ``None`` for any key (or an unknown type)."""
    agent_type = AGENT_TYPES.get(kind) if kind is not None else None
    return None if agent_type is None else agent_type.config_keys


__all__ = [
    "AGENT_ALIASES",
    "AGENT_TYPES",
    "EXECUTOR_CONFIG_KEYS",
    "SHARED_CONFIG_KEYS",
    "TEMPLATES_BY_AGENT",
    "AgentType",
    "config_keys",
]
