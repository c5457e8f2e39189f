"""The UI's routes over HTTP: pages, assets, headers, and what the token guards."""

from __future__ import annotations

import re

import httpx

from mirror_neuron.server.ui import CSP, assets
from security.conftest import MnServer

from .conftest import TOKEN, base_url

STRICT = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"


def test_pages_carry_a_strict_policy_and_link_only_local_versioned_assets(server: MnServer) -> None:
    with httpx.Client(base_url=base_url(server)) as web:
        for path in ("/ui", "/ui/jobs/some-job", "/ui/jobs/%3Cimg%20src%3Dx%3E"):
            page = web.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["content-security-policy"].startswith(STRICT)
            assert page.headers["x-content-type-options"] == "nosniff"
            assert "<img" not in page.text and "some-job" not in page.text  # the script reads the URL
        assert "<script>" not in page.text and "style=" not in page.text and "<style" not in page.text
        links = re.findall(r'(?:src|href|content)="(/ui/static/[^"]+)"', page.text)
        assert {link.split("?")[0] for link in links} == {
            "/ui/static/app.js",
            "/ui/static/style.css",
            "/ui/static/favicon.svg",
            "/ui/static/vendor/dagre.min.js",
        }
        for link in links:
            asset = web.get(link)
            assert asset.status_code == 200, link
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert web.get(link, headers={"If-None-Match": asset.headers["etag"]}).status_code == 304
        script = web.get("/ui/static/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["cache-control"] == "no-cache"  # unversioned: revalidated
        # The modules import each other by versioned URLs too: every one is reached from app.js.
        modules = {name for name in assets() if name.endswith(".js") and "/" not in name}
        reached, todo = {"app.js"}, [script.text]
        while todo:
            for name, version in re.findall(r"""from '\./([\w.-]+\.js)\?v=(\w+)'""", todo.pop()):
                module = web.get(f"/ui/static/{name}", params={"v": version})
                assert module.headers["content-type"] == "text/javascript; charset=utf-8", name
                assert module.headers["cache-control"] == "public, max-age=31536000, immutable", name
                assert module.headers["etag"] == f'"{version}"', name
                if name not in reached:
                    reached.add(name)
                    todo.append(module.text)
        assert reached == modules and len(modules) > 5
        assert web.get("/ui/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
        assert web.get("/ui/static/vendor/LICENSE-dagre").status_code == 200
        for missing in (
            "/ui/static/index.html",
            "/ui/static/nope.js",
            "/ui/static/../ui.py",
            "/ui/static/vendor",
        ):
            assert web.get(missing).status_code == 404, missing
        slash = web.get("/ui/", follow_redirects=False)
        assert slash.status_code == 308 and slash.headers["location"] == "/ui"
        assert web.head("/ui").status_code == 200


def test_the_script_never_parses_text_as_markup() -> None:
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
    scripts = [name for name in assets() if name.endswith(".js") and not name.startswith("vendor/")]
    assert "app.js" in scripts and len(scripts) > 5
    for name in scripts:
        script = assets()[name].body.decode()
        for sink in sinks:
            assert sink not in script, (name, sink)


def test_the_asset_folders_hold_only_what_the_package_ships() -> None:
    names = set(assets())
    assert {"index.html", "app.js", "style.css", "vendor/dagre.min.js", "vendor/LICENSE-dagre"} <= names
    assert all(name.count("/") <= 1 for name in names)  # pyproject ships ui_assets/* and ui_assets/vendor/*
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


def test_with_a_token_pages_are_open_and_the_api_is_not(token_server: MnServer) -> None:
    with httpx.Client(base_url=base_url(token_server)) as web:
        assert web.get("/ui").status_code == 200
        assert web.get("/ui/static/app.js").status_code == 200
        assert web.get("/api/v1/jobs").status_code == 401
        cookie = {"Cookie": f"mn_token={TOKEN}"}  # the token is never taken from a cookie
        assert web.get("/api/v1/jobs", headers=cookie).status_code == 401
        assert web.get("/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
