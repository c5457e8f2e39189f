"""Secrets from environment/pass_env never reach results or events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_neuron.execution.result import (
    is_secret_name,
    redact,
    redact_run,
    redact_text,
    redact_value,
    secret_values,
)
from mirror_neuron.execution.runners.base import RunResult, marker_block

from .conftest import run_config


def test_secret_names_are_recognised_by_marker() -> None:
    for name in ("API_TOKEN", "db_password", "AWS_SECRET_ACCESS_KEY", "SESSION_COOKIE", "openai_api_key"):
        assert is_secret_name(name)
    assert not is_secret_name("MN_DEMO_ID")


def test_longest_secret_is_redacted_first() -> None:
    secrets = secret_values({"A_TOKEN": "abcd", "B_TOKEN": "abcdefgh", "SHORT_KEY": "ab", "PLAIN": "zzzz"})
    assert secrets == ("abcdefgh", "abcd")
    assert redact("x abcdefgh abcd y", secrets) == "x [REDACTED] [REDACTED] y"


@pytest.mark.usefixtures("sandbox")
async def test_secret_values_are_redacted_from_every_captured_text(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_PASSWORD", "hunter2-passw0rd")
    cfg = {
        "command": 'echo "token=$API_TOKEN pw=$UPSTREAM_PASSWORD plain=$PLAIN"; echo $API_TOKEN >&2; exit 1',
        "environment": {"API_TOKEN": "tok-1234567890", "PLAIN": "visible-value"},
        "pass_env": ["UPSTREAM_PASSWORD"],
    }
    outcome = await run_config(cfg, payloads, temp_root)
    assert outcome.result["stdout"] == "token=[REDACTED] pw=[REDACTED] plain=visible-value\n"
    assert outcome.result["stderr"] == "[REDACTED]\n"
    for key in ("stdout", "stderr", "logs", "raw_output"):
        assert "tok-1234567890" not in outcome.result[key]
        assert "hunter2-passw0rd" not in outcome.result[key]
    assert "tok-1234567890" not in (outcome.error or "")
    assert "tok-1234567890" not in str(outcome.details)


SECRET = ("hunter2-passw0rd",)


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_json_escapes_do_not_hide_a_secret() -> None:
    text = '{"complete_job": {"v": "' + escaped(SECRET[0]) + '"}}'
    assert json.loads(text)["complete_job"]["v"] == SECRET[0]
    masked = redact_text(text, SECRET)
    assert json.loads(masked) == {"complete_job": {"v": "[REDACTED]"}}
    inner = '{"y": "' + escaped(SECRET[0]) + '"}'  # JSON text inside a JSON string
    masked = redact_text(json.dumps({"x": inner}), SECRET)
    assert SECRET[0] not in json.loads(json.loads(masked)["x"])["y"]
    lines = "progress\n" + '{"v": "' + escaped(SECRET[0]) + '"}\ndone'
    assert redact_text(lines, SECRET) == 'progress\n{"v":"[REDACTED]"}\ndone'
    plain = '{"a": "\\u0041 no secret"}'
    assert redact_text(plain, SECRET) == plain  # unchanged text stays byte-identical


def test_decoded_values_and_bytes_are_redacted() -> None:
    value = {SECRET[0]: [b"raw " + SECRET[0].encode(), ("t", SECRET[0])], "n": 1}
    assert redact_value(value, SECRET) == {"[REDACTED]": [b"raw [REDACTED]", ["t", "[REDACTED]"]], "n": 1}


def test_raw_output_is_rebuilt_from_the_redacted_streams() -> None:
    stdout = '{"v": "' + escaped(SECRET[0]) + '"}'
    run = RunResult(0, 0, stdout, "", "", marker_block(0, stdout, ""))
    redact_run(run, SECRET)
    assert SECRET[0] not in json.loads(json.loads(run.raw_output.splitlines()[1])["stdout"])["v"]


def test_json_too_deep_to_check_is_masked_whole() -> None:
    deep = "[" * 300 + '"' + escaped(SECRET[0]) + '"' + "]" * 300
    assert redact_text(deep, SECRET) == "[REDACTED]"
    assert redact_text("[" * 10 + '"ok\\u0041"' + "]" * 10, SECRET).startswith("[[")  # shallow: kept
