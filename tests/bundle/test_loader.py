"""Loading bundles from folders, files, JSON text and values (checklist M6, M7, B1 to B9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.bundle import (
    Bundle,
    Manifest,
    Node,
    load_bundle,
    manifest_from_data,
    rules,
    validate_bundle,
)
from mirror_neuron.errors import ManifestError

VALID: dict[str, Any] = {
    "manifest_version": "1.0",
    "graph_id": "test_graph",
    "entrypoints": ["router"],
    "nodes": [{"node_id": "router", "agent_type": "router"}],
    "edges": [],
}


def make_bundle(root: Path, manifest: Any = VALID, *, payloads: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (root / "manifest.json").write_text(text, encoding="utf-8")
    if payloads:
        (root / "payloads").mkdir()
    return root


def error_of(source: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_bundle(source)
    assert caught.value.errors, "a ManifestError always carries at least one message"
    return caught.value.errors


def test_b1_bundle_is_returned_as_is() -> None:
    bundle = Bundle(manifest_from_data(VALID))
    assert load_bundle(bundle) is bundle


def test_b2_manifest_is_wrapped_without_paths() -> None:
    manifest = manifest_from_data(VALID)
    bundle = load_bundle(manifest)
    assert bundle.manifest is manifest
    assert (bundle.root_path, bundle.manifest_path, bundle.payloads_path) == (None, None, None)


def test_b3_dict_is_normalised_and_validated() -> None:
    bundle = load_bundle(VALID)
    assert bundle.root_path is None
    assert bundle.manifest.graph_id == "test_graph"
    assert error_of({**VALID, "graph_id": None}) == ["graph_id is required"]


def test_b4_json_text_loads() -> None:
    bundle = load_bundle("  \n" + json.dumps(VALID))
    assert bundle.manifest.node("router").type == "generic"
    assert bundle.root_path is None


def test_json_text_that_is_a_list_is_reported_as_such() -> None:
    assert error_of("[1, 2]") == ["manifest must be a JSON object, got a list"]


def test_b5_invalid_json_text_reports_line_and_column() -> None:
    [message] = error_of('{"graph_id": "g",\n  oops}')
    assert message.startswith("invalid JSON at line 2, column 3: ")
    assert len(message) > len("invalid JSON at line 2, column 3: ")


def test_m7_strings_that_are_neither_paths_nor_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert error_of("/path/does/not/exist.json") == ["job folder does not exist: /path/does/not/exist.json"]
    expected = f"job folder does not exist: {tmp_path / 'invalid json string {'}"
    assert error_of("invalid json string {") == [expected]


def test_none_is_rejected() -> None:
    assert error_of(None) == ["no job bundle given"]


@pytest.mark.parametrize(("value", "name"), [(5, "a number"), ([VALID], "a list"), (b"{}", "a bytes")])
def test_other_values_are_not_manifests(value: Any, name: str) -> None:
    assert error_of(value) == [f"manifest must be a JSON object, got {name}"]


def test_b6_regular_file_is_not_a_job_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "job.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert error_of("job.json") == [f"expected a job folder, got file {tmp_path / 'job.json'}"]


def test_a_manifest_file_loads_its_folder(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "job")
    bundle = load_bundle(root / "manifest.json")
    assert bundle.root_path == root
    assert bundle.manifest.graph_id == "test_graph"


@pytest.mark.parametrize("as_path", [False, True])
def test_b7_m6_folder_loads_with_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_path: bool
) -> None:
    root = make_bundle(tmp_path / "test_bundle_dir")
    monkeypatch.chdir(tmp_path)
    bundle = load_bundle(Path("test_bundle_dir") if as_path else "test_bundle_dir")
    assert bundle.root_path == root and bundle.root_path.is_absolute()
    assert bundle.manifest_path == root / "manifest.json"
    assert bundle.payloads_path == root / "payloads"
    assert bundle.manifest.graph_id == "test_graph"


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_bundle(tmp_path / "jobs" / "a")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_bundle("~/jobs/a").root_path == root
    assert load_bundle("~/jobs/b/../a").root_path == root


def test_b8_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "payloads").mkdir()
    assert error_of(str(tmp_path)) == [f"job folder is missing manifest.json: {tmp_path / 'manifest.json'}"]


@pytest.mark.parametrize("payloads_is_file", [False, True])
def test_b9_missing_payloads(tmp_path: Path, payloads_is_file: bool) -> None:
    make_bundle(tmp_path, payloads=False)
    if payloads_is_file:
        (tmp_path / "payloads").write_text("")
    assert error_of(tmp_path) == [f"job folder is missing payloads/: {tmp_path / 'payloads'}"]


def test_malformed_manifest_file_names_file_line_and_column(tmp_path: Path) -> None:
    make_bundle(tmp_path, '{\n  "graph_id": "g",\n    oops\n}')
    [message] = error_of(tmp_path)
    assert message.startswith(f"invalid JSON in {tmp_path / 'manifest.json'} at line 3, column 5: ")


def test_empty_manifest_file(tmp_path: Path) -> None:
    make_bundle(tmp_path, "")
    [message] = error_of(tmp_path)
    assert message.startswith(f"invalid JSON in {tmp_path / 'manifest.json'} at line 1, column 1: ")


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    make_bundle(tmp_path)
    path = tmp_path / "manifest.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_bundle(tmp_path).manifest.graph_id == "test_graph"


def test_unreadable_manifest_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").mkdir()
    (tmp_path / "payloads").mkdir()
    [message] = error_of(tmp_path)
    assert message.startswith(f"cannot read {tmp_path / 'manifest.json'}: ")


def test_invalid_manifest_in_folder_reports_every_error(tmp_path: Path) -> None:
    make_bundle(tmp_path, {**VALID, "manifest_version": None, "daemon": "yes"})
    assert error_of(tmp_path) == ["manifest_version is required", "daemon must be a boolean"]


def test_path_objects_are_never_parsed_as_json(tmp_path: Path) -> None:
    assert error_of(tmp_path / "{}") == [f"job folder does not exist: {tmp_path / '{}'}"]


def test_strings_unusable_as_paths_are_clean_errors() -> None:
    assert error_of("a\0b")[0].startswith("job folder does not exist: ")
    assert error_of("x" * 5000)[0].startswith("job folder does not exist: ")


def test_validate_bundle_returns_the_loaded_bundle_and_changes_nothing(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "job")
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    bundle = validate_bundle(root)
    assert bundle.root_path == root
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_validate_bundle_rechecks_given_manifests_and_bundles() -> None:
    bad = Manifest(
        manifest_version="1.0",
        graph_id="g",
        job_name="g",
        nodes=(Node(node_id="n", agent_type="wizard", kind="wizard", type="generic"),),
        edges=(),
        entrypoints=("n",),
    )
    assert load_bundle(bad).manifest is bad  # loading a Manifest does not validate it
    for source in (bad, Bundle(bad)):
        with pytest.raises(ManifestError) as caught:
            validate_bundle(source)
        assert caught.value.errors == ['unsupported agent_type "wizard" for node n']
    good = manifest_from_data(VALID)
    assert validate_bundle(good).manifest is good


def test_node_checks_see_the_payloads_path(tmp_path: Path) -> None:
    seen: list[Path | None] = []
    checks: rules.NodeChecks = {"router": [lambda node, payloads: seen.append(payloads) or []]}
    root = make_bundle(tmp_path)
    load_bundle(root, node_checks=checks)
    load_bundle(VALID, node_checks=checks)
    validate_bundle(Bundle(manifest_from_data(VALID, node_checks=checks), root), node_checks=checks)
    assert seen == [root / "payloads", None, None, root / "payloads"]
    load_bundle(root)
    validate_bundle(Bundle(manifest_from_data(VALID), root))  # without node_checks none run
    assert len(seen) == 4
