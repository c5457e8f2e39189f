"""A weak API token is no protection: ``mn serve`` refuses one (a token of " " was accepted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_neuron.server import ServerSettings, check_bind
from mirror_neuron.server.auth import MAKE_TOKEN, MIN_TOKEN_LENGTH, WeakToken, check_token

STRONG = "Zr8k3-Qp_Xv9LmN2"  # exactly 16 visible characters

WEAK = [
    (" ", "fewer than 16"),
    ("", "fewer than 16"),
    ("hunter2", "fewer than 16"),
    ("x" * (MIN_TOKEN_LENGTH - 1), "fewer than 16"),
    (" " * 32, "whitespace"),
    ("correct horse battery staple", "whitespace"),
    ("tab\tinside-the-token-value", "whitespace"),
    (STRONG + "\n", "whitespace"),
    ("ünïcödé-töken-välüé", "visible ASCII"),
]


@pytest.mark.parametrize(("token", "why"), WEAK)
def test_weak_tokens_are_refused_with_how_to_make_one(token: str, why: str) -> None:
    with pytest.raises(WeakToken) as caught:
        check_token(token)
    message = str(caught.value)
    assert message.startswith("the API token is too weak: ") and why in message
    assert MAKE_TOKEN in message and "import secrets; print(secrets.token_urlsafe(32))" in message
    assert token.strip() == "" or token not in message  # the token itself is never echoed


@pytest.mark.parametrize(("token", "why"), WEAK)
def test_settings_and_bind_checks_refuse_weak_tokens_even_on_loopback(token: str, why: str) -> None:
    with pytest.raises(WeakToken, match=why):
        ServerSettings(token=token)
    for host in ("127.0.0.1", "0.0.0.0"):
        with pytest.raises(WeakToken, match=why):
            check_bind(host, token)


def test_strong_tokens_are_accepted() -> None:
    import secrets

    for token in (STRONG, secrets.token_urlsafe(32), secrets.token_hex(16)):
        check_token(token)
        check_bind("0.0.0.0", token)
        assert ServerSettings(token=token).token == token
    assert ServerSettings().token is None  # no token: loopback only, as before
    with pytest.raises(WeakToken, match="fewer than 40"):
        ServerSettings(token=STRONG, min_token_length=40)


def test_mn_serve_refuses_a_blank_token(tmp_path: Path) -> None:
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path), "MIRROR_NEURON_API_TOKEN": " "}
    out = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: the API token is too weak: it has 1 character, fewer than 16")
    assert MAKE_TOKEN in out.stderr
