"""``network: true`` for the bubblewrap sandbox: its own network namespace, public egress only.

Why: ``--share-net`` gave a script the host's network: the runtime's tokenless loopback
API, Redis, every private service. Now the sandbox keeps its own namespace (bwrap's
``--unshare-all``) and gets a ``tap0`` served by slirp4netns, a user-mode TCP/IP stack
that opens ordinary sockets on the host for it. As those start *on the host*, a firewall
inside the sandbox's namespace, loaded before ``tap0`` exists, decides where it may go:

* accepted: loopback, established/related traffic, DNS (udp/tcp 53) to slirp's
  forwarder ``10.0.2.3`` (no other port: slirp maps it to the host's resolver, which may
  sit on the host's loopback), the operator's ``allow`` CIDRs (never slirp's own
  ``10.0.2.0/24``), every other IPv4 address;
* rejected at once (a TCP connect gets ECONNREFUSED, other sends EPERM; nothing hangs): the
  non-public ranges in :data:`BLOCKED_RANGES` (loopback, RFC 1918, CGNAT, link-local
  with cloud metadata 169.254.169.254, multicast, ...), every address of the host and
  every subnet directly connected to it (read per run from ``/proc/net/fib_trie``:
  ``local``/``broadcast`` routes and ``scope link`` routes), the ``deny`` CIDRs;
* dropped: all IPv6, and everything inbound that is not a reply.

The sandboxed command cannot change the rules: the namespace belongs to bwrap's outer
user namespace, the command runs in a nested one with no capabilities. slirp4netns runs
with ``--disable-host-loopback`` (10.0.2.2 is not the host's 127.0.0.1) and, when the
runtime is root, ``--enable-sandbox --enable-seccomp`` (its own mount namespace, all
capabilities but ``CAP_NET_BIND_SERVICE`` dropped, dangerous syscalls blocked). It ends
when :meth:`SandboxNetwork.close` closes the exit fd, or when the runtime dies, as only
the runtime holds that fd's other end. Every failure is :class:`SandboxUnavailable`;
nothing ever falls back to the host's network.

``allow`` (operator configuration, never a bundle's) lets sandboxes reach internal
services that the rules above block, e.g. ``["10.20.0.15/32"]`` for an internal API; it
wins over every block, including the host's own addresses, so keep it narrow. ``deny``
adds ranges to block (e.g. a corporate network that uses public addresses). Both take
IPv4 CIDRs without host bits (``parse_cidrs``, ``ValueError`` otherwise).

How ``bwrap.py`` uses it (``spec.network``): bwrap never gets ``--share-net``;
:func:`network_step` is one of the runner's setup steps, run while ``--block-fd`` holds the
command, and its cleanup (:meth:`SandboxNetwork.close`) runs once the sandbox is gone;
:func:`etc_files` are the sandbox's ``resolv.conf`` and ``hosts``. A failed step kills the
sandbox before it is released, and the command itself waits on a second pipe (the
"gate"), so that a runtime killed mid-setup leaves nothing to run.

slirp4netns is the runtime's helper, not part of the job: keep it out of the job's
cgroup (``net.pid`` if the lead decides otherwise). Without root the runtime needs a
bwrap that maps its uid to 0 in the outer user namespace (bwrap does with ``--dev``) and
access to ``/dev/net/tun``; slirp4netns then runs without ``--enable-sandbox`` (root only).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterable, Mapping
from ipaddress import IPv4Network
from types import TracebackType

from ..errors import SandboxUnavailable
from .process import OwnedProcess, run_owned, wait_readable

TAP = "tap0"
DNS_ADDRESS = "10.0.2.3"
#: slirp's virtual network: 10.0.2.2 is the host's loopback, 10.0.2.3 the host's resolver
#: at *any* port. Only port 53 of 10.0.2.3 is reachable, whatever ``allow`` says.
SLIRP_NETWORK = "10.0.2.0/24"
MTU = 65520
#: Longest wait for each setup step (loading the rules, slirp4netns ready).
SETUP_TIMEOUT = 5.0
#: Longest wait for slirp4netns to exit after its exit fd closed, before SIGKILL.
CLOSE_TIMEOUT = 2.0
TABLE = "mirror_neuron_sandbox"
INSTALL_HINT = (
    "install slirp4netns and nftables (apt-get install -y slirp4netns nftables), "
    "or set network: false on the node; a sandbox never falls back to the host's network"
)
TUN_HINT = "without root, the runtime's user needs read-write access to /dev/net/tun (usually mode 0666)"
TOOL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
SLIRP_FLAGS = (
    "--configure", "--mtu", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
    "--ready-fd", "--exit-fd", "--netns-type", "--userns-path",
)  # fmt: skip
#: Never reachable from a sandbox, whatever the host's routes say (unless ``allow``-ed).
BLOCKED_RANGES = tuple(
    map(IPv4Network, (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    ))
)  # fmt: skip
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace


def parse_cidrs(values: Iterable[str | IPv4Network]) -> tuple[IPv4Network, ...]:
    """Operator CIDRs as networks; a typo must fail loudly, not widen or narrow the rules."""
    networks = []
    for value in values:
        try:
            network = ipaddress.ip_network(value)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 CIDR without host bits: {value!r} ({exc})") from None
        if not isinstance(network, IPv4Network):
            raise ValueError(f"{value!r}: sandboxes have no IPv6, only IPv4 CIDRs can be listed")
        if network.prefixlen == 0:
            raise ValueError(f"{value!r} would switch the sandbox firewall off")
        networks.append(network)
    return tuple(networks)


def host_networks(fib_trie: str) -> list[IPv4Network]:
    """The host's own addresses and directly connected subnets, from ``/proc/net/fib_trie``.

    That file lists every routing table (no ``ip`` process to start): a ``|-- address``
    leaf, then one ``/length scope TYPE`` line per route. Kept: ``LOCAL``/``BROADCAST``
    and ``link`` scope ``UNICAST`` routes. Gateway routes stay out (the public internet is
    behind one), so does any ``/0`` (a VPN's ``default dev wg0`` has ``link`` scope).
    """
    found, leaf = [], ""
    for line in fib_trie.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "|--":
            leaf = words[1]
        elif len(words) >= 3 and words[0].startswith("/") and leaf:
            length, scope, kind = words[:3]
            if kind in ("LOCAL", "BROADCAST") or (kind == "UNICAST" and scope == "link" and length != "/0"):
                with contextlib.suppress(ValueError):
                    found.append(IPv4Network(leaf + length, strict=False))
    return found


def read_host_networks() -> list[IPv4Network]:
    """The host's addresses and connected subnets right now (they may change between runs)."""
    try:
        with open("/proc/net/fib_trie") as trie:
            return host_networks(trie.read())
    except OSError as exc:
        raise SandboxUnavailable(f"cannot read the host's routes from /proc/net/fib_trie: {exc}") from exc


def blocked_networks(host: Iterable[IPv4Network], deny: Iterable[IPv4Network] = ()) -> list[IPv4Network]:
    """Everything rejected, merged: nft interval sets refuse overlapping elements."""
    return list(ipaddress.collapse_addresses([*BLOCKED_RANGES, *host, *deny]))


def firewall_ruleset(blocked: Iterable[IPv4Network], allowed: Iterable[IPv4Network] = ()) -> str:
    """The nft script for a sandbox's namespace (policy drop; see the module docstring)."""

    def ipv4_set(name: str, networks: Iterable[IPv4Network]) -> str:
        merged = ", ".join(str(n) for n in ipaddress.collapse_addresses(networks))
        elements = f"\n\t\telements = {{ {merged} }}" if merged else ""
        return f"\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags interval{elements}\n\t}}\n"

    return (
        f"table inet {TABLE} {{\n"
        + ipv4_set("blocked", blocked)
        + ipv4_set("allowed", allowed)
        + "\tchain refuse {\n"
        "\t\tmeta l4proto tcp reject with tcp reset\n"
        "\t\treject with icmp type admin-prohibited\n"
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy drop;\n"
        '\t\toif "lo" accept\n'
        "\t\tct state established,related accept\n"
        "\t\tct state invalid drop\n"
        "\t\tmeta nfproto ipv6 drop\n"
        f"\t\tip daddr {DNS_ADDRESS} meta l4proto {{ tcp, udp }} th dport 53 accept\n"
        f"\t\tip daddr {SLIRP_NETWORK} jump refuse\n"
        "\t\tip daddr @allowed accept\n"
        "\t\tip daddr @blocked jump refuse\n"
        "\t\tmeta nfproto ipv4 accept\n"
        "\t}\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        '\t\tiif "lo" accept\n'
        "\t\tct state established,related accept\n"
        "\t}\n"
        "}\n"
    )


def etc_files(hostname: str = "mirror-neuron") -> dict[str, bytes]:
    """Files a networked sandbox needs: the host's may name a loopback resolver or internal hosts."""
    return {
        "/etc/resolv.conf": f"nameserver {DNS_ADDRESS}\n".encode(),
        "/etc/hosts": (
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        ).encode(),
    }


def _tools() -> dict[str, str]:
    names = ("slirp4netns", "nft", "nsenter", "unshare")
    paths = {name: shutil.which(name, path=TOOL_ENV["PATH"]) for name in names}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise SandboxUnavailable(f"a sandbox with network: true needs {', '.join(missing)}: {INSTALL_HINT}")
    return {name: str(path) for name, path in paths.items()}


_PROBE: dict[str, tuple[bool, str]] = {}


def network_available(refresh: bool = False) -> tuple[bool, str]:
    """Whether ``network: true`` sandboxes can work here, and a sentence saying why (``mn doctor``)."""
    if "result" not in _PROBE or refresh:
        _PROBE["result"] = _probe()
    return _PROBE["result"]


def _probe() -> tuple[bool, str]:
    try:
        tools = _tools()
        usage = subprocess.run(
            [tools["slirp4netns"], "--help"], capture_output=True, timeout=10, check=False, env=TOOL_ENV
        ).stdout.decode(errors="replace")
    except (SandboxUnavailable, OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    missing = [flag for flag in SLIRP_FLAGS if flag not in usage]
    if missing:
        return False, f"slirp4netns lacks {', '.join(missing)} (tested with 1.2.0): {INSTALL_HINT}"
    return True, "slirp4netns, nft and nsenter present: networked sandboxes get user-mode public egress"


async def _tool(
    argv: list[str], what: str, pass_fds: tuple[int, ...] = (), timeout: float = SETUP_TIMEOUT
) -> bytes:
    """Run a setup tool to completion; any failure means no network, never the host's."""
    try:
        out = await run_owned(
            argv, env=TOOL_ENV, time_limit=timeout, max_output_bytes=1 << 20, grace=0.5, pass_fds=pass_fds
        )
    except OSError as exc:
        raise SandboxUnavailable(f"{what}: {exc}; {INSTALL_HINT}") from exc
    if out.returncode != 0 or out.timed_out:
        detail = (out.stderr or out.stdout).decode(errors="replace").strip()
        raise SandboxUnavailable(f"{what}: {detail or f'exit status {out.returncode}'}")
    return out.stdout


def _open_namespaces(pid: int) -> tuple[int, int]:
    """Fds of the sandbox's network namespace and of the user namespace owning it.

    The owner, not ``/proc/<pid>/ns/user``: bwrap moves its child into a nested user
    namespace while it sets up, so the pid's own namespace depends on timing.
    """
    try:
        net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot open the network namespace of sandbox process {pid}: {exc}"
        ) from exc
    own = os.stat("/proc/self/ns/net")
    if (os.fstat(net).st_dev, os.fstat(net).st_ino) == (own.st_dev, own.st_ino):
        os.close(net)  # never firewall (or tap) the host: bwrap ran with --share-net?
        raise SandboxUnavailable(f"sandbox process {pid} shares the runtime's network namespace")
    try:
        user = fcntl.ioctl(net, NS_GET_USERNS)
    except OSError as exc:
        os.close(net)
        raise SandboxUnavailable(f"cannot find the user namespace of sandbox process {pid}: {exc}") from exc
    os.set_inheritable(user, False)
    return net, user


async def _owner_mapped(pid: int, user_fd: int, timeout: float) -> None:
    """Without root, wait until bwrap has written the outer namespace's uid/gid maps.

    bwrap writes them just after reporting the pid; unmapped, ``nsenter`` cannot keep the
    capabilities nft needs. Polled: the kernel signals no event for it.
    """
    owner = os.fstat(user_fd).st_ino
    try:
        async with asyncio.timeout(timeout):
            while not _maps_written(pid, owner):  # noqa: ASYNC110 - the kernel signals no event
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise SandboxUnavailable(f"bwrap did not map the sandbox's user namespace within {timeout:g}s")


def _maps_written(pid: int, owner: int) -> bool:
    try:
        if os.stat(f"/proc/{pid}/ns/user").st_ino != owner:
            return True  # already in the nested namespace, made after the maps
        with open(f"/proc/{pid}/uid_map") as uids, open(f"/proc/{pid}/gid_map") as gids:
            return bool(uids.read().strip() and gids.read().strip())
    except OSError as exc:
        raise SandboxUnavailable(f"sandbox process {pid} is gone: {exc}") from exc


class SandboxNetwork:
    """slirp4netns and the firewall of one sandbox; ``close()`` (or ``async with``) ends them."""

    def __init__(self, ruleset: str) -> None:
        self.ruleset = ruleset
        self._proc: OwnedProcess | None = None
        self._exit_w = -1
        self._fds: list[int] = []
        self._output = bytearray()
        self._output_fd = -1
        self._closed = False

    @property
    def pid(self) -> int | None:
        """slirp4netns's pid, or None before it started."""
        return self._proc.popen.pid if self._proc else None

    @classmethod
    async def start(
        cls,
        pid: int,
        *,
        allow: Iterable[str | IPv4Network] = (),
        deny: Iterable[str | IPv4Network] = (),
        timeout: float = SETUP_TIMEOUT,
    ) -> SandboxNetwork:
        """Give the (blocked) sandbox whose first process is ``pid`` a firewalled network.

        Raises :class:`SandboxUnavailable` (tools missing, a step failing or slower than
        ``timeout``); nothing is left running then. ``ValueError`` for bad CIDRs.
        """
        allowed, denied = parse_cidrs(allow), parse_cidrs(deny)
        tools = _tools()
        ok, why = network_available()
        if not ok:
            raise SandboxUnavailable(why)
        host = read_host_networks()
        net = cls(firewall_ruleset(blocked_networks(host, denied), allowed))
        try:
            net_fd, user_fd = _open_namespaces(pid)
            net._fds += [net_fd, user_fd]
            await net._load_firewall(tools, pid, net_fd, user_fd, timeout)
            await net._start_slirp(tools, net_fd, user_fd, timeout)
        except BaseException:
            await net.close()
            raise
        net._close_fds()  # holding the namespace would keep it (and tap0) alive after bwrap
        return net

    async def _load_firewall(
        self, tools: Mapping[str, str], pid: int, net_fd: int, user_fd: int, timeout: float
    ) -> None:
        """nft inside the sandbox's namespace, before any interface but ``lo`` exists there."""
        rules = os.memfd_create("mirror-neuron-nft")
        self._fds.append(rules)
        os.write(rules, self.ruleset.encode())
        enter = [tools["nsenter"], f"--net=/proc/self/fd/{net_fd}"]
        if os.geteuid() != 0:
            await _owner_mapped(pid, user_fd, timeout)
            # Our uid is 0 in bwrap's outer namespace: nft keeps its capabilities there.
            enter += [f"--user=/proc/self/fd/{user_fd}", "--preserve-credentials"]
        argv = [*enter, "--", tools["nft"], "-f", f"/proc/self/fd/{rules}"]
        await _tool(argv, "cannot load the sandbox firewall (nft)", (net_fd, user_fd, rules), timeout)

    async def _start_slirp(self, tools: Mapping[str, str], net_fd: int, user_fd: int, timeout: float) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()  # our end is close-on-exec: no other process holds it
        self._fds.append(ready_r)
        argv = [tools["slirp4netns"], "--enable-seccomp"]
        if os.geteuid() == 0:
            # --enable-sandbox detaches its old root; where /run is no mount point of its own,
            # that unmount propagates through the shared /run/netns and deletes the host's
            # `ip netns` namespaces. A private mount namespace around it stops that.
            argv = [tools["unshare"], "--mount", "--propagation", "private", "--", *argv, "--enable-sandbox"]
        argv += [
            "--configure", f"--mtu={MTU}", "--disable-host-loopback",
            f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", f"--userns-path=/proc/self/fd/{user_fd}",
            "--netns-type=path", f"/proc/self/fd/{net_fd}", TAP,
        ]  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            # Popen blocks only for fork+exec; OwnedProcess reaps it through a pidfd.
            popen = subprocess.Popen(  # noqa: ASYNC220
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=TOOL_ENV,
                start_new_session=True,
                pass_fds=(ready_w, exit_r, net_fd, user_fd),
            )
        except OSError as exc:
            raise SandboxUnavailable(f"slirp4netns could not be started: {exc}; {INSTALL_HINT}") from exc
        finally:
            os.close(ready_w)
            os.close(exit_r)
        self._proc = OwnedProcess(popen, loop)
        assert popen.stdout is not None
        self._output_fd = popen.stdout.fileno()
        os.set_blocking(self._output_fd, False)
        loop.add_reader(self._output_fd, self._read_output)
        if await _ready(ready_r, timeout) != b"1":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.exited), CLOSE_TIMEOUT)
            self._read_output()
            detail = self._output.decode(errors="replace").strip() or "no output"
            hint = TUN_HINT if "/dev/net/tun" in detail else INSTALL_HINT
            raise SandboxUnavailable(f"slirp4netns could not give the sandbox a network: {detail}; {hint}")

    def _read_output(self) -> None:
        """Keep the tail of slirp4netns's output for errors; a full pipe would stall it."""
        while self._output_fd >= 0:
            try:
                chunk = os.read(self._output_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                asyncio.get_running_loop().remove_reader(self._output_fd)
                self._output_fd = -1
                return
            self._output += chunk
            del self._output[:-4096]

    async def close(self) -> None:
        """End slirp4netns (exit fd, then SIGKILL after :data:`CLOSE_TIMEOUT`) and reap it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        try:
            if self._proc is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._proc.exited), CLOSE_TIMEOUT)
                except TimeoutError:
                    self._proc.signal_group(signal.SIGKILL)
                    await asyncio.wait_for(asyncio.shield(self._proc.exited), CLOSE_TIMEOUT)
        finally:
            if self._output_fd >= 0:
                asyncio.get_running_loop().remove_reader(self._output_fd)
                self._output_fd = -1
            if self._proc is not None and self._proc.popen.stdout is not None:
                self._proc.popen.stdout.close()
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    async def __aenter__(self) -> SandboxNetwork:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def network_step(
    *, allow: Iterable[str | IPv4Network] = (), deny: Iterable[str | IPv4Network] = ()
) -> Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]:
    """A bwrap setup step (pid → cleanup) attaching the network; bad CIDRs fail here, early."""
    allowed, denied = parse_cidrs(allow), parse_cidrs(deny)

    async def attach(pid: int) -> Callable[[], Awaitable[None]]:
        return (await SandboxNetwork.start(pid, allow=allowed, deny=denied)).close

    return attach


async def _ready(fd: int, timeout: float) -> bytes:
    """slirp4netns writes ``1`` to its ready fd once ``tap0`` is configured; EOF means it died."""
    if not await wait_readable(fd, timeout):
        raise SandboxUnavailable(f"slirp4netns did not configure the sandbox's network within {timeout:g}s")
    return os.read(fd, 1)


__all__ = [
    "BLOCKED_RANGES",
    "DNS_ADDRESS",
    "SandboxNetwork",
    "blocked_networks",
    "etc_files",
    "firewall_ruleset",
    "host_networks",
    "network_available",
    "network_step",
    "parse_cidrs",
    "read_host_networks",
]
