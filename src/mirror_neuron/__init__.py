"""MirrorNeuron for Python: a runtime for message-driven multi-agent workflows.

Job bundles (``manifest.json`` + ``payloads/``) written for the original MirrorNeuron
run unchanged. The synchronous API below mirrors the original; :mod:`mirror_neuron.aio`
has the same functions as coroutines, and :class:`Runtime` gives full control.

The API and :class:`Runtime` are imported on first use, so that importing one part
(``mirror_neuron.bundle`` to validate a bundle) does not import the runtime, its store
and its agents. :func:`validate_manifest` and :func:`load_bundle` come from
:mod:`mirror_neuron.validation` (the bundle's rules plus the executor's node checks, passed
in explicitly), so complete validation never needs the runtime or the agents.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# ``events`` is both a module and an API function: see the ``globals().pop`` below.
from . import events as _events_module  # noqa: F401
from .bundle import Bundle, Edge, Manifest, Node
from .config import Config
from .errors import (
    AgentNotFound,
    ExecutionError,
    JobFailed,
    JobNotFound,
    JobOrphaned,
    JobStalled,
    JobStateError,
    JobTimeout,
    MailboxFull,
    ManifestError,
    MessageError,
    MirrorNeuronError,
    NotFound,
    StoreError,
)
from .messages import Message

# Loading the ``events`` module (above) bound its name in this package: drop it, so that
# ``mirror_neuron.events`` is the API function (served by ``__getattr__``).
globals().pop("events", None)

if TYPE_CHECKING:
    from .api import (
        agent_logs,
        cancel,
        cleanup_jobs,
        dead_letters,
        events,
        inspect_agents,
        inspect_job,
        inspect_nodes,
        job_graph,
        list_jobs,
        pause,
        recover_job,
        redrive,
        resume,
        run_manifest,
        send_message,
        shutdown,
        wait_for_job,
    )
    from .runtime import Runtime
    from .validation import load_bundle, validate_manifest

__version__ = "0.1.0"

#: Public names imported on first use, and the module of each.
_LAZY = {
    "Runtime": "runtime",
    **dict.fromkeys(
        (
            "agent_logs",
            "cancel",
            "cleanup_jobs",
            "dead_letters",
            "events",
            "inspect_agents",
            "inspect_job",
            "inspect_nodes",
            "job_graph",
            "list_jobs",
            "pause",
            "recover_job",
            "redrive",
            "resume",
            "run_manifest",
            "send_message",
            "shutdown",
            "wait_for_job",
        ),
        "api",
    ),
    # Complete validation (the executor's node checks too) without the runtime or the agents.
    **dict.fromkeys(("load_bundle", "validate_manifest"), "validation"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    # Errors
    "AgentNotFound",
    # Bundles
    "Bundle",
    # Runtime
    "Config",
    "Edge",
    "ExecutionError",
    "JobFailed",
    "JobNotFound",
    "JobOrphaned",
    "JobStalled",
    "JobStateError",
    "JobTimeout",
    "MailboxFull",
    "Manifest",
    "ManifestError",
    "Message",
    "MessageError",
    "MirrorNeuronError",
    "Node",
    "NotFound",
    "Runtime",
    "StoreError",
    "__version__",
    "agent_logs",
    "cancel",
    "cleanup_jobs",
    "dead_letters",
    # API
    "events",
    "inspect_agents",
    "inspect_job",
    "inspect_nodes",
    "job_graph",
    "list_jobs",
    "load_bundle",
    "pause",
    "recover_job",
    "redrive",
    "resume",
    "run_manifest",
    "send_message",
    "shutdown",
    "validate_manifest",
    "wait_for_job",
]
