"""Where a monitor reads jobs from and sends its controls to: the local store or a server.

Both sources give the same shapes (the REST API's): job records, graphs, agent views,
log runs, dead letters, and a live stream of ``Update`` tuples (the runtime's: the job's
events merged with coalesced agent statuses, ending with ``("end", {"status": ...})``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode

from .. import _json
from ..config import Config
from ..errors import MirrorNeuronError
from ..runtime import Runtime, Update
from ..store import open_store


class Source(Protocol):
    """What a monitor may ask. Errors are the package's exceptions (JobNotFound, …)."""

    #: Where the jobs are, for a title bar (``sqlite:///…`` or a server URL).
    where: str

    async def list_jobs(self, limit: int = 200) -> list[dict[str, Any]]: ...
    async def resolve(self, job_id: str) -> str: ...
    async def job(self, job_id: str) -> dict[str, Any]: ...
    async def graph(self, job_id: str) -> dict[str, Any]: ...
    async def agents(self, job_id: str) -> list[dict[str, Any]]: ...
    async def agent(self, job_id: str, agent_id: str) -> dict[str, Any]: ...
    async def events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]: ...
    async def logs(self, job_id: str, agent_id: str, after: int = 0) -> list[dict[str, Any]]: ...
    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]: ...
    def updates(
        self, job_id: str, after: int = 0, *, agents: bool = True
    ) -> AsyncGenerator[Update, None]: ...
    async def control(self, op: Literal["pause", "resume", "cancel"], job_id: str) -> dict[str, Any]: ...
    async def send(self, job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]: ...
    async def redrive(self, job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class LocalSource:
    """Jobs of the configured store, read and controlled through a :class:`Runtime` that
    hosts nothing (controls reach the process running each job, as ``mn job pause`` does)."""

    def __init__(self, config: Config) -> None:
        self.config = config.with_(control=False)
        self.where = config.store_url
        self._runtime: Runtime | None = None
        self._started = False
        # Callers at once (a monitor's workers) share one runtime: without the lock each
        # made its own while the first was starting, and only the last one was ever closed.
        self._lock = asyncio.Lock()

    async def _rt(self) -> Runtime:
        if self._started and self._runtime is not None:
            return self._runtime
        async with self._lock:
            if self._runtime is None:
                store = open_store(self.config.store_url, create=False)
                self._runtime = Runtime(self.config, store=store)  # close() closes it, started or not
            if not self._started:
                await self._runtime.start()
                self._started = True
            return self._runtime

    async def list_jobs(self, limit: int = 200) -> list[dict[str, Any]]:
        return list(await (await self._rt()).list_jobs(limit=limit))

    async def resolve(self, job_id: str) -> str:
        return await (await self._rt()).resolve_job_id(job_id)

    async def job(self, job_id: str) -> dict[str, Any]:
        return await (await self._rt()).inspect_job(job_id)

    async def graph(self, job_id: str) -> dict[str, Any]:
        return await (await self._rt()).graph(job_id)

    async def agents(self, job_id: str) -> list[dict[str, Any]]:
        return await (await self._rt()).inspect_agents(job_id)

    async def agent(self, job_id: str, agent_id: str) -> dict[str, Any]:
        return await (await self._rt()).inspect_agent(job_id, agent_id)

    async def events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return await (await self._rt()).events(job_id, after=after, limit=limit)

    async def logs(self, job_id: str, agent_id: str, after: int = 0) -> list[dict[str, Any]]:
        return await (await self._rt()).logs(job_id, agent_id, after=after)

    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]:
        return await (await self._rt()).control.dead_letters(job_id)

    async def updates(
        self, job_id: str, after: int = 0, *, agents: bool = True
    ) -> AsyncGenerator[Update, None]:
        stream = (await self._rt()).updates(job_id, after=after, agents=agents)
        async with contextlib.aclosing(stream):  # closed with this one: its followers stop at once
            async for update in stream:
                yield update

    async def control(self, op: Literal["pause", "resume", "cancel"], job_id: str) -> dict[str, Any]:
        control = (await self._rt()).control
        method = {"pause": control.pause, "resume": control.resume, "cancel": control.cancel}[op]
        return await method(job_id)

    async def send(self, job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return await (await self._rt()).control.send_message(job_id, agent_id, message)

    async def redrive(self, job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
        return await (await self._rt()).control.redrive(job_id, letter_id, agent_id)

    async def close(self) -> None:
        if self._runtime is not None:
            runtime, self._runtime, self._started = self._runtime, None, False
            await runtime.close()


class RemoteSource:
    """Jobs of an ``mn serve`` (any node of a cluster), over its REST API and event stream."""

    def __init__(self, url: str, token: str | None = None) -> None:
        from ..server.client import AsyncServerClient

        self.where = url
        self._client = AsyncServerClient(url, token)

    async def list_jobs(self, limit: int = 200) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await self._client.get("/jobs", params={"limit": limit}))["data"]
        return data

    async def resolve(self, job_id: str) -> str:
        await self._client.get(_path("jobs", job_id))  # a server takes whole ids only
        return job_id

    async def job(self, job_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self._client.get(_path("jobs", job_id))
        return record

    async def graph(self, job_id: str) -> dict[str, Any]:
        graph: dict[str, Any] = await self._client.get(_path("jobs", job_id, "graph"))
        return graph

    async def agents(self, job_id: str) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = []
        after: str | None = None
        while True:  # every page
            params = {"limit": 10_000, **({"after": after} if after else {})}
            page = await self._client.get(_path("jobs", job_id, "agents"), params=params)
            views.extend(page["data"])
            after = page.get("next")
            if not after:
                return views

    async def agent(self, job_id: str, agent_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self._client.get(_path("jobs", job_id, "agents", agent_id))
        return view

    async def events(self, job_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        params = {"after": after, "limit": limit}
        events: list[dict[str, Any]] = (await self._client.get(_path("jobs", job_id, "events"), params))[
            "data"
        ]
        return events

    async def logs(self, job_id: str, agent_id: str, after: int = 0) -> list[dict[str, Any]]:
        page = await self._client.get(_path("jobs", job_id, "agents", agent_id, "logs"), {"after": after})
        runs: list[dict[str, Any]] = page["data"]
        return runs

    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]:
        letters: list[dict[str, Any]] = (await self._client.get(_path("jobs", job_id, "dead-letters")))[
            "data"
        ]
        return letters

    async def updates(
        self, job_id: str, after: int = 0, *, agents: bool = True
    ) -> AsyncGenerator[Update, None]:
        params = {"after": after, "agents": "true" if agents else "false"}
        async for name, data in self._client.stream(_path("jobs", job_id, "stream"), params):
            if name == "agent_status":
                yield ("agents", data["agents"])
            elif name == "end":
                yield ("end", data)
                return
            elif name == "stream_error":
                raise MirrorNeuronError(f"the server's event stream failed: {data.get('error')}")
            else:
                yield ("event", data)
        yield ("end", {"status": (await self.job(job_id)).get("status")})  # ended before (204)

    async def control(self, op: Literal["pause", "resume", "cancel"], job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.post(_path("jobs", job_id, op))
        return result

    async def send(self, job_id: str, agent_id: str, message: dict[str, Any]) -> dict[str, Any]:
        path = _path("jobs", job_id, "agents", agent_id, "messages")
        result: dict[str, Any] = await self._client.post(path, content=_json.dumps(message))
        return result

    async def redrive(self, job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
        path = _path("jobs", job_id, "dead-letters", str(letter_id), "redrive")
        if agent_id is not None:  # a dead letter names an agent the job lacks: deliver to another
            path += "?" + urlencode({"agent_id": agent_id})
        result: dict[str, Any] = await self._client.post(path)
        return result

    async def close(self) -> None:
        await self._client.close()


def _path(*parts: str) -> str:
    """An API path of ids that may hold ``?``, ``#``, ``%`` or ``/`` (each part percent-encoded)."""
    return "".join("/" + quote(part, safe="") for part in parts)


def open_source(config: Config, server: str | None = None, token: str | None = None) -> Source:
    """A :class:`RemoteSource` for ``server``, else a :class:`LocalSource` of the configured store."""
    return RemoteSource(server, token) if server else LocalSource(config)
