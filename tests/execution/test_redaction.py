"""Secrets from environment/pass_env never reach results or events."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror_neuron.execution.result import is_secret_name, redact, secret_values

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
