"""Both HTTP APIs fuzzed against their own OpenAPI documents, as running processes.

schemathesis reads each document and sends what it describes and what it does not: the
boundary values of every parameter and body (coverage), random ones (fuzzing), and chains of
calls that carry one answer's ids into the next request (stateful, over the links it infers
from the documents). Every answer must be one the document describes: no 5xx, a status the
operation lists, a body and content type that match it. The sidecar runs as the Tauri shell
starts it, the sync server on the test PostgreSQL; runs are seeded and bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fuzz import Fuzz, failures
from tests.support.seed import PASSWORD, QR_JSON, photo_jpeg, seed_device
from tests.support.sidecar import SidecarProcess
from tests.support.sync_fixtures import Running
from tests.support.sync_harness import ServerProcess, seed_site

# The server serves its document only when asked to.
API_DOCS = {"KENSA_SERVER_API_DOCS": "1"}

SIDECAR_EXCLUDED = (
    # An event stream: it answers 200 and then never ends, so there is no response to check.
    "/events",
    # Points the tablet at another server and checks the token there: a fuzzed URL is a
    # connection to anywhere. Its refusals are covered in tests/test_sync_api.py.
    "/sync/connect",
    # Ends the login every other request of the run is made under.
    "/auth/logout",
)


def _sidecar_document(data_dir: Path) -> dict[str, Any]:
    from sidecar.app import create_app
    from sidecar.settings import Settings

    return create_app(Settings(token="x", ui_dist=None, data_dir=data_dir)).openapi()


def _server_document(data_dir: Path) -> dict[str, Any]:
    from sync.server.app import create_app
    from sync.server.settings import ServerSettings

    return create_app(ServerSettings(data_dir=data_dir, api_docs=True)).openapi()


@pytest.mark.parametrize(
    ("build", "error_schema", "public"),
    [
        (_sidecar_document, "ErrorPublic", {("get", "/health")}),
        (_server_document, "ErrorResponse", {("get", "/health"), ("get", "/sync/v1/ping")}),
    ],
    ids=["sidecar", "server"],
)
def test_every_error_status_is_documented_as_the_error_body_sent(
    build: Callable[[Path], dict[str, Any]], error_schema: str, public: set[tuple[str, str]],
    tmp_path: Path,
) -> None:
    doc = build(tmp_path)
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    body = doc["components"]["schemas"][error_schema]
    assert body["required"] == ["error"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]
    ref = {"$ref": f"#/components/schemas/{error_schema}"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {s: r for s, r in responses.items() if int(s) >= 400}
            for status, response in errors.items():
                assert response["content"]["application/json"]["schema"] == ref, (
                    method, path, status)
            if (method, path) in public:
                continue
            assert "401" in errors, (method, path)
            if operation.get("parameters") or "requestBody" in operation:
                assert {"400", "422"} <= errors.keys(), (method, path)


def _assert_clean(fuzz: Fuzz) -> None:
    result = fuzz.run()
    output = result.stdout + result.stderr
    assert result.returncode == 0, failures(output)
    # A run that tested nothing passes too: make sure it reached the operations.
    assert "API Operations:" in output and "Tested: 0" not in output, output[-3000:]


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "device" / "kensa.db")
    # No AI workers: loading ONNX Runtime would take the two cores the run needs; the AI routes
    # answer their documented refusal instead.
    proc = SidecarProcess(tmp_path / "device", env={"KENSA_AI_WORKERS": "0"})
    proc.start()
    yield proc
    proc.kill()


def _sidecar_records(client: httpx.Client) -> dict[str, list[str]]:
    """Two open inspections, one with a photo: real ids for the fuzzer's path parameters."""
    sessions, items, images = [], [], []
    for _ in range(2):
        started = client.post("/sessions", json={"qr_code": QR_JSON})
        assert started.status_code == 201, started.text
        sessions.append(started.json()["id"])
        items += [i["item_id"] for i in started.json()["items"]]
    photo = client.post(
        f"/sessions/{sessions[0]}/items/{items[0]}/images",
        files={"file": ("p.jpg", photo_jpeg(3), "image/jpeg")},
    )
    assert photo.status_code == 201, photo.text
    images.append(photo.json()["id"])
    return {"session_id": sessions, "item_id": sorted(set(items)), "image_id": images}


@pytest.mark.slow
def test_sidecar_answers_as_its_openapi_document_says(
    sidecar: SidecarProcess, tmp_path: Path
) -> None:
    with sidecar.client() as client:
        login = client.post("/auth/login", json={"username": "tanaka", "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.headers["X-Kensa-Session"] = login.json()["token"]
        known = _sidecar_records(client)
        headers = {
            "Authorization": f"Bearer {sidecar.token}",
            "X-Kensa-Session": login.json()["token"],
        }
    _assert_clean(Fuzz(
        sidecar.base_url, tmp_path / "fuzz", headers=headers, known_ids=known,
        exclude_paths=SIDECAR_EXCLUDED,
    ))


@pytest.fixture
def server(pg_url: str, tmp_path: Path) -> Iterator[Running]:
    files = tmp_path / "files"
    site = seed_site(pg_url, files.as_uri(), model_bytes=10_000)
    with ServerProcess(pg_url, tmp_path / "server", storage=files.as_uri(),
                       extra_env=API_DOCS) as process:
        yield Running(site, process, files)


@pytest.mark.slow
@pytest.mark.postgres
def test_sync_api_answers_as_the_servers_openapi_document_says(
    server: Running, tmp_path: Path
) -> None:
    assert server.site.model_sha is not None
    _assert_clean(Fuzz(
        server.url, tmp_path / "fuzz", include_path_regex="^/sync/v1/",
        headers={"Authorization": f"Bearer {server.access('TAB-01')}"},
        # The one route that takes the device's own token, to hand out access tokens.
        path_headers={"/sync/v1/auth": {"Authorization": f"Bearer {server.site.tokens['TAB-01']}"}},
        known_ids={"sha256": [server.site.model_sha]},
    ))


@pytest.mark.slow
@pytest.mark.postgres
def test_admin_api_answers_as_the_servers_openapi_document_says(
    server: Running, tmp_path: Path
) -> None:
    _assert_clean(Fuzz(
        server.url, tmp_path / "fuzz", include_path_regex="^/(admin/v1/|health)",
        basic_auth=("admin", "admin-pass"),
        known_ids={
            "ref": ["BRK-100", "PMP-220", "tanaka", "suzuki"],
            "item": ["V-SCRATCH", "D-BORE"],
            "sha256": [server.site.model_sha or ""],
        },
    ))
