"""The runtime server: ``mn serve`` hosts jobs behind a REST API under ``/api/v1``.

The names below are imported on first use: :mod:`.client` (``mn run --server``) must not
pay for FastAPI, pydantic and uvicorn, which only the server needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .auth import check_bind, is_loopback
    from .settings import ManifestLimits, ServerSettings, UploadLimits

#: Exported name → the submodule defining it.
_HOMES = {
    "create_app": ".app",
    "check_bind": ".auth",
    "is_loopback": ".auth",
    "ManifestLimits": ".settings",
    "ServerSettings": ".settings",
    "UploadLimits": ".settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # later lookups do not come here
    return value


__all__ = [
    "ManifestLimits",
    "ServerSettings",
    "UploadLimits",
    "check_bind",
    "create_app",
    "is_loopback",
]
