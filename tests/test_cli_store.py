"""Which store ``mn`` uses (one precedence, as ``Config.from_env``); readers never create one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builders import EXAMPLES
from mirror_neuron.config import Config, choose_store, default_store_url
from redis_server import RedisServer, free_port
from test_cli import mn


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


# -- one precedence: --store > MIRROR_NEURON_STORE_URL > MIRROR_NEURON_REDIS_URL > the data dir ------


def test_choose_store_takes_the_first_of_store_store_url_redis_url_and_the_data_dir(tmp_path: Path) -> None:
    env = {"MIRROR_NEURON_DATA_DIR": str(tmp_path)}
    chosen = choose_store(None, None, env)
    assert (chosen.url, chosen.data_dir, chosen.source) == (default_store_url(tmp_path), tmp_path, "data dir")
    assert chosen.url == f"sqlite:///{tmp_path}/mirror_neuron.db"
    assert Config.from_env(env).store_is_default
    env["MIRROR_NEURON_REDIS_URL"] = "redis://r:6379/0"
    chosen = choose_store(None, None, env)
    assert (chosen.url, chosen.source) == ("redis://r:6379/0", "MIRROR_NEURON_REDIS_URL")
    assert not Config.from_env(env).store_is_default
    # The data dir only says where the SQLite store lives: it never beats a store URL.
    assert choose_store(None, tmp_path / "other", env).url == "redis://r:6379/0"
    env["MIRROR_NEURON_STORE_URL"] = "sqlite:///s.db"
    assert choose_store(None, None, env).source == "MIRROR_NEURON_STORE_URL"
    assert choose_store("memory://", tmp_path / "other", env).url == "memory://"
    other = choose_store(None, tmp_path / "other", {"MN_DATA_DIR": str(tmp_path)})
    assert other.url == default_store_url(tmp_path / "other") and other.data_dir == tmp_path / "other"
    assert choose_store(None, None, {"MN_REDIS_URL": "redis://x/1"}).url == "redis://x/1"


def test_config_from_env_follows_the_same_precedence(tmp_path: Path) -> None:
    env = {"MIRROR_NEURON_DATA_DIR": str(tmp_path), "MIRROR_NEURON_REDIS_URL": "redis://r:6379/0"}
    assert Config.from_env(env).store_url == "redis://r:6379/0"
    assert Config.from_env(env).data_dir == tmp_path
    assert Config.from_env(env, store_url="memory://").store_url == "memory://"
    moved = Config.from_env({"MIRROR_NEURON_DATA_DIR": str(tmp_path)}, data_dir=tmp_path / "x")
    assert (moved.store_url, moved.data_dir) == (default_store_url(tmp_path / "x"), tmp_path / "x")


def test_help_documents_the_store_precedence(data: Path) -> None:
    out = mn("--help", data_dir=data)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0
    assert "--store, $MIRROR_NEURON_STORE_URL, $MIRROR_NEURON_REDIS_URL, SQLite in the data dir" in text, (
        out.stdout
    )
    assert "$MIRROR_NEURON_DATA_DIR" in text


def test_the_redis_url_wins_over_the_data_dir(redis_server: RedisServer, data: Path, tmp_path: Path) -> None:
    from mirror_neuron.store.redis import RedisStore

    namespace = f"mn_cli_{os.getpid()}_{tmp_path.name}"
    env = {"MIRROR_NEURON_REDIS_URL": redis_server.url, "MIRROR_NEURON_REDIS_NAMESPACE": namespace}
    out = mn("run", "--json", str(EXAMPLES / "research_flow"), data_dir=data, env=env)
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["job_id"]
    with RedisStore(redis_server.url, namespace=namespace) as store:
        assert store.get_job(job_id)["status"] == "completed"
    assert not (data / "mirror_neuron.db").exists()
    listed = json.loads(mn("job", "list", "--json", data_dir=data, env=env).stdout)
    assert [j["job_id"] for j in listed] == [job_id]
    checks = {c["name"]: c for c in json.loads(mn("doctor", "--json", data_dir=data, env=env).stdout)}
    assert checks["store"]["ok"]
    assert checks["store"]["detail"] == f"{redis_server.url} (from MIRROR_NEURON_REDIS_URL): 1 job(s)"


def test_doctor_fails_fast_on_an_unreachable_redis_and_masks_its_password(data: Path) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    out = mn("doctor", data_dir=data, env={"MIRROR_NEURON_REDIS_URL": url}, timeout=60)  # no hang
    assert out.returncode == 1
    line = next(x for x in out.stdout.splitlines() if "store" in x)
    assert line.startswith("FAIL store: redis://***@127.0.0.1:")
    assert "(from MIRROR_NEURON_REDIS_URL)" in line and "unreachable" in line
    assert "s3cret" not in out.stdout + out.stderr


# -- readers never create a store --------------------------------------------------------------

READERS = [
    ["job", "list"],
    ["job", "inspect", "some-job"],
    ["job", "agents", "some-job"],
    ["job", "events", "some-job"],
    ["job", "events", "-f", "some-job"],
    ["job", "pause", "some-job"],
    ["job", "cancel", "some-job"],
    ["job", "dead-letters", "some-job"],
    ["job", "cleanup"],
    ["job", "recover", "some-job"],
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_missing_explicit_store_is_an_error_and_is_not_created(
    tmp_path: Path, data: Path, command: list[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for location in (tmp_path / "no" / "such" / "x.db", tmp_path / "empty" / "x.db"):
        out = mn("--store", f"sqlite:///{location}", *command, data_dir=data)
        assert out.returncode == 1
        assert out.stderr.strip() == f"error: no store at {location}"
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_doctor_reports_a_missing_explicit_store_and_creates_nothing(tmp_path: Path, data: Path) -> None:
    location = tmp_path / "no" / "such" / "x.db"
    out = mn("--store", f"sqlite:///{location}", "doctor", data_dir=data)
    assert out.returncode == 1
    assert f"FAIL store: sqlite:///{location} (from --store): no store at {location}" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_data_dir_has_no_jobs_and_stays_untouched(data: Path) -> None:
    out = mn("job", "list", data_dir=data)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "no jobs\n")
    assert json.loads(mn("job", "list", "--json", data_dir=data).stdout) == []
    missing = mn("job", "inspect", "some-job", data_dir=data)
    assert (missing.returncode, missing.stderr) == (1, "error: job some-job was not found\n")
    cleanup = mn("job", "cleanup", "--json", data_dir=data)
    assert json.loads(cleanup.stdout)["deleted_jobs"] == []
    checks = {c["name"]: c for c in json.loads(mn("doctor", "--json", data_dir=data).stdout)}
    assert checks["store"]["ok"] and "not created yet" in checks["store"]["detail"]
    assert not data.exists()
    # Writers still create it.
    assert mn("run", "--json", str(EXAMPLES / "research_flow"), data_dir=data).returncode == 0
    assert (data / "mirror_neuron.db").exists()
