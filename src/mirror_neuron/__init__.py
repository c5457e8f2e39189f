"""MirrorNeuron for Python: a runtime for message-driven multi-agent workflows.

Job bundles (``manifest.json`` + ``payloads/``) written for the original MirrorNeuron
run unchanged. The synchronous API below mirrors the original; :mod:`mirror_neuron.aio`
has the same functions as coroutines, and :class:`Runtime` gives full control.
"""

from __future__ import annotations

from .api import (
    cancel,
    cleanup_jobs,
    dead_letters,
    events,
    inspect_agents,
    inspect_job,
    inspect_nodes,
    list_jobs,
    pause,
    recover_job,
    redrive,
    resume,
    run_manifest,
    send_message,
    shutdown,
    validate_manifest,
    wait_for_job,
)
from .bundle import Bundle, Edge, Manifest, Node, load_bundle
from .config import Config
from .errors import (
    AgentNotFound,
    ExecutionError,
    JobFailed,
    JobNotFound,
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
from .runtime import Runtime

__version__ = "0.1.0"

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
    "cancel",
    "cleanup_jobs",
    "dead_letters",
    # API
    "events",
    "inspect_agents",
    "inspect_job",
    "inspect_nodes",
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
