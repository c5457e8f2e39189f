"""A small HTTP client of the runtime server, for ``mn run --server``.

Server errors come back as the package's exceptions (every validation message of a
422 as a :class:`ManifestError`), so the CLI reports them exactly as for local runs.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx

from .. import _json
from ..errors import JobTimeout, ManifestError, MirrorNeuronError
from .auth import TOKEN_ENV

#: Longest single ``/wait`` call; the client calls again until its own deadline.
WAIT_SLICE = 30.0
#: Seconds without a byte (the server sends a heartbeat every 15) before a stream is taken
#: for dead: a half-open connection must not hang a monitor for ever.
STREAM_SILENCE = 60.0


def zip_bundle(root: Path) -> bytes:
    """The bundle folder as an in-memory zip (symlinked files inside it are stored as their
    content, symlinked folders are not followed, a symlink out of the bundle is refused).

    Raises:
        MirrorNeuronError: a symlink points outside the bundle (e.g. at ``~/.aws/credentials``).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
            for name in dirs:  # empty folders matter (a bundle must have payloads/)
                path = Path(folder) / name
                archive.write(path, path.relative_to(root).as_posix())
            for name in sorted(files):
                path = Path(folder) / name
                if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
                    raise MirrorNeuronError(  # a local run refuses it too: never ship what it points to
                        f"bundle file {path.relative_to(root).as_posix()} is a symlink to "
                        f"{os.readlink(path)}, outside the bundle; it is not uploaded"
                    )
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def _auth(token: str | None) -> dict[str, str]:
    """The header of ``token``, else of ``$MIRROR_NEURON_API_TOKEN`` (none without either)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    return {"Authorization": f"Bearer {token}"} if token else {}


class ServerClient:
    """Calls ``/api/v1`` of one server. Use as a context manager (closes the connection pool)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=_auth(token), timeout=timeout)

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.is_success:
            return response.json()
        raise _error(response)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MirrorNeuronError(f"cannot reach the server at {self.url}: {exc}") from exc

    def upload(self, root: Path, node: str | None = None) -> dict[str, Any]:
        """Upload and run a bundle folder (on node ``node`` of the cluster, if given)."""
        files = {"bundle": (f"{root.name}.zip", zip_bundle(root), "application/zip")}
        params = {"node": node} if node else None
        uploaded: dict[str, Any] = self.request("POST", "/jobs/upload", files=files, params=params)
        return uploaded

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The terminal record; :class:`JobTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
            if left <= 0:
                raise JobTimeout(job_id, timeout)
            response = self._send("GET", f"/jobs/{job_id}/wait", params={"timeout": left}, timeout=left + 10)
            if response.is_success:
                return cast("dict[str, Any]", response.json())
            if response.status_code != 408:  # 408: not ended within this slice
                raise _error(response)

    def iter_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        include_terminal: bool = True,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Summaries of every job (of ``status``), newest update first, one page at a time."""
        params: dict[str, Any] = {"include_terminal": include_terminal}
        if status is not None:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if page_size is not None:
            params["limit"] = page_size
        while True:
            page = self.request("GET", "/jobs", params=params)
            yield from page["data"]
            if page.get("next_cursor") is None:
                return
            params = {**params, "cursor": page["next_cursor"]}

    def jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        include_terminal: bool = True,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(self.iter_jobs(status=status, include_terminal=include_terminal, page_size=page_size))

    def cancel(self, job_id: str) -> dict[str, Any]:
        cancelled: dict[str, Any] = self.request("POST", f"/jobs/{job_id}/cancel")
        return cancelled

    def iter_agents(self, job_id: str, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every agent of the job, sorted by id, fetched one page at a time (see ``next``)."""
        params: dict[str, Any] = {} if page_size is None else {"limit": page_size}
        return self._pages(f"/jobs/{job_id}/agents", params)

    def agents(self, job_id: str, *, page_size: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_agents(job_id, page_size=page_size))

    def iter_events(
        self, job_id: str, *, after: int = 0, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The job's stored events after ``after``, oldest first, one page at a time."""
        params: dict[str, Any] = {"after": after}
        if page_size is not None:
            params["limit"] = page_size
        return self._pages(f"/jobs/{job_id}/events", params)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paged list: each reply's ``next`` is the following request's ``after``."""
        while True:
            page = self.request("GET", path, params=params)
            yield from page["data"]
            if page.get("next") is None:
                return
            params = {**params, "after": page["next"]}

    def events(self, job_id: str, *, after: int = 0, page_size: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_events(job_id, after=after, page_size=page_size))


def _error(response: httpx.Response) -> MirrorNeuronError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    message = message or f"the server answered {response.status_code} {response.reason_phrase}"
    if response.status_code == 401:
        return MirrorNeuronError(
            f"the server refused the request: {message} (pass --token or set {TOKEN_ENV})"
        )
    if response.status_code == 422 and isinstance(body, dict) and isinstance(body.get("errors"), list):
        return ManifestError([str(e) for e in body["errors"]])
    return MirrorNeuronError(message)


class AsyncServerClient:
    """The asynchronous client of one server, for monitors: reads, controls and the event stream."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url + "/api/v1", headers=_auth(token), timeout=timeout)

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MirrorNeuronError(f"cannot reach the server at {self.url}: {exc}") from exc
        if not response.is_success:
            raise _error(response)
        return response.json()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._send("GET", path, params=params)

    async def post(self, path: str, content: bytes | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if content is not None else None
        return await self._send("POST", path, content=content, headers=headers)

    async def stream(self, path: str, params: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        """``(event name, data)`` of each frame (``"message"`` for unnamed ones), until the stream
        ends; nothing when the server answers 204 (the job ended and nothing follows)."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_SILENCE)
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code == 204:
                    return
                if not response.is_success:
                    await response.aread()
                    raise _error(response)
                name, data = "message", list[str]()
                async for line in response.aiter_lines():
                    if line == "":
                        if data:
                            yield name, _json.loads("\n".join(data))
                        name, data = "message", []
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        value = line[5:]
                        data.append(value[1:] if value.startswith(" ") else value)
        except httpx.HTTPError as exc:
            raise MirrorNeuronError(f"lost the event stream of {self.url}: {exc}") from exc

    async def close(self) -> None:
        await self._http.aclose()
