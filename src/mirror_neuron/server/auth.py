"""Who may call the API: anyone on loopback, only token holders otherwise.

The server binds 127.0.0.1 by default. Listening anywhere else without a token would
hand job submission (which runs bundle code) to the network, so :func:`check_bind`
refuses it. With a token, every request but the health probe, the API documentation
(pages, their assets and the OpenAPI document: see :mod:`.docs`) and the web UI's pages
and assets (which hold no data: they call the API) must carry ``Authorization: Bearer
<token>`` (a job's event stream also opens with a short-lived ticket, see
:func:`stream_ticket`); the token is
compared in constant time and never logged or echoed. A token must be worth having:
:func:`check_token` refuses short ones and ones with whitespace (a token of ``" "`` was
accepted once, which is no protection).

Loopback alone does not keep web pages out: any site the user visits can make the
browser POST a multipart form (a bundle zip) to ``127.0.0.1``, or point a DNS name at
it (rebinding). So without a token, :class:`LocalOnly` also requires a loopback
``Host`` and refuses requests whose ``Origin`` is not loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import MirrorNeuronError
from .middleware import send_json

TOKEN_ENV = "MIRROR_NEURON_API_TOKEN"
#: Fewest characters of an API token (``secrets.token_urlsafe(32)`` gives 43).
MIN_TOKEN_LENGTH = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class InsecureBind(MirrorNeuronError):
    """The server was asked to listen beyond loopback without a token."""


class WeakToken(InsecureBind):
    """The API token is too easy to guess (too short) or unusable in a header (whitespace)."""


def token_problem(token: str, min_length: int = MIN_TOKEN_LENGTH) -> str | None:
    """Why ``token`` is not acceptable, or ``None``.

    Only visible ASCII is allowed: whitespace is trimmed or split by HTTP clients and
    proxies, and anything else cannot travel in a header as typed.
    """
    if len(token) < min_length:
        return f"it has {len(token)} character{'' if len(token) == 1 else 's'}, fewer than {min_length}"
    if any(c.isspace() for c in token):
        return "it contains whitespace"
    if not all("!" <= c <= "~" for c in token):
        return "it contains characters other than visible ASCII"
    return None


def check_token(token: str, min_length: int = MIN_TOKEN_LENGTH) -> None:
    """Raise :class:`WeakToken`, saying how to make a good one, unless ``token`` is strong enough."""
    problem = token_problem(token, min_length)
    if problem is not None:
        raise WeakToken(
            f"the API token is too weak: {problem}; use at least {min_length} visible characters "
            f"without whitespace, e.g. make one with: {MAKE_TOKEN}"
        )


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None, min_token_length: int = MIN_TOKEN_LENGTH) -> None:
    """Raise :class:`InsecureBind` unless ``host`` is loopback or a token is set, and
    :class:`WeakToken` for a set token that is too weak (also on loopback)."""
    if token is not None:
        check_token(token, min_token_length)
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"refusing to listen on {host} without an API token: set {TOKEN_ENV} "
            f"or pass --token (or bind 127.0.0.1); make one with: {MAKE_TOKEN}"
        )


#: Seconds a stream ticket opens its job's event stream for (each connect checks it).
TICKET_TTL = 300
_STREAM_PATH = re.compile(r"^/api/v1/jobs/([^/]+)/stream$")


def stream_ticket(token: str, job_id: str, now: float | None = None) -> str:
    """A short-lived ticket that opens one job's event stream (``?ticket=``) and nothing else.

    A browser's ``EventSource`` cannot send an ``Authorization`` header; the API token itself
    must never travel in a URL or a cookie (a cookie goes to every port of the host). The
    ticket is ``<expiry>.<HMAC of job and expiry under the token>``: nothing to store, and
    worthless for any other job, any write, or after :data:`TICKET_TTL` seconds.
    """
    expiry = int((time.time() if now is None else now) + TICKET_TTL)
    return f"{expiry}.{_ticket_mac(token.encode(), job_id, expiry)}"


def _ticket_mac(token: bytes, job_id: str, expiry: int) -> str:
    message = f"mn-stream-ticket\n{job_id}\n{expiry}".encode()
    return hmac.new(token, message, hashlib.sha256).hexdigest()


def ticket_opens(token: bytes, ticket: str, job_id: str, now: float | None = None) -> bool:
    """Whether ``ticket`` (from :func:`stream_ticket`) opens ``job_id``'s stream now."""
    expiry_text, _, mac = ticket.partition(".")
    if not expiry_text.isdigit() or int(expiry_text) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _ticket_mac(token, job_id, int(expiry_text)))


class BearerAuth:
    """ASGI middleware: 401 for any HTTP request without the right bearer token.

    One exception: ``GET /api/v1/jobs/{id}/stream?ticket=…`` with a valid ticket of that job
    (:func:`stream_ticket`), for the web UI's ``EventSource``.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_paths: frozenset[str] = frozenset(),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._token = token.encode()
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["path"]) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, {"error": "missing or invalid API token"}, {"www-authenticate": "Bearer"})

    def _open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def _allowed(self, scope: Scope) -> bool:
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
        scheme, _, credentials = supplied.partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(credentials.strip(), self._token)
        return self._ticketed(scope)

    def _ticketed(self, scope: Scope) -> bool:
        stream = _STREAM_PATH.match(scope["path"])  # the path comes percent-decoded
        if stream is None or scope.get("method") != "GET":
            return False
        tickets = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket", [])
        return len(tickets) == 1 and ticket_opens(self._token, tickets[0], stream.group(1))


def _hostname(value: bytes, scheme: str = "//") -> str | None:
    try:
        return urlsplit(scheme + value.decode("latin-1")).hostname
    except ValueError:
        return None


class LocalOnly:
    """ASGI middleware for a tokenless server: 403 for browser cross-site and rebound requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._local(dict(scope["headers"])):
            await self.app(scope, receive, send)
            return
        await send_json(send, 403, {"error": "only local clients may call this server without an API token"})

    @staticmethod
    def _local(headers: dict[bytes, bytes]) -> bool:
        host = _hostname(headers.get(b"host", b"localhost"))
        if host is None or not is_loopback(host):
            return False
        origin = headers.get(b"origin")
        if origin is None:
            return True
        origin_host = _hostname(origin, "")
        return origin_host is not None and is_loopback(origin_host)
