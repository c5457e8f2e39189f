"""Finding what a command names: the store to read, a job by a prefix of its id, a yes to go on."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..errors import StoreMissing
from ..store import MemoryStore, Store, open_store
from ..store.base import resolve_job_id as resolve_job_id  # commands name it here


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


def confirm(question: str) -> None:
    """Ask ``question`` on a terminal (no: :class:`click.Abort`); scripts (stdin not a terminal) go on."""
    if sys.stdin is not None and sys.stdin.isatty():
        click.confirm(question, abort=True, err=True)
