"""Finding what a command names: the store to read, a job by a prefix of its id, a yes to go on."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..errors import JobNotFound, MirrorNeuronError, StoreMissing
from ..store import MemoryStore, Store, open_store

#: How many candidates an ambiguous job id prefix lists.
CANDIDATES = 10


def open_existing(config: Config) -> Store:
    """The configured store for a command that does not start jobs; it is never created.

    A store named by ``--store`` or the environment that does not exist is an error
    (:class:`StoreMissing`: "no store at …"). The default store of the data directory that
    does not exist yet reads as an empty store: nothing has run here so far.
    """
    try:
        return open_store(config.store_url, create=False)
    except StoreMissing:
        if config.store_is_default:
            return MemoryStore()
        raise


def resolve_job_id(store: Store, text: str) -> str:
    """The id of the one job whose id is ``text`` or starts with it.

    An exact id always wins. Raises :class:`JobNotFound` when no id starts with ``text``,
    and an error listing the candidates when more than one does.
    """
    if not text:
        raise JobNotFound(text)
    if store.get_job(text) is not None:
        return text
    found = store.job_ids_with_prefix(text, limit=CANDIDATES + 1)
    if not found:
        raise JobNotFound(text)
    if len(found) == 1:
        return found[0]
    more = ", …" if len(found) > CANDIDATES else ""
    raise MirrorNeuronError(
        f"job id prefix {text} is ambiguous; it matches {', '.join(found[:CANDIDATES])}{more}"
    )


def confirm(question: str) -> None:
    """Ask ``question`` on a terminal (no: :class:`click.Abort`); scripts (stdin not a terminal) go on."""
    if sys.stdin is not None and sys.stdin.isatty():
        click.confirm(question, abort=True, err=True)
