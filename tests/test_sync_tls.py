"""The tablet's sync in transit, against real TLS servers: the sync server (uvicorn) serving a
certificate this test issues from its own CA, and a bare TLS listener that records every byte it
is sent, to prove what never left the tablet.

https with the factory's CA connects and syncs; a public-key pin that matches works, one that does
not stops the connection before the device token is written; an expired certificate, an unknown
CA and plain http to another machine are each refused with their own code, at connect and at
sync time, and a refused connect changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from schema.db import Database
from sync.device import config
from sync.device.api import authorize_connect, router
from sync.device.service import SyncService
from sync.errors import CertificateRejected, InsecureUrl, InvalidRequest, Offline
from tests.support.sync_harness import ServerProcess, Site, seed_site

KENSA = str(Path(sys.executable).with_name("kensa"))


# --- a CA of the test's own, and the certificates it issues ------------------------------------


@dataclass
class Pki:
    ca: Path
    cert: Path  # valid for 127.0.0.1 and localhost
    key: Path
    expired: Path  # same key, validity ended yesterday
    spki_sha256: bytes
    other_spki_sha256: bytes  # a key the server does not have


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name,
           key: ec.EllipticCurvePrivateKey, start: datetime, end: datetime) -> bytes:
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kensa sync test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kensa test factory CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _key()
    paths = Pki(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server.key",
                expired=folder / "expired.pem", spki_sha256=_spki(server_key),
                other_spki_sha256=_spki(_key()))
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(_issue(ca_key, ca_name, server_key, now - timedelta(days=1),
                                  now + timedelta(days=10)))
    paths.expired.write_bytes(_issue(ca_key, ca_name, server_key, now - timedelta(days=20),
                                     now - timedelta(days=1)))
    paths.key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


# --- the real sync server over TLS --------------------------------------------------------------


@dataclass
class TlsSite:
    site: Site
    server: ServerProcess

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    @property
    def token(self) -> str:
        return self.site.tokens["TAB-01"]


def _site(folder: Path) -> Site:
    files = folder / "files"
    (folder / "server").mkdir(parents=True, exist_ok=True)
    return seed_site(f"sqlite:///{folder / 'server' / 'server.db'}", files.as_uri())


def _serve(site: Site, folder: Path, cert: Path, key: Path) -> ServerProcess:
    return ServerProcess(
        site.database_url, folder / "server", storage=(folder / "files").as_uri(),
        extra_env={"KENSA_SERVER_TLS_CERT": str(cert), "KENSA_SERVER_TLS_KEY": str(key)},
    )


@pytest.fixture(scope="module")
def tls_site(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    folder = tmp_path_factory.mktemp("tls-site")
    site = _site(folder)
    with _serve(site, folder, pki.cert, pki.key) as server:
        yield TlsSite(site, server)


def service(db: Database, home: Path, *, ca: Path | None, allow_http: bool = False
            ) -> SyncService:
    return SyncService(db, home, "0.1.0", ca_bundle=ca, allow_http=allow_http)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# --- a TLS listener that records what it is sent ------------------------------------------------


@dataclass
class Recorder:
    """Accepts TLS connections with the server's certificate and keeps every byte a client
    writes after the handshake; answers 503 to whatever it got."""

    pki: Pki
    received: list[bytes] = field(default_factory=list)
    handshakes: int = 0

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(self.pki.cert, self.pki.key)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            with raw:
                raw.settimeout(2.0)
                try:
                    conn = self._context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    continue
                self.handshakes += 1
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                except (ssl.SSLError, OSError):
                    pass
                self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def recorder(pki: Pki) -> Iterator[Recorder]:
    rec = Recorder(pki)
    try:
        yield rec
    finally:
        rec.close()


# --- the tests ---------------------------------------------------------------------------------


def test_https_with_the_factory_ca_connects_and_syncs(
    device_db: Database, tmp_path: Path, pki: Pki, tls_site: TlsSite
) -> None:
    sync = service(device_db, tmp_path, ca=pki.ca)
    try:
        assert sync.connect(tls_site.url, tls_site.token).verified
        report = sync.run_once()
        assert report.ok, report.error
        assert report.pulled > 0  # the site's users and masters came over TLS
        status = sync.status()
        assert status.server_url == tls_site.url and status.server_pin is None
        assert status.last_error_kind is None
    finally:
        sync.stop()


def test_a_certificate_from_an_unknown_ca_is_refused_and_nothing_stored(
    device_db: Database, tmp_path: Path, tls_site: TlsSite
) -> None:
    sync = service(device_db, tmp_path, ca=None)  # the public CAs only
    with pytest.raises(CertificateRejected) as refused:
        sync.connect(tls_site.url, tls_site.token)
    assert refused.value.code == "tls_untrusted"
    assert "KENSA_CA_BUNDLE" in refused.value.message
    assert sync.status().configured is False


@pytest.mark.parametrize("spelling", ["hex", "colons", "base64", "hpkp"])
def test_the_right_pin_in_any_spelling_connects_and_is_kept(
    device_db: Database, tmp_path: Path, pki: Pki, tls_site: TlsSite, spelling: str
) -> None:
    digest = pki.spki_sha256
    pin = {
        "hex": digest.hex(),
        "colons": ":".join(f"{b:02X}" for b in digest),
        "base64": b64(digest),
        "hpkp": f"sha256/{b64(digest)}",
    }[spelling]
    sync = service(device_db, tmp_path, ca=pki.ca)
    try:
        assert sync.connect(tls_site.url, tls_site.token, pin=pin).verified
        assert sync.status().server_pin == b64(digest)
        with device_db.read() as session:
            stored = config.load(session)
        assert stored is not None and stored.pin == digest.hex()
        report = sync.run_once()
        assert report.ok, report.error
    finally:
        sync.stop()


def test_a_wrong_pin_is_refused_at_connect_and_nothing_stored(
    device_db: Database, tmp_path: Path, pki: Pki, tls_site: TlsSite
) -> None:
    sync = service(device_db, tmp_path, ca=pki.ca)
    with pytest.raises(CertificateRejected) as refused:
        sync.connect(tls_site.url, tls_site.token, pin=b64(pki.other_spki_sha256))
    assert refused.value.code == "tls_pin_mismatch"
    assert refused.value.detail["pinned"] == b64(pki.other_spki_sha256)
    assert refused.value.detail["seen"] == b64(pki.spki_sha256)
    assert sync.status().configured is False


@pytest.mark.parametrize("pin", ["abc", "z" * 64, b64(b"short"), "sha256/" + "A" * 10])
def test_a_pin_that_is_not_a_sha256_is_refused_before_any_connection(
    device_db: Database, tmp_path: Path, recorder: Recorder, pin: str
) -> None:
    sync = service(device_db, tmp_path, ca=None)
    with pytest.raises(InvalidRequest) as refused:
        sync.connect(recorder.url, "kd_secret", pin=pin)
    assert refused.value.code == "pin_invalid"
    assert recorder.handshakes == 0


def test_the_token_never_reaches_a_server_whose_key_does_not_match_the_pin(
    device_db: Database, tmp_path: Path, pki: Pki, recorder: Recorder
) -> None:
    token = "kd_" + "s3cr3t" * 6
    sync = service(device_db, tmp_path, ca=pki.ca)
    # At connect.
    with pytest.raises(CertificateRejected) as refused:
        sync.connect(recorder.url, token, pin=b64(pki.other_spki_sha256))
    assert refused.value.code == "tls_pin_mismatch"
    # At sync time, with the pin stored (the server's key changed since the connect).
    with device_db.atomic() as session:
        config.swap(session, recorder.url, SecretStr(token), "dev-1", "TAB-01",
                    pin=pki.other_spki_sha256.hex())
    report = sync.run_once()
    assert not report.ok and report.error_kind == "tls_pin_mismatch"
    assert sync.status().last_error_kind == "tls_pin_mismatch"
    # The handshakes happened (the refusal is the pin's, not a dead port) and not one byte of
    # a request followed them.
    assert recorder.handshakes >= 2
    assert recorder.received and all(data == b"" for data in recorder.received)

    # The same listener with the right pin does receive the request and its token: it would
    # have seen one.
    with device_db.atomic() as session:
        config.swap(session, recorder.url, SecretStr(token), "dev-1", "TAB-01",
                    pin=pki.spki_sha256.hex())
    assert not sync.run_once().ok  # the listener answers 503
    assert any(token.encode() in data for data in recorder.received)
    sync.stop()


def test_an_expired_certificate_is_refused_with_its_own_code(
    device_db: Database, tmp_path: Path, pki: Pki, tls_site: TlsSite
) -> None:
    folder = tmp_path / "expired-site"
    with _serve(tls_site.site, folder, pki.expired, pki.key) as expired:
        url = f"https://localhost:{expired.port}"
        sync = service(device_db, tmp_path, ca=pki.ca)
        with pytest.raises(CertificateRejected) as refused:
            sync.connect(url, tls_site.token)
        assert refused.value.code == "tls_expired"
        assert "expired" in refused.value.message
        assert sync.status().configured is False

        # A stored connection whose server's certificate has since expired: the run says so.
        with device_db.atomic() as session:
            config.swap(session, url, SecretStr(tls_site.token), "dev-1", "TAB-01")
        report = sync.run_once()
        assert not report.ok and report.error_kind == "tls_expired"


def test_plain_http_to_another_machine_is_refused_at_connect_and_at_sync(
    device_db: Database, tmp_path: Path
) -> None:
    sync = service(device_db, tmp_path, ca=None)
    url = "http://kensa-server.invalid:8400"
    with pytest.raises(InsecureUrl) as refused:
        sync.connect(url, "kd_secret")
    assert refused.value.code == "insecure_url" and "https://" in refused.value.message
    assert sync.status().configured is False

    # A URL stored before this check (an older version) stops the run, with nothing sent.
    with device_db.atomic() as session:
        config.swap(session, url, SecretStr("kd_secret"), "dev-1", "TAB-01")
    report = sync.run_once()
    assert not report.ok and report.error_kind == "insecure_url"
    assert sync.status().last_error_kind == "insecure_url"


def test_the_development_flag_allows_plain_http(device_db: Database, tmp_path: Path) -> None:
    sync = service(device_db, tmp_path, ca=None, allow_http=True)
    # Past the scheme check: the name does not resolve, so the tablet is offline.
    with pytest.raises(Offline):
        sync.connect("http://kensa-server.invalid:8400", "kd_secret")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST."])
def test_plain_http_to_this_machine_stays_allowed(
    device_db: Database, tmp_path: Path, host: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sync = service(device_db, tmp_path, ca=None)
    # Nothing listens there: the refusal is the network's, not the scheme check's.
    with pytest.raises(Offline):
        sync.connect(f"http://{host}:{port}", "kd_secret")


# --- the settings screen's API and the CLI -----------------------------------------------------


def test_the_connect_api_answers_each_refusal_with_its_code(
    device_db: Database, tmp_path: Path, pki: Pki, tls_site: TlsSite
) -> None:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[authorize_connect] = lambda: None
    app.state.sync = service(device_db, tmp_path, ca=pki.ca)
    client = TestClient(app)

    def connect(**body: str) -> httpx.Response:
        answer: httpx.Response = client.post(
            "/sync/connect", json={"token": tls_site.token, **body})
        return answer

    insecure = connect(server_url="http://kensa.example:8400")
    assert insecure.status_code == 400
    assert insecure.json()["error"]["code"] == "insecure_url"
    bad_pin = connect(server_url=tls_site.url, server_pin="not-a-pin")
    assert bad_pin.status_code == 400 and bad_pin.json()["error"]["code"] == "pin_invalid"
    wrong_pin = connect(server_url=tls_site.url, server_pin=b64(pki.other_spki_sha256))
    assert wrong_pin.status_code == 502
    assert wrong_pin.json()["error"]["code"] == "tls_pin_mismatch"
    assert client.get("/sync/status").json()["configured"] is False

    right = connect(server_url=tls_site.url, server_pin=b64(pki.spki_sha256))
    assert right.status_code == 200, right.text
    assert client.get("/sync/status").json()["server_pin"] == b64(pki.spki_sha256)
    # Connecting again without a pin drops it: the pin belongs to the connection.
    assert connect(server_url=tls_site.url, server_pin="").status_code == 200
    assert client.get("/sync/status").json()["server_pin"] is None


def test_kensa_device_connect_takes_a_pin_and_the_factory_ca(
    tmp_path: Path, pki: Pki, tls_site: TlsSite
) -> None:
    device = tmp_path / "tab"

    def kensa(*args: str, ca: Path | None = pki.ca) -> subprocess.CompletedProcess[str]:
        env = {**_plain_env(), **({"KENSA_CA_BUNDLE": str(ca)} if ca else {})}
        return subprocess.run([KENSA, "device", *args, "--data-dir", str(device)],
                              capture_output=True, text=True, timeout=120, env=env)

    wrong = kensa("connect", "--server", tls_site.url, "--token", tls_site.token,
                  "--pin", pki.other_spki_sha256.hex())
    assert wrong.returncode == 2 and "tls_pin_mismatch" in wrong.stderr
    untrusted = kensa("connect", "--server", tls_site.url, "--token", tls_site.token, ca=None)
    assert untrusted.returncode == 2 and "tls_untrusted" in untrusted.stderr
    right = kensa("connect", "--server", tls_site.url, "--token", tls_site.token,
                  "--pin", pki.spki_sha256.hex())
    assert right.returncode == 0, right.stderr
    synced = kensa("sync-now")
    assert synced.returncode == 0, synced.stdout + synced.stderr


def _plain_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KENSA_")}
    env["KENSA_PLAINTEXT"] = "1"
    return env
