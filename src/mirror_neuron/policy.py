"""What a bundle may ask of the host that runs it: limits and the execution policy.

Two audiences. ``mn run`` runs *your own* bundle: it may run trusted code unsandboxed, use
the network and copy variables from your environment. ``mn serve`` runs bundles that
*clients submitted*: sandbox only, no network, no environment, unless the operator allows
each one (:meth:`ExecutionPolicy.submitted`). Either way a bundle's ``limits`` may only
lower the runtime's caps, never lift them.

A leaf module (it imports nothing of the package) so that both the configuration and
the execution layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandboxed run; ``None`` means unlimited.

    ``memory_mb`` and ``processes`` hold for the sandbox *as a whole* where the runtime can
    use cgroups (a memory and a pids controller), and per process (``RLIMIT_AS``,
    ``RLIMIT_NPROC``) otherwise. ``tmp_mb`` sizes ``/tmp`` and ``/dev/shm``, ``workdir_mb``
    sizes ``/sandbox/job`` (both memory-backed, so they count towards ``memory_mb``).
    """

    cpu_seconds: int | None = None
    memory_mb: int | None = None
    file_size_mb: int | None = None
    open_files: int | None = None
    processes: int | None = None
    tmp_mb: int | None = None
    workdir_mb: int | None = None

    def ulimit_command(self, *, nproc: bool = True) -> str:
        """A ``ulimit`` line for bash setting soft and hard limits (they cannot be raised again).

        ``nproc=False`` leaves ``RLIMIT_NPROC`` alone: it counts every process of the
        sandbox user on the host, so where a pids cgroup bounds each sandbox it would only
        let one job starve another.
        """
        parts: list[str] = []
        for flag, value, scale in (
            ("-t", self.cpu_seconds, 1),
            ("-v", self.memory_mb, 1024),  # KiB
            ("-f", self.file_size_mb, 1024),  # 1 KiB blocks in bash
            ("-n", self.open_files, 1),
            ("-u", self.processes if nproc else None, 1),
        ):
            if value is not None:
                parts += [flag, str(value * scale)]
        return "ulimit -S -H " + " ".join(parts) if parts else ""

    def lowered(self, requested: Any) -> Limits:
        """These caps, lowered where ``requested`` (a bundle's ``limits``) asks for less.

        Anything else is ignored: ``null``, a bigger value, a value that is not a positive
        integer. :func:`limit_problems` reports those to the bundle's author.
        """
        if not isinstance(requested, Mapping):
            return self
        changes: dict[str, int] = {}
        for key, name in LIMIT_KEYS.items():
            value = positive_int(requested.get(key))
            cap = getattr(self, name)
            if value is not None and (cap is None or value < cap):
                changes[name] = min(value, changes.get(name, value))
        return replace(self, **changes) if changes else self


#: ``limits`` keys a bundle may use, and the field each sets (``address_space_mb`` is the old name).
LIMIT_KEYS = {
    "cpu_seconds": "cpu_seconds",
    "memory_mb": "memory_mb",
    "address_space_mb": "memory_mb",
    "file_size_mb": "file_size_mb",
    "open_files": "open_files",
    "processes": "processes",
    "tmp_mb": "tmp_mb",
    "workdir_mb": "workdir_mb",
}

#: The sandbox's caps unless the operator sets others (``MIRROR_NEURON_SANDBOX_LIMITS``):
#: large enough for ordinary scripts, small enough that a fork bomb or a memory hog hits
#: a limit instead of the host.
SANDBOX_LIMITS = Limits(
    cpu_seconds=3600,
    memory_mb=4096,
    file_size_mb=1024,
    open_files=1024,
    processes=256,
    tmp_mb=512,
    workdir_mb=1024,
)
#: Ceiling on an executor's captured stdout and stderr (``max_output_bytes`` may only lower it).
MAX_OUTPUT_BYTES = 16 * MB


def limit_problems(requested: Any, caps: Limits) -> list[str]:
    """What is wrong with a bundle's ``limits`` against ``caps`` (empty when it is fine)."""
    if requested is None:
        return []
    if not isinstance(requested, Mapping):
        return ["limits must be an object"]
    problems = []
    for key, value in requested.items():
        name = LIMIT_KEYS.get(key)
        if name is None:
            problems.append(
                f"limits.{key} is not a known limit (expected one of {', '.join(sorted(LIMIT_KEYS))})"
            )
            continue
        cap = getattr(caps, name)
        if value is None:
            problems.append(
                f"limits.{key} is null, which would lift the limit; bundles may only lower limits"
                + (f" (this runtime's cap is {cap})" if cap is not None else "")
            )
        elif positive_int(value) is None:
            problems.append(f"limits.{key} must be a positive integer, got {value!r}")
        elif cap is not None and value > cap:
            problems.append(
                f"limits.{key} {value} is above this runtime's cap of {cap}; it may only lower it"
            )
    return problems


def parse_limits_text(text: str | None, base: Limits = SANDBOX_LIMITS) -> Limits:
    """``"memory_mb=2048,processes=128"`` (the operator's caps) over ``base``.

    Unlike a bundle, the operator may raise a cap or lift it (``memory_mb=none``).

    Raises:
        ValueError: for an unknown key or a value that is neither a positive integer nor ``none``.
    """
    changes: dict[str, int | None] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        key, sep, value = (part.strip() for part in entry.partition("="))
        name = LIMIT_KEYS.get(key)
        if not sep or name is None:
            raise ValueError(
                f"unknown sandbox limit {entry.strip()!r} (expected NAME=VALUE with NAME one of "
                f"{', '.join(sorted(LIMIT_KEYS))})"
            )
        if value.lower() in ("none", "unlimited"):
            changes[name] = None
        elif value.isdigit() and int(value) > 0:
            changes[name] = int(value)
        else:
            raise ValueError(f"sandbox limit {key} must be a positive integer or none, got {value!r}")
    return replace(base, **changes) if changes else base


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    """What bundles run by one runtime may ask of its host.

    The default trusts the bundle (``mn run``, the Python API: you run your own code);
    :meth:`submitted` is what ``mn serve`` uses for bundles that clients send it.
    """

    #: ``runner: "host_local"``: run a command as a plain child of the runtime, no isolation.
    allow_host_local: bool = True
    #: ``runner: "openshell"``: hand a command to the OpenShell CLI.
    allow_openshell: bool = True
    #: ``network: true``: a sandbox with its own user-mode network (never the host's).
    allow_network: bool = True
    #: Variables ``pass_env`` may copy from the runtime's environment; ``None`` means any.
    pass_env: frozenset[str] | None = None
    #: The sandbox's caps; a bundle's ``limits`` may only lower them.
    limits: Limits = SANDBOX_LIMITS
    #: The most output captured per stream and run; ``max_output_bytes`` may only lower it.
    max_output_bytes: int = MAX_OUTPUT_BYTES
    #: The longest one run may take (wall clock; ``timeout_seconds`` may only lower it).
    #: ``None``: no cap beyond the node's own. ``cpu_seconds`` does not stop a ``sleep``.
    max_run_seconds: float | None = None
    #: The OpenShell CLI (an operator setting, never a bundle's: ``sandbox_cli`` is refused).
    openshell_bin: str | None = None
    #: IPv4 CIDRs a networked sandbox may reach although they are private or this host's
    #: (an internal API, say), and public CIDRs it may not: the operator's, never a bundle's.
    network_allow: tuple[str, ...] = ()
    network_deny: tuple[str, ...] = ()

    @classmethod
    def submitted(
        cls,
        *,
        allow_host_local: bool = False,
        allow_openshell: bool = False,
        allow_network: bool = False,
        pass_env: Iterable[str] = (),
        **others: Any,
    ) -> ExecutionPolicy:
        """For bundles from clients: sandbox only, no network, no variables unless allowed."""
        return cls(
            allow_host_local=allow_host_local,
            allow_openshell=allow_openshell,
            allow_network=allow_network,
            pass_env=frozenset(pass_env),
            **others,
        )

    @property
    def trusts_host(self) -> bool:
        """Whether bundles may already run anything on the host (so host-level keys add nothing)."""
        return self.allow_host_local

    def passes(self, name: str) -> bool:
        """Whether ``pass_env`` may copy the variable ``name``."""
        return self.pass_env is None or name in self.pass_env

    def with_(self, **changes: Any) -> ExecutionPolicy:
        return replace(self, **changes)


def positive_int(value: Any) -> int | None:
    """``value`` as an int if it is a whole positive number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value > 0 and int(value) == value else None


__all__ = [
    "LIMIT_KEYS",
    "MAX_OUTPUT_BYTES",
    "SANDBOX_LIMITS",
    "ExecutionPolicy",
    "Limits",
    "limit_problems",
    "parse_limits_text",
    "positive_int",
]
