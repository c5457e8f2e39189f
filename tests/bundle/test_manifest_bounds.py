"""A manifest nested too deep for the store is refused at load, naming the part that is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import manifest, router
from mirror_neuron.bundle import load_bundle
from mirror_neuron.errors import ManifestError


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def test_300_level_initial_inputs_are_refused_at_load() -> None:
    data = manifest([router("entry")], initial_inputs={"entry": [{"ok": 1}, nested(300)]})
    with pytest.raises(ManifestError) as info:
        load_bundle(data)
    assert info.value.errors == [
        "initial input 1 of 'entry' is nested more than 64 levels deep (the limit is 64)"
    ]


@pytest.mark.parametrize(
    "inputs,name",
    [([nested(65)], "initial input 0"), ({"entry": nested(65)}, "initial input 0 of 'entry'")],
    ids=["list", "single"],
)
def test_every_form_of_initial_inputs_is_held_to_the_message_limit(inputs: Any, name: str) -> None:
    with pytest.raises(ManifestError, match=f"^{name} is nested more than 64 levels deep"):
        load_bundle(manifest([router("entry")], initial_inputs=inputs))


def test_inputs_and_configs_at_the_limit_load() -> None:
    data = manifest([router("entry", deep=nested(63))], initial_inputs={"entry": [nested(64)]})
    assert load_bundle(data).manifest.inputs_for("entry") == [nested(64)]


def test_a_deep_node_config_is_refused_naming_the_field() -> None:
    with pytest.raises(ManifestError, match=r"^manifest field 'nodes' is nested more than 66 levels deep"):
        load_bundle(manifest([router("entry", deep=nested(70))]))


def test_a_bundle_folder_with_a_deep_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "payloads").mkdir()
    data = manifest([router("entry")], initial_inputs={"entry": [nested(300)]})
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="initial input 0 of 'entry' is nested more than 64 levels"):
        load_bundle(tmp_path)
