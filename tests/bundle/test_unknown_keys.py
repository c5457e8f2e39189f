"""Unknown keys are warnings on the validated bundle, with the closest known key as a hint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import EXAMPLES, aggregator, manifest, router, sensor
from mirror_neuron.bundle import Bundle, load_bundle, manifest_from_data, validate_bundle
from mirror_neuron.bundle.agent_types import AGENT_TYPES, EXECUTOR_CONFIG_KEYS
from mirror_neuron.errors import ManifestError


def warnings_of(data: dict[str, Any]) -> list[str]:
    return list(validate_bundle(data).warnings)


def executor(node_id: str, **config: Any) -> dict[str, Any]:
    return {"node_id": node_id, "agent_type": "executor", "config": {"runner": "host_local", **config}}


def test_a_clean_manifest_has_no_warnings() -> None:
    data = manifest(
        [router("in", emit_type="x"), aggregator("out", complete_on_message=True)], [("in", "out", "x")]
    )
    assert warnings_of(data) == []


def test_a_misspelled_aggregator_key_is_named_with_its_node_and_a_suggestion() -> None:
    data = manifest([aggregator("reviewer", complete_on_mesage=True)])
    assert warnings_of(data) == [
        'node aggregator "reviewer" config: unknown key "complete_on_mesage" '
        '(did you mean "complete_on_message"?)'
    ]


def test_misspelled_top_level_node_and_edge_keys() -> None:
    data = manifest([router("ingress"), aggregator("sink")], [("ingress", "sink", "init")])
    data["entrypionts"] = ["ingress"]
    data["nodes"][0]["agent_tpye"] = "router"
    data["edges"][0]["mesage_type"] = "init"
    data["edges"].append({"from_node": "ingress", "to_node": "sink", "message_type": "m", "to_nodes": "x"})
    assert warnings_of(data) == [
        'manifest: unknown key "entrypionts" (did you mean "entrypoints"?)',
        'node "ingress": unknown key "agent_tpye" (did you mean "agent_type"?)',
        'edge "e0": unknown key "mesage_type" (did you mean "message_type"?)',
        'edge #2: unknown key "to_nodes" (did you mean "to_node"?)',
    ]


def test_an_unknown_key_with_no_close_match_gets_no_suggestion() -> None:
    data = manifest([sensor("s", zzz=1)], owner="me")
    assert warnings_of(data) == [
        'manifest: unknown key "owner"',
        'node sensor "s" config: unknown key "zzz"',
    ]


def test_a_node_without_an_id_is_named_by_position_and_aliases_keep_their_name() -> None:
    data = manifest([router("in"), {"agent_type": "collector", "config": {"complete_aftr": 2}}])
    with pytest.raises(ManifestError):  # the missing node_id is an error; the key is still found
        validate_bundle(data)
    data["nodes"][1]["node_id"] = "sink"
    assert warnings_of(data) == [
        'node collector "sink" config: unknown key "complete_aftr" (did you mean "complete_after"?)'
    ]


def test_router_keys_are_not_executor_keys() -> None:
    [warning] = warnings_of(manifest([router("r", command=["echo"])]))
    assert warning == 'node router "r" config: unknown key "command"'


def test_keys_inside_free_form_values_are_never_reported() -> None:
    data = manifest(
        [
            executor(
                "w",
                environment={"agent_tpye": "x"},
                limits={"memory_mb": 64},
                python_environment={"packages": []},
                backpressure={"drop_policy": "block", "anything": 1},
            ),
            {
                "node_id": "s",
                "agent_type": "sensor",
                "metadata": {"complete_on_mesage": True},
                "resources": {"cpu_cores": 0.1},
                "retry_policy": {"whatever": 1},
            },
        ],
        [("w", "s", "executor_result")],
        metadata={"entrypionts": 1, "quick_test": {"enabled": True}},
        policies={"recovery_mode": "local_restart", "stream_mode": "live", "backpressure": {}},
        initial_inputs={"w": [{"graph_id": 1, "nodes_": 2}]},
        reload={"mode": "manual", "whatever": 1},
    )
    assert warnings_of(data) == []


def test_keys_of_the_original_its_openshell_runner_and_later_bundles_stay_silent() -> None:
    openshell = dict.fromkeys(
        (
            *("sandbox_cli", "reuse_shared_sandbox", "persistent_workspace", "cleanup_remote_dir", "ssh_bin"),
            *("shared_sandbox_prefix", "no_keep", "no_auto_providers", "gpu", "from", "remote", "ssh_key"),
            *(
                "policy",
                "providers",
                "tty",
                "name_prefix",
                "content_type",
                "content_encoding",
                "lease_manager",
            ),
        )
    )
    later = dict.fromkeys(
        (
            *("beacon_enabled", "beacon_interval_ms", "beacon_timeout_ms", "beacon_missed_action"),
            *("agent_beacon_required", "idempotent", "safe_to_retry", "backpressure", "timeout_seconds"),
        )
    )
    node_extras = {"alias": "W", "display_name": "Worker", "resources": {}, "description": "d"}
    data = manifest(
        [
            {"node_id": "in", "agent_type": "relay", "config": {"emit_type": "go", **later}, **node_extras},
            {
                "node_id": "w",
                "agent_type": "sandbox_worker",
                "config": {**openshell, **later, "workflow_complete_step": False, "python_environment": {}},
            },
            {
                "node_id": "sink",
                "agent_type": "aggregator",
                "config": {"complete_run": True, "terminal_sink": True},
            },
            {
                "node_id": "mod",
                "agent_type": "module",
                "config": {"module": "M", "module_source": "m.ex", "x": 1},
            },
        ],
        [("in", "w", "go"), ("w", "sink", "executor_result")],
        job_name="j",
        daemon=False,
        long_lived=False,
        apiVersion="mn.workflow/v2",
        kind="Workflow",
        requiredContextEngine=False,
        runtime={"initial_inputs": {}},
        workflow={"steps": []},
        _comment="annotations are fine",
    )
    data["edges"][0].update(routing_mode="first_match", conditions={"expr": "${payload.x} == 1"})
    assert warnings_of(data) == []


def test_every_config_key_the_builtin_agents_read_is_known() -> None:
    read = {
        "router": {"emit_type", "max_queue_size"},
        "aggregator": {"complete_on_message", "complete_after", "output_message_type", "complete_job"},
        "sensor": {"output_message_type", "complete_after", "complete_job"},
        "executor": {
            *("runner", "runner_module", "command", "environment", "pass_env", "workdir", "pool"),
            *("pool_slots", "startup_delay_ms", "max_attempts", "retry_backoff_ms", "timeout_seconds"),
            *("max_output_bytes", "kill_grace_seconds", "network", "login_shell", "limits"),
            *("output_message_type", "complete_job", "name_prefix", "sandbox_upload_path"),
            *("upload_path", "upload_as", "upload_paths", "uploads", "max_queue_size"),
        },
    }
    for kind, keys in read.items():
        known = AGENT_TYPES[kind].config_keys
        assert known is not None and keys <= known, keys - (known or set())
    assert AGENT_TYPES["module"].config_keys is None
    assert "emit_type" not in EXECUTOR_CONFIG_KEYS


def test_warnings_do_not_make_a_bundle_invalid_and_errors_still_win() -> None:
    data = manifest([aggregator("a", complete_on_mesage=True)])
    assert manifest_from_data(data).node("a").config == {"complete_on_mesage": True}
    data["graph_id"] = None
    with pytest.raises(ManifestError) as caught:
        validate_bundle(data)
    assert caught.value.errors == ["graph_id is required"]


def test_every_way_of_loading_keeps_the_warnings(tmp_path: Path) -> None:
    data = manifest([aggregator("a", complete_aftr=1)], owner="me")
    expected = (
        'manifest: unknown key "owner"',
        'node aggregator "a" config: unknown key "complete_aftr" (did you mean "complete_after"?)',
    )
    (tmp_path / "payloads").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    for source in (data, json.dumps(data), tmp_path, str(tmp_path / "manifest.json")):
        assert load_bundle(source).warnings == expected
        assert validate_bundle(source).warnings == expected
    loaded = load_bundle(tmp_path)
    assert validate_bundle(loaded) is loaded  # a bundle checked again keeps what it had


def test_a_given_manifest_is_checked_for_config_keys() -> None:
    # A Manifest keeps only known fields, so only its config keys can be unknown.
    given = manifest_from_data(manifest([aggregator("a", complete_aftr=1)], owner="me"))
    checked = validate_bundle(given)
    assert checked.manifest is given
    assert checked.warnings == (
        'node aggregator "a" config: unknown key "complete_aftr" (did you mean "complete_after"?)',
    )
    assert validate_bundle(Bundle(given)).warnings == checked.warnings


@pytest.mark.parametrize(
    "folder", sorted(p.parent for p in EXAMPLES.rglob("manifest.json")), ids=lambda p: p.name
)
def test_every_example_bundle_validates_without_warnings(folder: Path) -> None:
    assert validate_bundle(folder).warnings == ()
