"""Built-in agents: the implementations of the agent types :mod:`mirror_neuron.bundle.agent_types` names.

Validation does not depend on this package (the bundle layer owns the list of types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ExecutionError, ManifestError
from ..execution import check_executor_node, network_available, sandbox_available
from .aggregator import AggregatorAgent
from .base import Agent, AgentContext, AgentError
from .router import RouterAgent
from .sensor import SensorAgent

if TYPE_CHECKING:
    from ..bundle.model import Bundle, Node
    from ..config import Config

BUILTINS: dict[str, type[Agent]] = {
    "router": RouterAgent,
    "aggregator": AggregatorAgent,
    "sensor": SensorAgent,
}


def agent_class(kind: str) -> type[Agent]:
    """The implementation for a canonical agent type (executors are imported on first use)."""
    cls = BUILTINS.get(kind)
    if cls is not None:
        return cls
    if kind == "executor":
        from .executor import ExecutorAgent

        BUILTINS["executor"] = ExecutorAgent
        return ExecutorAgent
    if kind == "module":
        raise AgentError(
            'module agents (agent_type "module") run user code inside the runtime and are not '
            "supported by MirrorNeuron for Python; use an executor node instead"
        )
    raise AgentError(f"unsupported agent_type {kind!r}")


def create_agent(node: Node, ctx: AgentContext) -> Agent:
    return agent_class(node.kind)(node, ctx)


def _runner(node: Node) -> str | None:
    from ..execution.settings import runner_kind

    try:
        return runner_kind(node.config)
    except Exception:  # an unknown runner is reported by check_executor_node
        return None


def preflight(bundle: Bundle, config: Config) -> None:
    """Checks that need the runtime's configuration (pools, its execution policy), before anything starts."""
    executors = [node for node in bundle.manifest.nodes if node.kind == "executor"]
    problems = [p for node in executors for p in check_executor_node(node, bundle.payloads_path, config)]
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    missing = sandbox_problem(bundle)
    if missing is not None:  # say so before anything starts; never fall back to running unsandboxed
        raise ExecutionError(missing)


def sandbox_problem(bundle: Bundle) -> str | None:
    """Why the bundle's sandboxed executors cannot run on this machine, or ``None`` when they can."""
    sandboxed = [n.node_id for n in bundle.manifest.nodes if n.kind == "executor" and _runner(n) == "sandbox"]
    if not sandboxed:
        return None
    ok, why = sandbox_available()
    if not ok:
        return f"executor node(s) {', '.join(sandboxed)} need the sandbox, which is unavailable: {why}"
    inside = set(sandboxed)
    networked = [n.node_id for n in bundle.manifest.nodes if n.node_id in inside and n.config.get("network")]
    if not networked:
        return None
    ok, why = network_available()
    return None if ok else f"executor node(s) {', '.join(networked)} set network: true, but {why}"


__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "AggregatorAgent",
    "RouterAgent",
    "SensorAgent",
    "create_agent",
    "preflight",
    "sandbox_problem",
]
