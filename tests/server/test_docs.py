"""``/docs`` and ``/redoc`` work offline (every asset from this server) and open with a token set."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ServerThread, serve

TOKEN = "docs-token-for-tests-0123"
PAGES = {"/docs": "SwaggerUIBundle", "/redoc": "Redoc"}
#: Every URL a page loads: src / href attributes, ReDoc's spec-url, Swagger UI's ``url:``.
REFERENCE = re.compile(r"""(?:\b(?:src|href|spec-url)\s*=\s*|\burl:\s*)["']([^"']*)["']""")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with serve(tmp_path_factory.mktemp("docs_guarded"), token=TOKEN) as srv:
        yield srv


def references(html: str) -> list[str]:
    return REFERENCE.findall(html)


def check_page(base: str, page: str, marker: str) -> list[str]:
    """The page opens without a token, names no other host, and each URL it loads answers 200."""
    response = httpx.get(base + page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn.jsdelivr" not in html and "unpkg" not in html and "fonts.googleapis" not in html
    assert not re.search(r"https?:|//[a-z]", html, re.IGNORECASE), html
    urls = references(html)
    assert "/openapi.json" in urls and any(url.endswith(".js") for url in urls), urls
    bodies = {}
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = httpx.get(base + url)
        assert asset.status_code == 200, url
        assert asset.content, url
        bodies[url] = asset.text if url.endswith((".js", ".json", ".css")) else ""
    assert any(marker in body for url, body in bodies.items() if url.endswith(".js")), marker
    return urls


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_every_asset_from_this_server(server: ServerThread, page: str) -> None:
    urls = check_page(server.url, page, PAGES[page])
    if page == "/docs":
        assert any(url.endswith(".css") for url in urls)
        html = httpx.get(server.url + page).text
        assert '"persistAuthorization": true' in html and '"validatorUrl": null' in html


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_open_with_a_token_set(guarded: ServerThread, page: str) -> None:
    check_page(guarded.url, page, PAGES[page])


def test_with_a_token_the_schema_is_readable_and_declares_bearer_auth(guarded: ServerThread) -> None:
    schema = httpx.get(guarded.url + "/openapi.json").json()
    bearer = schema["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert schema["security"] == [{"bearer": []}]
    assert "/docs" not in schema["paths"] and "/docs-assets/{name}" not in schema["paths"]
    # What "Try it out" sends after "Authorize": the API itself still wants the token.
    assert httpx.get(guarded.url + "/api/v1/jobs").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(guarded.url + "/api/v1/jobs", headers=auth).status_code == 200


@pytest.mark.parametrize("path", ["/docs-assets/nope.js", "/docs-assets/..%2Fcore.py", "/docs-assets/"])
def test_only_the_named_assets_are_served(server: ServerThread, path: str) -> None:
    assert httpx.get(server.url + path).status_code == 404
