"""``network: true``: the sandbox's own namespace with slirp4netns, never the host's services.

Real bwrap, slirp4netns and nft, started the way the runner starts them: bwrap blocked on
``--block-fd`` until :class:`SandboxNetwork` is set up for the pid from ``--info-fd``. A
network namespace made here, reached through a veth pair and a route, stands in for the
public internet (no test needs the real one). Root only, as CI runs: the sandbox runs as
uid 65534 and the test namespace needs ``ip netns``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.execution import sandbox_available
from mirror_neuron.execution.errors import SandboxUnavailable
from mirror_neuron.execution.runners import netns
from mirror_neuron.execution.runners.netns import SandboxNetwork, etc_files, network_available, network_step

from .conftest import alive, run_config, write

PRELUDE = r"""
import errno, fcntl, json, socket, struct, sys

def tcp(host, port):
    s = socket.socket()
    s.settimeout(10)  # a hang shows up as "timeout": blocked destinations must fail at once
    try:
        s.connect((host, port))
        return "ok:" + s.recv(16).decode()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()

def udp(host, port, data=b"x", link=None):
    s = socket.socket(socket.AF_INET6 if link else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect((host, port, 0, socket.if_nametoindex(link)) if link else (host, port))
        s.send(data)
        return "reply:" + s.recv(512).hex()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()

def interfaces():
    return sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])

def address(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()))  # SIOCGIFADDR
    return socket.inet_ntoa(packed[20:24])

def default_route():
    for line in open("/proc/net/route").readlines()[1:]:
        iface, dest, gateway = line.split()[:3]
        if dest == "00000000":
            return iface, socket.inet_ntoa(struct.pack("<I", int(gateway, 16)))
    return None

def dns_query(server):
    query = bytes.fromhex("4d4e01000001000000000000") + b"\x09localhost\x00\x00\x01\x00\x01"
    got = udp(server, 53, query)
    return got.startswith("reply:4d4e") or got  # our transaction id echoed: a real DNS answer
"""
# The sandbox /etc the runner builds (plus the network files this module provides).
NSSWITCH = b"passwd: files\ngroup: files\nhosts: files dns\n"


# --- fixtures: tools, a stand-in internet, servers ----------------------------------------


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("networked sandbox tests need root (the CI runs as root)")
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"networked sandbox tests need bubblewrap: {why}")
    ok, why = network_available(refresh=True)
    if not ok:
        pytest.fail(f"networked sandbox tests need slirp4netns, nft and nsenter: {why}")
    if shutil.which("ip") is None:
        pytest.fail("networked sandbox tests need ip (apt-get install -y iproute2)")


@dataclass
class Internet:
    """A namespace behind a veth pair; ``far`` is routed through it, not a connected subnet."""

    name: str
    far: str  # a public-looking /32 inside the namespace
    host_public: str  # a public-looking /32 the test gives the host itself


@pytest.fixture(scope="module")
def internet(tools: None) -> Iterator[Internet]:
    n = os.getpid() % 250
    name, host_if, ns_if = f"mn-net-{os.getpid()}", f"mnh{os.getpid()}"[:15], f"mnn{os.getpid()}"[:15]
    transfer, peer = f"198.18.{n}.1/30", f"198.18.{n}.2"
    # Both in TEST-NET-2 (documentation addresses): the host address must hide no real service.
    net = Internet(name=name, far=f"198.51.100.{10 + n % 100}", host_public=f"198.51.100.{130 + n % 100}")
    try:
        sh("ip", "netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"ip netns is not permitted here: {exc.stderr.strip()}")
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        sh("ip", "addr", "add", transfer, "dev", host_if)
        sh("ip", "addr", "add", f"{net.host_public}/32", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", name, "addr", "add", f"{peer}/30", "dev", ns_if)
        sh("ip", "-n", name, "addr", "add", f"{net.far}/32", "dev", "lo")
        sh("ip", "-n", name, "link", "set", ns_if, "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", transfer.split("/")[0])
        sh("ip", "route", "replace", f"{net.far}/32", "via", peer, "dev", host_if)
        yield net
    finally:
        subprocess.run(["ip", "route", "del", f"{net.far}/32"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)  # takes the veth pair


class Server:
    """A TCP server answering ``hello`` to every connection, in a thread of the test."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"hello")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def loopback_server(tools: None) -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture(scope="module")
def any_address_server(tools: None) -> Iterator[Server]:
    server = Server("0.0.0.0")
    yield server
    server.close()


@pytest.fixture(scope="module")
def far_server(internet: Internet) -> Iterator[tuple[str, int]]:
    """A server in the stand-in internet, at an address that is not one of the host's subnets."""
    code = (
        "import socket,sys\ns=socket.create_server((sys.argv[1],0))\nprint(s.getsockname()[1],flush=True)\n"
        "while True:\n c,_=s.accept()\n c.sendall(b'hello')\n c.close()\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", internet.name, sys.executable, "-c", code, internet.far],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield internet.far, port
    proc.kill()
    proc.wait()
    proc.stdout.close()


def host_connect(host: str, port: int) -> str:
    """The same probe from the host: proves the server is up, so a refusal is the sandbox's."""
    with socket.create_connection((host, port), timeout=5) as s:
        return "ok:" + s.recv(16).decode()


def host_addresses() -> list[str]:
    """Every IPv4 address of the host, read independently of the module under test."""
    found = []
    for link in json.loads(sh("ip", "-j", "-4", "addr")):
        found += [info["local"] for info in link.get("addr_info", []) if "local" in info]
    return found


# --- the runner's sequence: bwrap blocked, network set up, then unblocked ------------------


def bwrap_argv(script: str, args: list[str], data: dict[str, int], block: int, info: int) -> list[str]:
    """Close to the runner's own: new namespaces incl. the network, uid 65534, no capabilities."""
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--uid", "65534", "--gid"]
    argv += [
        "65534",
        "--hostname",
        "mirror-neuron",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64"):
        link = Path("/", top)
        if link.is_symlink():
            argv += ["--symlink", os.readlink(link), str(link)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path, fd in data.items():
        argv += ["--ro-bind-data", str(fd), path]
    argv += ["--remount-ro", "/", "--clearenv", "--block-fd", str(block), "--info-fd", str(info)]
    return [*argv, "--", "/usr/bin/python3", "-I", "-S", "-c", PRELUDE + script, *args]


def data_fd(content: bytes) -> int:
    fd = os.memfd_create("sandbox-file", 0)
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class Started:
    bwrap: subprocess.Popen[bytes]
    child_pid: int
    block_w: int
    released: bool = False

    def release(self) -> None:
        os.write(self.block_w, b"1")
        self.released = True

    async def output(self) -> Any:
        out, err = await asyncio.to_thread(self.bwrap.communicate, timeout=60)
        assert self.bwrap.returncode == 0, err.decode()
        return json.loads(out)

    def discard(self) -> None:
        if not self.released:  # kill before the block fd closes: at EOF bwrap runs the command
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child_pid, signal.SIGKILL)  # its PID namespace's init: takes all with it
        if self.bwrap.poll() is None:
            self.bwrap.kill()
            self.bwrap.wait()
        os.close(self.block_w)


async def start_blocked(script: str, *args: str) -> Started:
    """bwrap started as the runner starts it, held at ``--block-fd``; its child's pid read."""
    block_r, block_w = os.pipe()
    info_r, info_w = os.pipe()
    files = {"/etc/nsswitch.conf": NSSWITCH, **etc_files()}
    data = {path: data_fd(content) for path, content in files.items()}
    try:
        bwrap = subprocess.Popen(  # noqa: ASYNC220 - fork+exec only
            bwrap_argv(script, list(args), data, block_r, info_w),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(block_r, info_w, *data.values()),
            user=65534,
            group=65534,
            extra_groups=[],
        )
    finally:
        for fd in (block_r, info_w, *data.values()):
            os.close(fd)
    try:
        info = await asyncio.to_thread(read_all, info_r)
    finally:
        os.close(info_r)
    return Started(bwrap, int(json.loads(info)["child-pid"]), block_w)


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


async def run_networked(
    script: str, *args: str, prepare: Callable[[int], None] | None = None, **policy: Any
) -> Any:
    """Run ``script`` in a networked sandbox and return what it printed (JSON)."""
    started = await start_blocked(script, *args)
    try:
        async with asyncio.timeout(90), await SandboxNetwork.start(started.child_pid, **policy):
            if prepare is not None:
                prepare(started.child_pid)
            started.release()
            return await started.output()
    finally:
        started.discard()


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def pid_exited(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit (a pidfd becomes readable), at most ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


# --- the tests ----------------------------------------------------------------------------


async def test_sandbox_has_its_own_tap0_with_slirp_address_and_default_route(tools: None) -> None:
    got = await run_networked(
        "print(json.dumps({'ifs': interfaces(), 'tap0': address('tap0'), 'route': default_route()}))"
    )
    assert got["ifs"] == ["lo", "tap0"]  # not the host's eth0: a namespace of its own
    assert got["tap0"] == "10.0.2.100"
    assert got["route"] == ["tap0", "10.0.2.2"]


async def test_host_loopback_services_are_unreachable(loopback_server: Server) -> None:
    port = loopback_server.port
    assert host_connect("127.0.0.1", port) == "ok:hello"
    got = await run_networked(
        "p = int(sys.argv[1]); print(json.dumps([tcp('127.0.0.1', p), tcp('10.0.2.2', p)]))", str(port)
    )
    # The sandbox's 127.0.0.1 is its own; 10.0.2.2 (slirp's door to the host) is refused at once.
    assert got == ["ECONNREFUSED", "ECONNREFUSED"]


async def test_every_host_address_is_unreachable(any_address_server: Server, internet: Internet) -> None:
    port = any_address_server.port
    addresses = [a for a in host_addresses() if not a.startswith("127.")]
    assert internet.host_public in addresses  # a public-looking address, blocked only as the host's own
    for address in addresses:
        assert host_connect(address, port) == "ok:hello"
    got = await run_networked(
        "p = int(sys.argv[1]); print(json.dumps({a: tcp(a, p) for a in sys.argv[2:]}))", str(port), *addresses
    )
    assert got == dict.fromkeys(addresses, "ECONNREFUSED")


async def test_private_ranges_and_cloud_metadata_are_rejected_fast(tools: None) -> None:
    targets = ["169.254.169.254", "10.255.255.53", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1"]
    script = (
        "print(json.dumps({'tcp': {h: tcp(h, 80) for h in sys.argv[1:]},"
        " 'udp': [udp('169.254.169.254', 80), udp('10.0.2.3', 5353), udp('10.0.2.2', 53)]}))"
    )
    got = await run_networked(script, *targets)
    assert got["tcp"] == dict.fromkeys(targets, "ECONNREFUSED")  # a reset, not a timeout
    assert got["udp"] == ["EPERM"] * 3  # refused on send: only DNS to 10.0.2.3:53 passes


def give_ipv6(pid: int) -> None:
    """As if slirp4netns ran with --enable-ipv6: a usable address and a default route on tap0."""
    enter = ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-6"]
    sh(*enter, "addr", "add", "fd00:6::100/64", "dev", "tap0", "nodad")
    sh(*enter, "route", "add", "default", "via", "fd00:6::2", "dev", "tap0")


async def test_ipv6_is_dropped(tools: None) -> None:
    script = "print(json.dumps([udp('2001:db8::1', 53, link='tap0'), udp('fd00:6::2', 53, link='tap0')]))"
    got = await run_networked(script, prepare=give_ipv6)
    assert got == ["EPERM", "EPERM"]  # without the rule the datagrams would leave (and time out)


async def test_public_addresses_are_reachable(far_server: tuple[str, int]) -> None:
    host, port = far_server
    assert not any(IPv4Network(host).subnet_of(n) for n in netns.BLOCKED_RANGES)
    got = await run_networked("print(json.dumps(tcp(sys.argv[1], int(sys.argv[2]))))", host, str(port))
    assert got == "ok:hello"  # the network works: the refusals above are the firewall's


async def test_operator_allow_and_deny_lists(
    any_address_server: Server, far_server: tuple[str, int], internet: Internet
) -> None:
    far, far_port = far_server
    script = "print(json.dumps([tcp(sys.argv[1], int(sys.argv[2])), tcp(sys.argv[3], int(sys.argv[4]))]))"
    args = (internet.host_public, str(any_address_server.port), far, str(far_port))
    got = await run_networked(script, *args, allow=[f"{internet.host_public}/32"], deny=[f"{far}/32"])
    assert got == ["ok:hello", "ECONNREFUSED"]  # allow opens exactly the listed host address
    got = await run_networked(script, *args)
    assert got == ["ECONNREFUSED", "ok:hello"]


async def test_allow_never_opens_slirps_own_addresses(loopback_server: Server) -> None:
    script = (
        "print(json.dumps([udp('10.0.2.3', 5353), udp('10.0.2.2', 53), tcp('10.0.2.2', int(sys.argv[1])),"
        " tcp('10.0.2.3', int(sys.argv[1]))]))"
    )
    got = await run_networked(script, str(loopback_server.port), allow=["10.0.0.0/8"])
    # 10.0.2.3 at another port would be the host's resolver address at that port.
    assert got == ["EPERM", "EPERM", "ECONNREFUSED", "ECONNREFUSED"]


async def test_dns_goes_to_slirps_forwarder(tools: None) -> None:
    script = (
        "print(json.dumps({'resolv': open('/etc/resolv.conf').read(),"
        " 'local': socket.gethostbyname('localhost'),"
        " 'slirp': dns_query('10.0.2.3'), 'direct': dns_query(sys.argv[1])}))"
    )
    upstream = host_nameserver()
    got = await run_networked(script, upstream)
    assert got["resolv"] == "nameserver 10.0.2.3\n"
    assert got["local"] == "127.0.0.1"  # from the sandbox's own /etc/hosts
    if ":" not in upstream and IPv4Network(upstream).is_loopback:
        assert got["direct"] == "ECONNREFUSED"  # the sandbox's own loopback, not the host's
    elif ":" not in upstream and not IPv4Network(upstream).is_global:
        assert got["direct"] == "EPERM"  # the host's resolver only through slirp
    # Forwarded to the host's resolver (an answer) whenever that one answers the host at all.
    if await asyncio.to_thread(host_dns_answers, upstream):
        assert got["slirp"] is True
    else:
        assert got["slirp"] == "timeout"


def host_nameserver() -> str:
    lines = Path("/etc/resolv.conf").read_text().splitlines()
    return next(line.split()[1] for line in lines if line.startswith("nameserver"))


def host_dns_answers(server: str) -> bool:
    query = bytes.fromhex("4d4e01000001000000000000") + b"\x09localhost\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        try:
            s.sendto(query, (server, 53))
            return s.recv(512)[:2] == b"\x4d\x4e"
        except OSError:
            return False


async def test_the_hosts_ip_netns_namespaces_survive(internet: Internet) -> None:
    # slirp4netns --enable-sandbox unmounts its old root; unless it runs in a private mount
    # namespace that unmount can propagate through /run/netns and delete these.
    assert await run_networked("print(json.dumps(interfaces()))") == ["lo", "tap0"]
    assert sh("ip", "netns", "exec", internet.name, "cat", "/proc/net/dev").count(":") >= 2


async def test_firewall_is_loaded_before_tap0_exists(tools: None, monkeypatch: pytest.MonkeyPatch) -> None:
    started = await start_blocked("print(json.dumps(interfaces()))")
    tap_at_nft: list[bool] = []
    real_tool = netns._tool

    async def spy(argv: list[str], *args: Any, **kwargs: Any) -> bytes:
        if any(Path(a).name == "nft" for a in argv):
            tap_at_nft.append(netns_has_tap(started.child_pid))
        return await real_tool(argv, *args, **kwargs)

    monkeypatch.setattr(netns, "_tool", spy)
    try:
        async with await SandboxNetwork.start(started.child_pid):
            assert tap_at_nft == [False]  # never a moment with a network and without the rules
            assert netns_has_tap(started.child_pid)
            started.release()
            assert await started.output() == ["lo", "tap0"]
    finally:
        started.discard()


async def test_failed_firewall_means_no_network_at_all(tools: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        netns, "firewall_ruleset", lambda *a, **k: "table inet broken { chain x { nonsense } }"
    )
    spawned: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(argv: list[str], *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        spawned.append(list(argv))
        return real_popen(argv, *args, **kwargs)

    started = await start_blocked("print(json.dumps(interfaces()))")
    monkeypatch.setattr(subprocess, "Popen", spy)
    try:
        with pytest.raises(SandboxUnavailable, match="nft"):
            await SandboxNetwork.start(started.child_pid)
        assert not any("slirp4netns" in " ".join(argv) for argv in spawned)  # rules come first
        assert any("nft" in " ".join(argv) for argv in spawned)
        started.release()
        assert await started.output() == ["lo"]
    finally:
        started.discard()


def netns_has_tap(pid: int) -> bool:
    links = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "link"], capture_output=True, check=True
    ).stdout
    return any(link["ifname"] == "tap0" for link in json.loads(links))


async def test_close_ends_and_reaps_slirp4netns(tools: None) -> None:
    started = await start_blocked("print(json.dumps(interfaces()))")
    try:
        net = await SandboxNetwork.start(started.child_pid)
        assert net.pid is not None and alive(net.pid)
        assert netns_has_tap(started.child_pid)
        await net.close()
        await net.close()  # idempotent
        assert reaped(net.pid)  # gone and already reaped: no zombie left
        started.release()
        assert await started.output() == ["lo"]  # tap0 went with slirp4netns
    finally:
        started.discard()


async def test_network_step_fits_the_runners_setup_hook(tools: None) -> None:
    with pytest.raises(ValueError):
        network_step(allow=["10.0.0.1/8"])  # a typo fails when the step is made, not per run
    started = await start_blocked("print(json.dumps(interfaces()))")
    try:
        cleanup = await network_step(allow=["198.51.100.1/32"])(started.child_pid)
        assert netns_has_tap(started.child_pid)
        await cleanup()
        assert not netns_has_tap(started.child_pid)  # slirp4netns ended, its tap0 with it
        started.release()
        assert await started.output() == ["lo"]
    finally:
        started.discard()


RUNTIME = """
import asyncio, json, os, subprocess, sys
sys.path[:0] = json.loads(sys.argv[1])
from execution.test_sandbox_network import start_blocked
from mirror_neuron.execution.runners.netns import SandboxNetwork

async def main():
    started = await start_blocked("print(json.dumps(interfaces()))")
    net = await SandboxNetwork.start(started.child_pid)
    print(json.dumps([net.pid, started.bwrap.pid, started.child_pid]), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_slirp4netns_ends_when_the_runtime_is_killed(tools: None) -> None:
    paths = json.dumps([str(Path(__file__).parents[1]), *sys.path])
    runtime = subprocess.Popen([sys.executable, "-c", RUNTIME, paths], stdout=subprocess.PIPE)  # noqa: ASYNC220
    try:
        assert runtime.stdout is not None
        slirp_pid, bwrap_pid, sandbox_pid = json.loads(await asyncio.to_thread(runtime.stdout.readline))
        assert alive(slirp_pid)
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        # Only the runtime held the exit fd's other end; bwrap has --die-with-parent. (Its
        # blocked child has not: at EOF on --block-fd it runs the command, here a short one.)
        assert await asyncio.to_thread(pid_exited, slirp_pid, 10)
        assert await asyncio.to_thread(pid_exited, bwrap_pid, 10)
        assert await asyncio.to_thread(pid_exited, sandbox_pid, 10)
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()
        if runtime.stdout is not None:
            runtime.stdout.close()


def gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_missing_slirp4netns_is_sandbox_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    real = netns.shutil.which
    monkeypatch.setattr(netns.shutil, "which", lambda n, **k: None if n == "slirp4netns" else real(n, **k))
    with pytest.raises(SandboxUnavailable, match=r"slirp4netns.*apt-get install -y slirp4netns"):
        await SandboxNetwork.start(gone_pid())


async def test_gone_sandbox_is_sandbox_unavailable(tools: None) -> None:
    with pytest.raises(SandboxUnavailable, match="cannot open the network namespace"):
        await SandboxNetwork.start(gone_pid())


GUARD = """
import asyncio, json, os, sys
sys.path[:0] = json.loads(sys.argv[1])
from mirror_neuron.execution.runners.netns import SandboxNetwork
try:
    asyncio.run(SandboxNetwork.start(os.getpid()))  # as if bwrap still ran with --share-net
    print("started")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


async def test_the_runtimes_own_namespace_is_never_touched(tools: None) -> None:
    # Run in a throwaway namespace: were the guard gone, the rules and tap0 would land there.
    out = await asyncio.to_thread(sh, "unshare", "--net", sys.executable, "-c", GUARD, json.dumps(sys.path))
    assert out.startswith("SandboxUnavailable") and "shares the runtime's network namespace" in out


# --- pure parts ---------------------------------------------------------------------------


# A real /proc/net/fib_trie: eth0 192.0.2.2/24 plus 203.0.113.5/32, default via 192.0.2.1,
# 198.51.100.77 via a gateway, a VPN-style "default dev eth1" (table 51820, scope link) and
# a link route in table 52. (Its Local: section repeats Main: when no rules split them.)
FIB_TRIE = """\
Id 52:
  |-- 198.18.7.0
     /24 link UNICAST
Id 51820:
  |-- 0.0.0.0
     /0 link UNICAST
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.0.0/4 2 0 1
        +-- 192.0.2.0/24 2 0 2
           +-- 192.0.2.0/30 2 0 2
              |-- 192.0.2.0
                 /24 link UNICAST
              |-- 192.0.2.2
                 /32 host LOCAL
           |-- 192.0.2.255
              /32 link BROADCAST
        |-- 198.51.100.77
           /32 universe UNICAST
        |-- 203.0.113.5
           /32 host LOCAL
"""


def test_host_networks_are_addresses_and_connected_subnets_only() -> None:
    found = {str(n) for n in netns.host_networks(FIB_TRIE)}
    assert found == {
        "198.18.7.0/24",  # scope link in another table
        "127.0.0.0/8",
        "127.0.0.1/32",
        "127.255.255.255/32",
        "192.0.2.0/24",
        "192.0.2.2/32",
        "192.0.2.255/32",
        "203.0.113.5/32",  # an address without a subnet route: only its local route says so
    }  # never 0.0.0.0/0 (not even the scope-link default) nor 198.51.100.77 (behind a gateway)


def test_host_networks_read_here_include_every_host_address() -> None:
    networks = netns.read_host_networks()
    for address in host_addresses():
        assert any(IPv4Network(address).subnet_of(n) for n in networks), address


def test_blocked_networks_merge_overlaps_for_nft() -> None:
    host = [IPv4Network("192.0.2.0/24"), IPv4Network("192.0.2.2/32"), IPv4Network("10.9.0.0/16")]
    blocked = netns.blocked_networks(host, [IPv4Network("203.0.113.0/24")])
    assert IPv4Network("192.0.2.0/24") in blocked and IPv4Network("203.0.113.0/24") in blocked
    assert IPv4Network("192.0.2.2/32") not in blocked and IPv4Network("10.9.0.0/16") not in blocked
    for i, a in enumerate(blocked):
        assert not any(a.overlaps(b) for b in blocked[i + 1 :])


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "fd00::/8", "0.0.0.0/0", "internal-api", "10.0.0.0/33"])
def test_operator_cidrs_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        netns.parse_cidrs([bad])


def test_sandbox_files_point_dns_at_slirp_and_name_localhost() -> None:
    files = etc_files("box")
    assert files["/etc/resolv.conf"] == b"nameserver 10.0.2.3\n"
    assert b"127.0.0.1\tlocalhost\n" in files["/etc/hosts"] and b"\tbox\n" in files["/etc/hosts"]


def test_ruleset_blocks_before_it_accepts() -> None:
    rules = netns.firewall_ruleset(netns.blocked_networks([]), netns.parse_cidrs(["10.20.0.15/32"]))
    lines = [line.strip() for line in rules.splitlines()]
    assert "policy drop;" in lines[lines.index("chain output {") + 1]
    order = [
        "ip daddr 10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept",
        "ip daddr 10.0.2.0/24 jump refuse",
        "ip daddr @allowed accept",
        "ip daddr @blocked jump refuse",
        "meta nfproto ipv4 accept",
    ]
    assert sorted(order, key=lines.index) == order
    assert "169.254.0.0/16" in rules and "10.20.0.15/32" in rules


# --- end to end: an executor node with network: true, through the sandbox runner ----------------

PROBE_NET = """
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            out[target] = "ok:" + s.recv(16).decode()
    except OSError as e:
        out[target] = type(e).__name__
try:
    out["resolv"] = open("/etc/resolv.conf").read().strip()
except OSError as e:
    out["resolv"] = type(e).__name__
print(json.dumps(out))
"""


@pytest.mark.usefixtures("sandbox")
async def test_an_executor_with_network_reaches_out_but_never_home(
    far_server: tuple[str, int], loopback_server: Server, any_address_server: Server, tmp_path: Path
) -> None:
    payloads = tmp_path / "payloads"
    write(payloads / "probe.py", PROBE_NET)
    far = f"{far_server[0]}:{far_server[1]}"
    home = [f"127.0.0.1:{loopback_server.port}", f"10.0.2.2:{loopback_server.port}"]
    home += [f"{a}:{any_address_server.port}" for a in host_addresses()]
    cfg = {"upload_path": "probe.py", "command": ["python3", "probe.py", far, *home], "network": True}
    outcome = await run_config(cfg, payloads, tmp_path / "tmp")
    assert outcome.ok, outcome.error
    seen = json.loads(outcome.result["stdout"])
    assert seen[far] == "ok:hello"
    assert seen["resolv"] == "nameserver 10.0.2.3"
    for target in home:
        assert seen[target] == "ConnectionRefusedError", (target, seen)
    # Without network: true nothing is reachable at all, not even the stand-in internet.
    outcome = await run_config({**cfg, "network": False}, payloads, tmp_path / "tmp")
    alone = json.loads(outcome.result["stdout"])
    assert alone[far] == "OSError" and alone["resolv"] == "FileNotFoundError", alone  # unreachable
