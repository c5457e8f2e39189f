"""Server settings: where it listens, who may call it, and every limit it enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Bounds on an uploaded bundle archive, checked on the bytes actually extracted."""

    max_total_bytes: int = 200 * MB
    max_file_bytes: int = 50 * MB
    max_entries: int = 10_000
    max_name_length: int = 1024


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Settings of one ``mn serve`` process (the runtime has its own :class:`Config`)."""

    host: str = "127.0.0.1"
    port: int = 4000
    #: Bearer token every request must carry; required when ``host`` is not loopback.
    token: str | None = field(default=None, repr=False)
    #: Largest request body (JSON manifests, messages and zip uploads), as the original.
    max_body_bytes: int = 50 * MB
    uploads: UploadLimits = field(default_factory=UploadLimits)
    #: Where uploaded bundles are unpacked (default: a new private temporary directory).
    upload_dir: Path | None = None
    #: Seconds between comment lines on an idle event stream (keeps proxies from closing it).
    heartbeat: float = 15.0
    #: Longest a single ``/wait`` call holds its connection; clients call again.
    max_wait: float = 300.0
    #: Run submitted executors outside the sandbox when a bundle asks (``runner: host_local``).
    #: Off by default: whoever can submit a bundle could otherwise run anything on this host.
    allow_host_local: bool = False
    #: Hand submitted executors to the OpenShell CLI (``runner: openshell``); off by default.
    allow_openshell: bool = False
    #: Give submitted sandboxes a network of their own (``network: true``); off by default.
    #: Even then a sandbox never reaches this host's loopback or private addresses.
    allow_network: bool = False
    #: Variables of the server's environment that bundles may copy with ``pass_env``.
    pass_env: tuple[str, ...] = ()
