"""Clean-up tied to this process: run at its exit, and never in a child forked from it.

A forked child (``mn run --no-wait`` forks, and so may a user's program) inherits the exit
handlers of its parent; without the check it would remove the parent's run directory,
/etc copy or cgroups while the parent still uses them. A leaf module (stdlib only).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import Any


def at_exit(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` when this process exits (not when a child forked from it does)."""
    atexit.register(_if_same_process, os.getpid(), fn, args)


def _if_same_process(pid: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if os.getpid() == pid:
        fn(*args)


__all__ = ["at_exit"]
