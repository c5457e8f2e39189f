"""Server settings: where it listens, who may call it, and every limit it enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .auth import MIN_TOKEN_LENGTH, check_token

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Bounds on an uploaded bundle archive, checked on the bytes actually extracted."""

    max_total_bytes: int = 200 * MB
    max_file_bytes: int = 50 * MB
    max_entries: int = 10_000
    max_name_length: int = 1024


@dataclass(frozen=True, slots=True)
class ManifestLimits:
    """Bounds on a submitted manifest, checked before it is normalised, validated or run.

    Validating and starting a job costs time and memory in proportion to its nodes, edges
    and seeded messages, and a client chooses those numbers: a 1e6-node manifest stalled
    the server for half a minute. Counts are checked on the decoded JSON, before anything
    is built from it.
    """

    #: Largest manifest.json (JSON POST body or file in an upload); never above ``max_body_bytes``.
    max_bytes: int = 50 * MB
    max_nodes: int = 100_000
    max_edges: int = 250_000
    #: Messages seeded at start (a list-form ``initial_inputs`` counts once per entrypoint).
    max_initial_inputs: int = 100_000


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Settings of one ``mn serve`` process (the runtime has its own :class:`Config`)."""

    host: str = "127.0.0.1"
    port: int = 4000
    #: Bearer token every request must carry; required when ``host`` is not loopback. A set
    #: token must be strong (see :func:`.auth.check_token`): construction fails otherwise.
    token: str | None = field(default=None, repr=False)
    #: Fewest characters a token may have.
    min_token_length: int = MIN_TOKEN_LENGTH
    #: Largest request body (JSON manifests, messages and zip uploads), as the original.
    max_body_bytes: int = 50 * MB
    uploads: UploadLimits = field(default_factory=UploadLimits)
    manifests: ManifestLimits = field(default_factory=ManifestLimits)
    #: Agents per ``GET /jobs/{id}/agents`` page when the client gives no ``limit``.
    agents_page: int = 1_000
    #: Events per ``GET /jobs/{id}/events`` page when the client gives no ``limit``.
    events_page: int = 10_000
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
    #: The longest one executor run of a submitted bundle may take, unless the operator set
    #: a cap of its own (``MIRROR_NEURON_MAX_RUN_SECONDS``): a ``sleep`` must not hold a
    #: pool slot for ever.
    max_run_seconds: float = 3600.0
    #: ``runtime`` hosts jobs; ``control`` hosts none and forwards submissions to runtime nodes.
    role: str = "runtime"
    #: Where the other nodes reach this one (default: ``http://<bind address>:<port>``).
    advertise: str | None = None
    #: Seconds between this node's sweeps for jobs whose owner is gone.
    sweep_interval: float = 2.0

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token, self.min_token_length)

    @property
    def max_manifest_bytes(self) -> int:
        """The manifest size cap actually enforced: no manifest can exceed the body limit anyway."""
        return min(self.manifests.max_bytes, self.max_body_bytes)
