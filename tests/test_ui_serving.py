"""The sidecar serves the built UI for a plain browser: the launch token in index.html, static
files without the token, and the Host check and the API's token still in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schema.db import Database
from sidecar.app import create_app
from sidecar.settings import Settings
from sidecar.ui import TOKEN_META, inject_token

TOKEN = 'launch-tok"<en>'
INDEX = (
    "<!doctype html><html><head><title>kensa</title></head>"
    '<body><div id="root"></div><script src="/assets/app.js"></script></body></html>'
)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / "assets" / "app.js").write_text("console.log('kensa')", encoding="utf-8")
    (root / "favicon.svg").write_text("<svg/>", encoding="utf-8")
    return root


def _client(
    tmp_path: Path, db: Database, dist: Path | None, *, browser_ui: bool = True
) -> TestClient:
    settings = Settings(token=TOKEN, data_dir=tmp_path, ui_dist=dist, browser_ui=browser_ui)
    # No lifespan (no `with`): the app uses the given database and starts no background work.
    return TestClient(create_app(settings, db=db), base_url="http://127.0.0.1:8765")


def test_index_carries_the_launch_token_escaped(
    tmp_path: Path, device_db: Database, dist: Path
) -> None:
    client = _client(tmp_path, device_db, dist)
    for path in ("/", "/index.html"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        expected = f'<meta name="{TOKEN_META}" content="launch-tok&quot;&lt;en&gt;">'
        assert expected in r.text
        assert r.text.index(expected) < r.text.index("</head>")
        assert TOKEN not in r.text  # never unescaped into the markup
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_without_a_browser_ui_the_page_carries_no_token(
    tmp_path: Path, device_db: Database, dist: Path
) -> None:
    # The shell-launched sidecar: its webview gets the token from the shell, never from a page
    # any local account could fetch.
    client = _client(tmp_path, device_db, dist, browser_ui=False)
    for path in ("/", "/index.html"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert TOKEN_META not in r.text and "launch-tok" not in r.text


def test_static_files_need_no_token_but_the_api_does(
    tmp_path: Path, device_db: Database, dist: Path
) -> None:
    client = _client(tmp_path, device_db, dist)
    asset = client.get("/assets/app.js")
    assert asset.status_code == 200 and "kensa" in asset.text
    assert client.get("/favicon.svg").status_code == 200
    assert client.get("/assets/missing.js").status_code == 404
    api = client.get("/sessions/interrupted")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
    assert client.get("/openapi.json").status_code == 401
    # Writing to a static path is not a way around the token.
    assert client.post("/", content=b"x").status_code == 401
    # Nor is a path that climbs out of the assets folder.
    (tmp_path / "secret.txt").write_text("s3cret", encoding="utf-8")
    for sneaky in ("/assets/../secret.txt", "/assets/..%2f..%2fsecret.txt"):
        r = client.get(sneaky)
        assert r.status_code in (401, 404), sneaky
        assert "s3cret" not in r.text


def test_the_host_check_still_guards_the_page(
    tmp_path: Path, device_db: Database, dist: Path
) -> None:
    client = _client(tmp_path, device_db, dist)
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.nip.io"):
        r = client.get("/", headers={"Host": host})
        assert r.status_code == 403, host
        assert r.json()["error"]["code"] == "host_not_allowed"
        assert "launch-tok" not in r.text
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_other_origins_cannot_read_the_page(
    tmp_path: Path, device_db: Database, dist: Path
) -> None:
    client = _client(tmp_path, device_db, dist)
    r = client.get("/", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_no_built_ui_serves_nothing(tmp_path: Path, device_db: Database) -> None:
    client = _client(tmp_path, device_db, tmp_path / "no-such-dist")
    assert client.get("/").status_code == 404
    assert client.get("/health").status_code == 200
    none = _client(tmp_path, device_db, None)
    assert none.get("/").status_code == 404


def test_ui_dist_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KENSA_UI_DIST", str(tmp_path / "ui"))
    assert Settings().ui_dist == tmp_path / "ui"


def test_inject_token() -> None:
    assert inject_token("<head></head>", None) == "<head></head>"
    assert inject_token("<p>no head</p>", "t").startswith('<meta name="kensa-token" content="t">')
