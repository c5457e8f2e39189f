"""Loading a job bundle from a folder, a manifest file, JSON text or an in-memory value.

Every failure — missing folder or file, unreadable file, malformed JSON (with line and
column), invalid manifest — raises :class:`~mirror_neuron.errors.ManifestError`; loading
reads files and nothing else.

Only the bundle's own rules run unless the caller passes ``node_checks`` (extra checks by
agent type); :mod:`mirror_neuron.validation` passes the executor's, for complete validation.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from mirror_neuron import _json
from mirror_neuron.bounds import MAX_DEPTH, check_bounds
from mirror_neuron.bundle.keys import warnings_of
from mirror_neuron.bundle.model import Bundle, Manifest
from mirror_neuron.bundle.normalize import build_manifest, normalize_document
from mirror_neuron.bundle.rules import NodeChecks, validate_document
from mirror_neuron.bundle.shapes import not_an_object
from mirror_neuron.errors import ManifestError

MANIFEST_FILE = "manifest.json"
PAYLOADS_DIR = "payloads"
_UTF8_BOM = b"\xef\xbb\xbf"
#: A node's config sits 3 levels down in a manifest (``nodes`` → node → config) and may
#: nest :data:`MAX_DEPTH` levels itself, like an initial input (which becomes a message).
MANIFEST_MAX_DEPTH = MAX_DEPTH + 3

BundleSource = Bundle | Manifest | dict[str, Any] | str | os.PathLike[str]


def manifest_from_data(
    raw: Any, payloads_path: Path | None = None, *, node_checks: NodeChecks | None = None
) -> Manifest:
    """Normalise and validate a decoded manifest; raise :class:`ManifestError` with every error."""
    return _checked(raw, payloads_path, node_checks)[0]


def _checked(
    raw: Any, payloads_path: Path | None = None, node_checks: NodeChecks | None = None
) -> tuple[Manifest, tuple[str, ...]]:
    """:func:`manifest_from_data`, and the warnings of the manifest."""
    if not isinstance(raw, dict):
        raise ManifestError(not_an_object(raw))
    check_manifest_bounds(raw)
    doc = normalize_document(raw)
    errors = validate_document(doc, payloads_path, node_checks=node_checks)
    if errors:
        raise ManifestError(errors)
    return build_manifest(doc), tuple(warnings_of(doc))


def check_manifest_bounds(raw: dict[str, Any]) -> None:
    """Refuse a manifest nested too deep for the store (orjson stops at ~254 levels).

    Initial inputs become messages, so each is held to the message limit. Two walks decide
    (every input at once, then the rest); only a refused manifest is walked again, part by
    part, to name the culprit: its initial input, or else its top-level field.
    """
    inputs = raw.get("initial_inputs")
    if isinstance(inputs, dict):  # every input one level down, as in the list form
        inputs = [v for values in inputs.values() for v in (values if isinstance(values, list) else [values])]
    rest = {key: value for key, value in raw.items() if key != "initial_inputs"}
    try:
        check_bounds(inputs, what="initial_inputs", max_depth=MAX_DEPTH + 1, error=ManifestError)
        check_bounds(rest, what="the manifest", max_depth=MANIFEST_MAX_DEPTH, error=ManifestError)
    except ManifestError:
        for name, value in _initial_inputs(raw.get("initial_inputs")):
            check_bounds(value, what=name, error=ManifestError)
        for key, value in rest.items():
            check_bounds(
                value, what=f"manifest field {key!r}", max_depth=MANIFEST_MAX_DEPTH - 1, error=ManifestError
            )
        raise


def _initial_inputs(inputs: Any) -> list[tuple[str, Any]]:
    """``(name, value)`` of every initial input, in either form (§1.7)."""
    if isinstance(inputs, dict):
        return [
            (f"initial input {i} of {key!r}", value)
            for key, values in inputs.items()
            for i, value in enumerate(values if isinstance(values, list) else [values])
        ]
    if isinstance(inputs, list):
        return [(f"initial input {i}", value) for i, value in enumerate(inputs)]
    return []


def parse_json(data: bytes | str, origin: Path | None = None) -> Any:
    """Decode JSON; on failure say where (file, line, column) and why."""
    if isinstance(data, bytes) and data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        return _json.loads(data)
    except _json.JSONDecodeError as exc:
        where = f"in {origin} " if origin is not None else ""
        message = f"invalid JSON {where}at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ManifestError(message) from exc


def _stat(path: Path) -> os.stat_result | None:
    """``os.stat`` that treats every failure (missing, too long, NUL byte, …) as absence."""
    try:
        return path.stat()
    except (OSError, ValueError):
        return None


def _absolute(text: str) -> Path:
    return Path(os.path.abspath(os.path.expanduser(text)))


def _read_manifest(
    manifest_path: Path, payloads_path: Path, node_checks: NodeChecks | None = None
) -> tuple[Manifest, tuple[str, ...]]:
    try:
        data = manifest_path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {manifest_path}: {exc.strerror or exc}") from exc
    return _checked(parse_json(data, manifest_path), payloads_path, node_checks)


def load_folder(root: Path, *, node_checks: NodeChecks | None = None) -> Bundle:
    """A bundle folder: ``manifest.json`` and a ``payloads/`` directory are both required."""
    manifest_path = root / MANIFEST_FILE
    payloads_path = root / PAYLOADS_DIR
    if _stat(manifest_path) is None:
        raise ManifestError(f"job folder is missing {MANIFEST_FILE}: {manifest_path}")
    payloads = _stat(payloads_path)
    if payloads is None or not stat.S_ISDIR(payloads.st_mode):
        raise ManifestError(f"job folder is missing {PAYLOADS_DIR}/: {payloads_path}")
    manifest, warnings = _read_manifest(manifest_path, payloads_path, node_checks)
    return Bundle(manifest, root, warnings)


def _load_text(source: str | os.PathLike[str], node_checks: NodeChecks | None) -> Bundle:
    text = os.fsdecode(os.fspath(source))
    path = _absolute(text)
    info = _stat(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        return load_folder(path, node_checks=node_checks)
    if info is not None:
        if path.name == MANIFEST_FILE and stat.S_ISREG(info.st_mode):
            return load_folder(path.parent, node_checks=node_checks)
        raise ManifestError(f"expected a job folder, got file {path}")
    if isinstance(source, str) and text.lstrip().startswith(("{", "[")):
        manifest, warnings = _checked(parse_json(text), None, node_checks)
        return Bundle(manifest, warnings=warnings)
    raise ManifestError(f"job folder does not exist: {path}")


def load_bundle(source: BundleSource | None, *, node_checks: NodeChecks | None = None) -> Bundle:
    """Load a job bundle from any accepted source; see the module docstring.

    A :class:`Bundle` is returned as is and a :class:`Manifest` wrapped (neither
    re-validated, use :func:`validate_bundle` for that); a dict is normalised and
    validated; a string or path names a bundle folder (or its ``manifest.json``), and a
    string that names nothing on disk and starts with ``{`` or ``[`` is JSON text.
    ``node_checks`` adds checks by agent type to the bundle's own rules.
    """
    if source is None:
        raise ManifestError("no job bundle given")
    if isinstance(source, Bundle):
        return source
    if isinstance(source, Manifest):
        return Bundle(source)
    if isinstance(source, str | os.PathLike):
        return _load_text(source, node_checks)
    manifest, warnings = _checked(source, None, node_checks)
    return Bundle(manifest, warnings=warnings)


def validate_bundle(source: BundleSource | None, *, node_checks: NodeChecks | None = None) -> Bundle:
    """Load ``source`` and check it (also a given Bundle or Manifest); no side effects.

    The returned bundle's ``warnings`` name what was accepted but looks wrong (unknown keys).
    A given Bundle or Manifest keeps only its known keys, so only its config keys are checked.
    Only the bundle's own rules and ``node_checks`` run: for the complete check (executor
    nodes too) use :func:`mirror_neuron.validation.validate_bundle`.
    """
    bundle = load_bundle(source, node_checks=node_checks)
    if isinstance(source, Bundle | Manifest):
        doc = normalize_document(bundle.manifest.to_dict())
        errors = validate_document(doc, bundle.payloads_path, node_checks=node_checks)
        if errors:
            raise ManifestError(errors)
        warnings = tuple(dict.fromkeys([*bundle.warnings, *warnings_of(doc)]))
        if warnings != bundle.warnings:
            bundle = replace(bundle, warnings=warnings)
    return bundle
