"""A small HTTP client of the runtime server, for ``mn run --server``.

Server errors come back as the package's exceptions (every validation message of a
422 as a :class:`ManifestError`), so the CLI reports them exactly as for local runs.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from ..errors import JobTimeout, ManifestError, MirrorNeuronError
from .auth import TOKEN_ENV

#: Longest single ``/wait`` call; the client calls again until its own deadline.
WAIT_SLICE = 30.0


def zip_bundle(root: Path) -> bytes:
    """The bundle folder as an in-memory zip (symlinked files are stored as their content,
    symlinked folders are not followed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
            for name in dirs:  # empty folders matter (a bundle must have payloads/)
                path = Path(folder) / name
                archive.write(path, path.relative_to(root).as_posix())
            for name in sorted(files):
                path = Path(folder) / name
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


class ServerClient:
    """Calls ``/api/v1`` of one server. Use as a context manager (closes the connection pool)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        token = token or os.environ.get(TOKEN_ENV) or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout)

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

    def upload(self, root: Path) -> dict[str, Any]:
        files = {"bundle": (f"{root.name}.zip", zip_bundle(root), "application/zip")}
        return self.request("POST", "/jobs/upload", files=files)

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The terminal record; :class:`JobTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
            if left <= 0:
                raise JobTimeout(job_id, timeout)
            response = self._send("GET", f"/jobs/{job_id}/wait", params={"timeout": left}, timeout=left + 10)
            if response.is_success:
                return response.json()
            if response.status_code != 408:  # 408: not ended within this slice
                raise _error(response)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/cancel")


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
