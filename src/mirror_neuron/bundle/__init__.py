"""Job bundles: loading, normalisation and validation of ``manifest.json`` + ``payloads/``.

Everything here only reads; failures raise :class:`~mirror_neuron.errors.ManifestError`
whose ``errors`` list holds every problem found, and what is accepted but looks wrong
(unknown keys) is listed in :attr:`Bundle.warnings`. The agent types a manifest may name
are plain data here (:data:`AGENT_TYPES`), so validation never depends on what else has
been imported. Extra checks by agent type are passed in (``node_checks``), never
registered: :mod:`mirror_neuron.validation` adds the executor's for complete validation.
"""

from __future__ import annotations

from mirror_neuron.bundle.agent_types import AGENT_TYPES, AgentType
from mirror_neuron.bundle.loader import BundleSource, load_bundle, manifest_from_data, validate_bundle
from mirror_neuron.bundle.model import Bundle, Edge, Manifest, Node
from mirror_neuron.bundle.rules import NodeCheck, NodeChecks
from mirror_neuron.bundle.rules import validate as validate_manifest_data

__all__ = [
    "AGENT_TYPES",
    "AgentType",
    "Bundle",
    "BundleSource",
    "Edge",
    "Manifest",
    "Node",
    "NodeCheck",
    "NodeChecks",
    "load_bundle",
    "manifest_from_data",
    "validate_bundle",
    "validate_manifest_data",
]
