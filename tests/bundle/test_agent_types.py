"""Validation is complete without the agents package: the bundle layer owns the agent types,
and :mod:`mirror_neuron.validation` passes the executor's node checks in explicitly."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from builders import aggregator, manifest, router
from mirror_neuron import validation
from mirror_neuron.bundle import AGENT_TYPES, validate_bundle
from mirror_neuron.bundle.agent_types import AGENT_ALIASES, TEMPLATES_BY_AGENT, config_keys
from mirror_neuron.errors import ManifestError

CASES: dict[str, Any] = {
    "unknown": manifest([{"node_id": "w", "agent_type": "wizard"}]),
    "known": manifest(
        [router("in", emit_type="x"), aggregator("out", complete_aftr=1)], [("in", "out", "x")]
    ),
    "executor": manifest([{"node_id": "w", "agent_type": "executor", "config": {"runner": "warp"}}]),
    "workdir": manifest(
        [{"node_id": "w", "agent_type": "executor", "config": {"command": ["true"], "workdir": "/etc"}}]
    ),
}

# Run in a fresh interpreter: the bundle layer alone first, then complete validation (the
# module and the public function), then the bundle layer again.
FRESH = """
import json, sys
from mirror_neuron.bundle import validate_bundle as bundle_only
from mirror_neuron.errors import ManifestError

def answers(validate):
    def answer(data):
        try:
            return {"ok": True, "warnings": list(validate(data).warnings)}
        except ManifestError as exc:
            return {"ok": False, "errors": exc.errors}
    return {name: answer(data) for name, data in cases.items()}

cases = json.loads(sys.stdin.read())
report = {"bundle_before": answers(bundle_only)}
import mirror_neuron
from mirror_neuron.validation import validate_bundle
report["complete"] = answers(validate_bundle)
report["public"] = answers(mirror_neuron.validate_manifest)
report["bundle_after"] = answers(bundle_only)
report["agents"] = sorted(m for m in sys.modules if m.split(".")[:2] == ["mirror_neuron", "agents"])
print(json.dumps(report))
"""


def answer(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": True, "warnings": list(validation.validate_bundle(data).warnings)}
    except ManifestError as exc:
        return {"ok": False, "errors": exc.errors}


EXPECTED = {
    "unknown": {"ok": False, "errors": ['unsupported agent_type "wizard" for node w']},
    "known": {
        "ok": True,
        "warnings": [
            'node aggregator "out" config: unknown key "complete_aftr" (did you mean "complete_after"?)'
        ],
    },
    "executor": {
        "ok": False,
        "errors": [
            "executor node w: unknown executor runner 'warp' (expected one of bubblewrap, bwrap, host, "
            "host_local, openshell, sandbox)"
        ],
    },
    "workdir": {
        "ok": False,
        "errors": [
            "executor node w: workdir /etc is outside /sandbox/job, the only directory the sandbox "
            "sees (use a path relative to it)"
        ],
    },
}


def test_a_fresh_interpreter_validates_without_importing_agents_and_agrees() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRESH],
        input=json.dumps(CASES),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(out.stdout)
    assert report["agents"] == []
    assert report["complete"] == report["public"] == EXPECTED
    # The bundle layer alone runs no executor check, before or after complete validation:
    # nothing was registered behind the scenes.
    executor_free = {
        **report["complete"],
        **{name: {"ok": True, "warnings": []} for name in ("executor", "workdir")},
    }
    assert report["bundle_before"] == report["bundle_after"] == executor_free
    # The same answers here, where the agents package has been imported (the runtime's tests use it).
    import mirror_neuron.agents  # noqa: F401

    assert {name: answer(data) for name, data in CASES.items()} == report["complete"]
    assert {
        name: list(validate_bundle(data).warnings) for name, data in CASES.items() if name != "unknown"
    } == {
        "known": report["complete"]["known"]["warnings"],
        "executor": [],
        "workdir": [],
    }


def test_the_agent_types_are_plain_data() -> None:
    assert set(AGENT_TYPES) == {"router", "executor", "aggregator", "sensor", "module"}
    assert {name: t.templates for name, t in AGENT_TYPES.items()} == TEMPLATES_BY_AGENT
    assert set(AGENT_ALIASES.values()) <= set(AGENT_TYPES)
    assert config_keys("router") == AGENT_TYPES["router"].config_keys
    assert config_keys("module") is None and config_keys("wizard") is None and config_keys(None) is None
