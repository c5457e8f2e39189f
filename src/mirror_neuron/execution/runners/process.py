"""Owned child processes: own process group, capped separate capture, term → grace → kill.

Why not ``asyncio.create_subprocess_exec``: it cannot tell us *before reaping* that the
leader exited, and we must kill the rest of its group while the group id is still
reserved (a zombie leader pins it), so that no background grandchild survives and no
unrelated group is ever signalled. A ``pidfd`` watched by the event loop gives exactly
that, without a watcher thread per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

#: Run right after the child is started, before its output is awaited (e.g. put it into a
#: cgroup); if it raises, the child's group is killed and the error propagates.
OnStarted = Callable[[subprocess.Popen[bytes]], Awaitable[None]]

log = logging.getLogger(__name__)
CHUNK = 65536
#: How long to wait for a SIGKILLed group to be reaped before giving up on it.
KILL_WAIT_SECONDS = 5.0


@dataclass(slots=True)
class ProcessOutput:
    """What an owned process produced. ``returncode`` is 128+N for death by signal N."""

    returncode: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    stopped: bool = False
    duration_ms: float = 0.0


class _Capture:
    """Reads one pipe without blocking; keeps the head (stdout) or the tail (stderr) up to ``cap``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes], cap: int, keep_tail: bool) -> None:
        self.loop, self.pipe, self.cap, self.keep_tail = loop, pipe, cap, keep_tail
        self.fd = pipe.fileno()
        self.buffer = bytearray()
        self.truncated = False
        self.closed = False
        self.done: asyncio.Future[None] = loop.create_future()
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        if self.keep_tail:
            self.buffer += chunk
            if len(self.buffer) > 2 * self.cap:
                del self.buffer[: len(self.buffer) - self.cap]
                self.truncated = True
            return
        room = self.cap - len(self.buffer)
        if room > 0:
            self.buffer += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def value(self) -> bytes:
        if len(self.buffer) > self.cap:
            self.truncated = True
            return bytes(self.buffer[-self.cap :])
        return bytes(self.buffer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        self.pipe.close()
        if not self.done.done():
            self.done.set_result(None)


class OwnedProcess:
    """A child in its own process group, reaped by the loop when its pidfd becomes readable."""

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.popen = popen
        self.pgid = popen.pid  # start_new_session: the child leads its own group
        self.loop = loop
        self.exited: asyncio.Future[int] = loop.create_future()
        self.stopped = False
        self._pidfd = -1
        try:
            self._pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # kernel < 5.3: a thread waits without reaping
            self._waiter = loop.run_in_executor(None, _wait_no_reap, popen.pid)
            self._waiter.add_done_callback(lambda _f: self._on_exit())
        else:
            loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        # The leader is a zombie, so its group id is still reserved: kill what it left behind.
        self.signal_group(signal.SIGKILL)
        code = self.popen.wait()
        if not self.exited.done():
            self.exited.set_result(128 - code if code < 0 else code)

    def signal_group(self, sig: int) -> None:
        if self.popen.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM the group, wait ``grace`` seconds, then SIGKILL it (with a warning)."""
        if self.exited.done():
            return
        self.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), grace)
        except TimeoutError:
            pass
        finally:
            if not self.exited.done():
                log.warning("process group %d ignored SIGTERM for %.1fs; sending SIGKILL", self.pgid, grace)
                self.signal_group(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), KILL_WAIT_SECONDS)


class ProcessTracker:
    """The processes one owner (an executor agent) is running, so it can stop them all."""

    def __init__(self) -> None:
        self.running: set[OwnedProcess] = set()

    async def stop_all(self, grace: float) -> None:
        procs = list(self.running)
        for proc in procs:
            proc.stopped = True
        await asyncio.gather(*(proc.terminate(grace) for proc in procs))


async def run_owned(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    time_limit: float | None = None,
    max_output_bytes: int,
    grace: float,
    pass_fds: Sequence[int] = (),
    popen_kwargs: Mapping[str, Any] | None = None,
    tracker: ProcessTracker | None = None,
    on_started: OnStarted | None = None,
) -> ProcessOutput:
    """Run ``argv`` to completion, killing its whole group on timeout or cancellation."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    # Popen blocks only for fork+exec (about a millisecond); there is no async spawn that
    # also gives us pass_fds, user/group and a reapable pidfd.
    popen = subprocess.Popen(  # noqa: ASYNC220
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        **(popen_kwargs or {}),
    )
    assert popen.stdout is not None and popen.stderr is not None
    out = _Capture(loop, popen.stdout, max_output_bytes, keep_tail=False)
    err = _Capture(loop, popen.stderr, max_output_bytes, keep_tail=True)
    proc = OwnedProcess(popen, loop)
    if tracker is not None:
        tracker.running.add(proc)
    timed_out = False
    try:
        try:
            async with asyncio.timeout(time_limit):
                if on_started is not None:
                    await _setup(proc, on_started)
                await asyncio.shield(proc.exited)
        except TimeoutError:
            timed_out = True
            await proc.terminate(grace)
        await _drain(out, err, grace)
    except BaseException:
        await proc.terminate(grace)
        out.close()
        err.close()
        raise
    finally:
        if tracker is not None:
            tracker.running.discard(proc)
    code = proc.exited.result() if proc.exited.done() else 128 + signal.SIGKILL
    return ProcessOutput(
        returncode=code,
        stdout=out.value(),
        stderr=err.value(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        timed_out=timed_out,
        stopped=proc.stopped,
        duration_ms=(time.monotonic() - started) * 1000.0,
    )


async def _setup(proc: OwnedProcess, on_started: OnStarted) -> None:
    """Run the start hook; a failed hook leaves nothing running (SIGKILL, not the grace period)."""
    try:
        await on_started(proc.popen)
    except BaseException:
        proc.signal_group(signal.SIGKILL)
        raise


async def read_to_eof(fd: int, limit: int = CHUNK) -> bytes:
    """Everything written to the pipe ``fd`` until its last writer closes it (at most ``limit`` bytes)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk[: max(limit - len(data), 0)])
        if not chunk and not done.done():
            done.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, on_readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return bytes(data)


async def _drain(out: _Capture, err: _Capture, grace: float) -> None:
    """Wait for both pipes to close; a writer that escaped the group gets ``grace`` seconds."""
    pending = [f for f in (out.done, err.done) if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(grace, 0.1))
    out.close()
    err.close()


def _wait_no_reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def read_available(fd: int, size: int = 64) -> bytes:
    """What the pipe ``fd`` holds right now, without waiting."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return b""


def exited_unreaped(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (its owner does that)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def pidfd_exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has exited (a pidfd is readable once it has)."""
    return bool(select.select([pidfd], [], [], 0)[0])


async def wait_pidfd(pidfd: int, timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) until the process of ``pidfd`` has exited.

    For a sandbox's first process (its PID namespace's init): bwrap's own exit does not mean
    the sandbox is empty, but the kernel kills and reaps every process of the namespace
    before that init is gone. Waiting for it makes "stopped" mean "no process left".
    """
    await wait_readable(pidfd, timeout)


async def wait_readable(fd: int, timeout: float) -> bool:
    """Wait (at most ``timeout`` seconds) until ``fd`` is readable; False if the time ran out."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            await ready
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True
