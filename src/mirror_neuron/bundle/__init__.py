"""Job bundles: loading, normalisation and validation of ``manifest.json`` + ``payloads/``.

Everything here only reads; failures raise :class:`~mirror_neuron.errors.ManifestError`
whose ``errors`` list holds every problem found.
"""

from __future__ import annotations

from mirror_neuron.bundle.loader import load_bundle, manifest_from_data, validate_bundle
from mirror_neuron.bundle.model import Bundle, Edge, Manifest, Node
from mirror_neuron.bundle.rules import register_node_check
from mirror_neuron.bundle.rules import validate as validate_manifest_data

__all__ = [
    "Bundle",
    "Edge",
    "Manifest",
    "Node",
    "load_bundle",
    "manifest_from_data",
    "register_node_check",
    "validate_bundle",
    "validate_manifest_data",
]
