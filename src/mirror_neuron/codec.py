"""Body and whole-message encodings (§3.3): JSON, NDJSON, octet-stream; identity or gzip."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from . import _json
from .errors import MessageError

JSON_TYPES = frozenset({"application/json", "text/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/ndjson"})
OCTET_STREAM = "application/octet-stream"


def encode_body(
    body: Any, content_type: str = "application/json", content_encoding: str = "identity"
) -> bytes:
    """Encode a body for a worker per its content type, then its content encoding (§3.3)."""
    ctype = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if ctype in NDJSON_TYPES:
        if isinstance(body, str):
            raw = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray)):
            raw = bytes(body)
        elif isinstance(body, list):
            raw = b"".join(_json.dumps(item) + b"\n" for item in body)
        else:
            raw = _json.dumps(body) + b"\n"
    elif ctype == OCTET_STREAM and isinstance(body, (bytes, bytearray)):
        raw = bytes(body)
    else:
        raw = _json.dumps(body)
    return apply_encoding(raw, content_encoding)


def apply_encoding(raw: bytes, content_encoding: str | None) -> bytes:
    if content_encoding in (None, "", "identity"):
        return raw
    if content_encoding == "gzip":
        return gzip.compress(raw, mtime=0)
    raise MessageError(f'unsupported content_encoding "{content_encoding}"')


def decode_body(
    raw: bytes, content_type: str = "application/json", content_encoding: str = "identity"
) -> Any:
    """Inverse of :func:`encode_body`: NDJSON decodes to a list, octet-stream stays bytes."""
    if content_encoding == "gzip":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise MessageError(f"body is not valid gzip: {exc}") from exc
    elif content_encoding not in (None, "", "identity"):
        raise MessageError(f'unsupported content_encoding "{content_encoding}"')
    ctype = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if ctype == OCTET_STREAM:
        return raw
    try:
        if ctype in NDJSON_TYPES:
            return [_json.loads(line) for line in raw.splitlines() if line.strip()]
        return _json.loads(raw)
    except _json.JSONDecodeError as exc:
        raise MessageError(f"body is not valid JSON for content type {ctype}: {exc}") from exc
