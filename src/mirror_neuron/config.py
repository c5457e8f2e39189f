"""Runtime configuration: every bound, interval and path in one frozen record.

Only :meth:`Config.from_env` reads the environment, and only adapters (the CLI, the
module-level API) call it; library code receives a ``Config``.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .policy import ExecutionPolicy, parse_limits_text

ENV_PREFIXES = ("MIRROR_NEURON_", "MN_")


def env(name: str, default: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """Read ``MIRROR_NEURON_<name>``, falling back to the later ``MN_<name>`` spelling."""
    source = os.environ if environ is None else environ
    for prefix in ENV_PREFIXES:
        value = source.get(prefix + name)
        if value not in (None, ""):
            return value
    return default


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mirror_neuron", appauthor=False))


#: File name of the embedded SQLite store inside the data directory.
DEFAULT_DB_NAME = "mirror_neuron.db"


def default_store_url(data_dir: Path) -> str:
    """The embedded store of a data directory: ``sqlite:///<data_dir>/mirror_neuron.db``."""
    return f"sqlite:///{data_dir / DEFAULT_DB_NAME}"


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """The store a process uses, its data directory, and which setting chose the store."""

    url: str
    data_dir: Path
    #: ``--store``, ``MIRROR_NEURON_STORE_URL``, ``MIRROR_NEURON_REDIS_URL`` or ``data dir``.
    source: str


def choose_store(
    store: str | None = None, data_dir: str | Path | None = None, environ: dict[str, str] | None = None
) -> StoreChoice:
    """The one store precedence of the CLI and :meth:`Config.from_env` (``mn --help``, README).

    ``store`` (the CLI's ``--store``) wins, then ``MIRROR_NEURON_STORE_URL``, then
    ``MIRROR_NEURON_REDIS_URL``; without any, SQLite in the data directory. The data
    directory (``data_dir``, i.e. ``--data-dir``, else ``MIRROR_NEURON_DATA_DIR``, else the
    per-user data directory) only says where that SQLite file lives: it never overrides a
    store URL.
    """
    directory = Path(
        os.path.abspath(Path(data_dir or env("DATA_DIR", None, environ) or default_data_dir()).expanduser())
    )
    for source, value in (
        ("--store", store.strip() if store else None),
        ("MIRROR_NEURON_STORE_URL", env("STORE_URL", None, environ)),
        ("MIRROR_NEURON_REDIS_URL", env("REDIS_URL", None, environ)),
    ):
        if value:
            return StoreChoice(value, directory, source)
    return StoreChoice(default_store_url(directory), directory, "data dir")


def parse_pool_capacities(text: str | None) -> dict[str, int]:
    """``"gpu=1,io=8"`` → ``{"gpu": 1, "io": 8}``; malformed entries are ignored (as the original)."""
    pools: dict[str, int] = {}
    for entry in (text or "").split(","):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if sep and name and value.isdigit() and int(value) > 0:
            pools[name] = int(value)
    return pools


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one runtime."""

    #: Store location: ``memory://``, ``sqlite:///abs/path.db`` or a path to a data directory.
    store_url: str = "memory://"
    data_dir: Path | None = None
    #: Capacity of the ``default`` executor pool and of the named pools.
    executor_max_concurrency: int = 4
    pool_capacities: dict[str, int] = field(default_factory=dict)
    #: The largest share of a pool's capacity one job may hold while other jobs wait for it
    #: (``MIRROR_NEURON_POOL_JOB_SHARE``; 1.0: no cap, fair queueing alone).
    pool_job_share: float = 1.0
    #: Per user (``mirror_neuron-<uid>``), so another local user cannot pre-create it.
    temp_dir: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / f"mirror_neuron-{os.geteuid()}"
    )
    #: Default mailbox bound per agent.
    max_queue_size: int = 10_000
    #: How often buffered events/snapshots are written, and how many trigger an early write.
    flush_interval: float = 0.05
    flush_max_events: int = 8192
    #: Messages an agent processes before yielding its turn on the run queue.
    agent_batch: int = 64
    heartbeat_interval: float = 2.0
    #: Seconds a job's lease lasts unless renewed (every third of it): how long the jobs of
    #: a node that died wait before another node may claim them.
    lease_ttl: float = 5.0
    #: The API token this process presents to the nodes of a cluster when it calls them
    #: (``MIRROR_NEURON_API_TOKEN``: every node of a cluster shares one).
    api_token: str | None = field(default=None, repr=False)
    #: Store each job's bundle files with it, so a node on another machine can recover it
    #: (``mn serve`` does; see :mod:`mirror_neuron.runtime.shipping`).
    ship_bundles: bool = False
    #: Listen on a per-user Unix socket so other processes can control this runtime's jobs.
    control: bool = True
    #: What bundles may ask of this host (unsandboxed runners, network, environment, limits).
    #: The default trusts them (``mn run``: you run your own bundle); ``mn serve`` uses
    #: :meth:`ExecutionPolicy.submitted` for bundles that clients send it.
    policy: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    #: Generation-0 GC threshold while a runtime runs (None leaves the interpreter's).
    #: Millions of short-lived messages otherwise trigger collections over every live one.
    gc_threshold: int | None = 50_000
    #: Name of this runtime node (recorded on jobs and snapshots).
    node_name: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    @property
    def store_is_default(self) -> bool:
        """True for the data directory's embedded SQLite store: no store was named."""
        return self.data_dir is not None and self.store_url == default_store_url(self.data_dir)

    def pools(self) -> dict[str, int]:
        return {"default": self.executor_max_concurrency, **self.pool_capacities}

    def with_(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
        """Build a config from ``MIRROR_NEURON_*`` (or ``MN_*``) variables.

        The store follows :func:`choose_store`: a ``store_url`` override plays ``--store``,
        a ``data_dir`` override ``--data-dir``.
        """
        choice = choose_store(overrides.pop("store_url", None), overrides.pop("data_dir", None), environ)
        store_url, data_dir = choice.url, choice.data_dir
        concurrency = env("EXECUTOR_MAX_CONCURRENCY", "4", environ) or "4"
        values: dict[str, Any] = {
            "store_url": store_url,
            "data_dir": data_dir,
            "executor_max_concurrency": int(concurrency)
            if concurrency.isdigit() and int(concurrency) > 0
            else 4,
            "pool_capacities": parse_pool_capacities(env("EXECUTOR_POOL_CAPACITIES", None, environ)),
            "pool_job_share": _env_number(
                "POOL_JOB_SHARE", environ, lambda v: 0.0 < v <= 1.0, "a fraction in (0, 1]"
            )
            or 1.0,
        }
        values["api_token"] = env("API_TOKEN", None, environ)
        lease_ttl = _env_number(
            "LEASE_TTL", environ, lambda v: 0.1 <= v <= 3600, "seconds between 0.1 and 3600"
        )
        if lease_ttl is not None:
            values["lease_ttl"] = lease_ttl
        temp = env("TEMP_DIR", None, environ)
        if temp:
            values["temp_dir"] = Path(temp).expanduser()
        try:
            limits = parse_limits_text(env("SANDBOX_LIMITS", None, environ))
        except ValueError as exc:
            raise ConfigError(f"MIRROR_NEURON_SANDBOX_LIMITS: {exc}") from None
        values["policy"] = ExecutionPolicy(
            limits=limits,
            openshell_bin=env("OPENSHELL_BIN", None, environ),
            network_allow=_cidrs("SANDBOX_NETWORK_ALLOW", environ),
            network_deny=_cidrs("SANDBOX_NETWORK_DENY", environ),
            max_run_seconds=_env_number(
                "MAX_RUN_SECONDS", environ, lambda v: v > 0, "a positive number of seconds"
            ),
        )
        values.update(overrides)
        return cls(**values)


def _env_number(
    name: str, environ: dict[str, str] | None, valid: Callable[[float], bool], expected: str
) -> float | None:
    """``MIRROR_NEURON_<name>`` as a number, ``None`` when unset.

    Raises:
        ConfigError: the value is not a number that ``valid`` accepts (``expected`` says which).
    """
    text = env(name, None, environ)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not valid(value):
        raise ConfigError(f"MIRROR_NEURON_{name} must be {expected}, got {text!r}")
    return value


def _cidrs(name: str, environ: dict[str, str] | None) -> tuple[str, ...]:
    """``MIRROR_NEURON_<name>``: comma-separated IPv4 networks, e.g. ``10.20.0.15/32,10.30.0.0/16``."""
    values = tuple(part.strip() for part in (env(name, None, environ) or "").split(",") if part.strip())
    for value in values:
        try:
            ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ConfigError(f"MIRROR_NEURON_{name}: {value!r} is not an IPv4 network ({exc})") from None
    return values
