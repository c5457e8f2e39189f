"""Stores: where jobs, events and agent snapshots live, chosen by one URL.

:func:`open_store` is the only place that turns configuration into a store, so the CLI,
the API and tests all accept the same spellings:

* ``memory://`` — in-process, gone when the process exits (tests, throwaway runs);
* ``sqlite:///abs/path.db`` (also ``sqlite:////abs/path.db``) or ``sqlite://rel/path.db``
  (relative to the working directory) — the embedded default;
* a plain path: a ``.db``/``.sqlite``/``.sqlite3`` file, or a directory that gets a
  ``mirror_neuron.db`` inside it;
* ``redis://…``, ``rediss://…`` (TLS) or ``unix:///path/redis.sock`` — the shared Redis store,
  keys prefixed by ``MIRROR_NEURON_REDIS_NAMESPACE`` (default ``mirror_neuron``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import DEFAULT_DB_NAME
from ..errors import StoreError
from .base import LIVE_STATUSES, TERMINAL_STATUSES, Store, WriteBatch
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "DEFAULT_DB_NAME",
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "WriteBatch",
    "open_store",
    "redact_url",
]

_DB_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
# Two or more letters, so that a Windows drive ("C:\\data") is not taken for a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(//)?(.*)$", re.DOTALL)
_CREDENTIALS = re.compile(r"//[^/@]*@")
_PASSWORD_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_EXPECTED = "expected memory://, sqlite:///path/to/file.db, redis://host:port/db or a directory or .db path"


def open_store(url: str | Path | None, *, data_dir: str | Path | None = None, create: bool = True) -> Store:
    """Open the store that ``url`` names; with no URL, the SQLite file in ``data_dir``.

    ``data_dir`` defaults to the per-user data directory. Raises :class:`StoreError` for
    a URL it does not understand or a location that cannot be opened. With ``create=False``
    (for readers) a SQLite store that does not exist yet is :class:`StoreMissing` and
    nothing is created on disk; a Redis server has to be reachable either way.
    """
    if url is None or (isinstance(url, str) and not url.strip()):
        from ..config import default_data_dir

        default = Path(data_dir if data_dir is not None else default_data_dir()) / DEFAULT_DB_NAME
        return SQLiteStore(default, create=create)
    if isinstance(url, Path):
        return _open_path(url, create)
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        return _open_path(Path(text), create)
    scheme, slashes, rest = match[1].lower(), match[2], match[3]
    if not slashes:
        raise StoreError(f"invalid store URL {text!r}: {_EXPECTED}")
    if scheme == "memory":
        if rest:
            raise StoreError(f"invalid store URL {text!r}: a memory store takes no location, use memory://")
        return MemoryStore()
    if scheme == "sqlite":
        return SQLiteStore(_sqlite_path(text, rest), create=create)
    if scheme in ("redis", "rediss", "unix"):
        return _open_redis(text)
    raise StoreError(f"unsupported store URL {text!r}: {_EXPECTED}")


def redact_url(url: str) -> str:
    """A store URL fit to show: ``redis://:pw@host`` → ``redis://***@host``, ``?password=`` masked too."""
    return _PASSWORD_QUERY.sub(r"\1***", _CREDENTIALS.sub("//***@", url))


def _sqlite_path(url: str, rest: str) -> Path:
    """``sqlite:///abs`` and ``sqlite:////abs`` are absolute, ``sqlite://rel`` is relative to the cwd."""
    if not rest or rest == ":memory:" or "?" in rest:
        raise StoreError(
            f"invalid SQLite store URL {url!r}: give a file path such as sqlite:///var/lib/mn/jobs.db "
            "(for a store that is not kept, use memory://)"
        )
    if rest.startswith("/"):
        return Path("/" + rest.lstrip("/"))
    return Path(rest).expanduser()


def _open_path(path: Path, create: bool) -> Store:
    """A plain path: a database file by suffix, otherwise a directory that holds one."""
    path = path.expanduser()
    if path.suffix.lower() in _DB_SUFFIXES and not path.is_dir():
        return SQLiteStore(path, create=create)
    if path.is_dir() or (not path.exists() and not path.suffix):
        return SQLiteStore(path / DEFAULT_DB_NAME, create=create)
    raise StoreError(f"invalid store location {str(path)!r}: {_EXPECTED}")


def _open_redis(url: str) -> Store:
    """A Redis store; redis-py is imported here, lazily, so that ``mn --help`` stays fast.

    ``MIRROR_NEURON_REDIS_NAMESPACE`` prefixes the keys (default ``mirror_neuron``) and
    ``MIRROR_NEURON_REDIS_EVENT_RETENTION`` (a number of events) caps each job's event log.
    """
    from ..config import env

    try:
        from .redis import RedisStore
    except ImportError as exc:  # the redis client is a dependency, but may be missing from a bare install
        raise StoreError(f"cannot open a Redis store: the redis client is not installed ({exc})") from exc
    retention = env("REDIS_EVENT_RETENTION")
    if retention is not None and not (retention.strip().isdigit() and int(retention) > 0):
        raise StoreError(
            f"MIRROR_NEURON_REDIS_EVENT_RETENTION must be a positive number of events, not {retention!r}"
        )
    return RedisStore(
        url,
        namespace=env("REDIS_NAMESPACE"),
        event_retention=int(retention) if retention is not None else None,
    )
