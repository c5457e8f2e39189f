"""The runtime server: ``mn serve`` hosts jobs behind a REST API under ``/api/v1``.

Importing this package imports FastAPI; the CLI does so only inside ``mn serve`` and
``--server`` code paths, so ``mn --help`` stays fast.
"""

from __future__ import annotations

from .app import create_app
from .auth import check_bind, is_loopback
from .settings import ManifestLimits, ServerSettings, UploadLimits

__all__ = [
    "ManifestLimits",
    "ServerSettings",
    "UploadLimits",
    "check_bind",
    "create_app",
    "is_loopback",
]
