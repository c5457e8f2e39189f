"""Complete bundle validation: the bundle's own rules plus the executor's node checks.

The bundle layer cannot import :mod:`mirror_neuron.execution`, so it takes extra checks by
agent type as a parameter (``node_checks``); this module composes the two explicitly,
with no registry and nothing done on import. Everything that validates a bundle for
running it (the API, ``mn validate``/``mn run``, :class:`~mirror_neuron.runtime.Runtime`,
recovery) goes through here. Importing it imports neither the runtime nor the agents.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from .bundle import Bundle, Manifest, NodeChecks
from .bundle import load_bundle as _load_bundle
from .bundle import manifest_from_data as _manifest_from_data
from .bundle import validate_bundle as _validate_bundle
from .bundle import validate_manifest_data as _validate_manifest_data
from .bundle.loader import BundleSource
from .execution.validate import check_executor_node

#: The node checks beyond the bundle's own rules, by agent type.
NODE_CHECKS: NodeChecks = MappingProxyType({"executor": (check_executor_node,)})


def load_bundle(source: BundleSource | None) -> Bundle:
    """:func:`mirror_neuron.bundle.load_bundle` with every node check (a given Bundle or
    Manifest is returned unchecked, as there)."""
    return _load_bundle(source, node_checks=NODE_CHECKS)


def validate_bundle(source: BundleSource | None) -> Bundle:
    """Load ``source`` and check it completely (also a given Bundle or Manifest); no side effects."""
    return _validate_bundle(source, node_checks=NODE_CHECKS)


def validate_manifest(source: BundleSource | None) -> Bundle:
    """Load and validate a job bundle (folder path, manifest dict or JSON text); starts nothing.

    This is :func:`mirror_neuron.validate_manifest`: it imports neither the runtime nor the agents.

    Raises:
        ManifestError: with ``.errors`` listing every problem found.
    """
    return validate_bundle(source)


def manifest_from_data(raw: Any, payloads_path: Path | None = None) -> Manifest:
    """Normalise and completely validate a decoded manifest; raise ``ManifestError`` with every error."""
    return _manifest_from_data(raw, payloads_path, node_checks=NODE_CHECKS)


def validate_manifest_data(raw: Any, payloads_path: Path | None = None) -> list[str]:
    """Every error of a decoded manifest (any JSON value), executor checks included."""
    return _validate_manifest_data(raw, payloads_path, node_checks=NODE_CHECKS)


__all__ = [
    "NODE_CHECKS",
    "load_bundle",
    "manifest_from_data",
    "validate_bundle",
    "validate_manifest",
    "validate_manifest_data",
]
