"""Camera calibration: the scale from a photo of a checkerboard or a ring of known size (a pure
function, checked on generated photos of known scale), and a supervisor's calibration photo
taken through the real sidecar changing the bore measurement as the scales say."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from schema.db import Database, create_sqlite_engine
from scripts.devkit import synthetic
from sidecar import calibration as cal
from sidecar.services import auth
from tests.support.ai_jobs import analyse
from tests.support.seed import PASSWORD, QR_JSON, seed_device
from tests.support.sidecar import SidecarProcess

# --- the scale from a photo (pure) -------------------------------------------------------------

# (case, photo, method, reference size in mm, corners, true mm per px)
GOOD: list[tuple[str, Any, str, float, tuple[int, int] | None, float]] = [
    ("checkerboard 5 mm at 0.05", lambda: synthetic.make_checkerboard(5.0, 1, 0.05),
     "checkerboard", 5.0, (7, 5), 0.05),
    ("checkerboard 5 mm at 0.04", lambda: synthetic.make_checkerboard(5.0, 2, 0.04),
     "checkerboard", 5.0, (7, 5), 0.04),
    ("checkerboard 4 mm at 0.065", lambda: synthetic.make_checkerboard(4.0, 3, 0.065),
     "checkerboard", 4.0, (7, 5), 0.065),
    ("checkerboard 10 × 7 squares", lambda: synthetic.make_checkerboard(
        3.0, 4, 0.05, squares=(10, 7), size=(960, 720)), "checkerboard", 3.0, (9, 6), 0.05),
    ("checkerboard as a JPEG", lambda: synthetic.make_checkerboard(5.0, 5, 0.05),
     "checkerboard-jpeg", 5.0, (7, 5), 0.05),
    ("ring 12 mm at 0.05", lambda: synthetic.make_bore(12.0, 1, 0.05), "ring", 12.0, None, 0.05),
    ("ring 12 mm at 0.04", lambda: synthetic.make_bore(12.0, 2, 0.04, size=(480, 480)), "ring",
     12.0, None, 0.04),
    ("ring 8 mm at 0.03", lambda: synthetic.make_bore(8.0, 3, 0.03, size=(400, 400)), "ring",
     8.0, None, 0.03),
]


@pytest.mark.parametrize(("name", "photo", "method", "size", "corners", "truth"), GOOD,
                         ids=[c[0] for c in GOOD])
def test_the_scale_of_a_reference_of_known_size(name: str, photo: Any, method: str, size: float,
                                                corners: tuple[int, int] | None,
                                                truth: float) -> None:
    ext = ".jpg" if method.endswith("-jpeg") else ".png"
    data = synthetic.encode(photo(), ext)
    cols, rows = corners or (None, None)
    scale = cal.from_photo(data, method.removesuffix("-jpeg"), size, columns=cols, rows=rows)
    # A tenth of a percent: 0.012 mm on a 12 mm bore, a quarter of its tolerance.
    assert scale.mm_per_px == pytest.approx(truth, rel=1e-3)
    assert scale.reference_px == pytest.approx(size / truth, rel=1e-3)
    assert scale.method == method.removesuffix("-jpeg") and scale.reference_mm == size


BAD: list[tuple[str, Any, str, float, tuple[int, int] | None, str]] = [
    ("a slanted board", lambda: synthetic.make_checkerboard(5.0, 1, 0.05, slant=0.15),
     "checkerboard", 5.0, (7, 5), "flat and square"),
    ("other corner counts", lambda: synthetic.make_checkerboard(5.0, 1, 0.05),
     "checkerboard", 5.0, (9, 7), "no checkerboard of 9 × 7"),
    ("no board", lambda: synthetic.make_surface(1, None), "checkerboard", 5.0, (7, 5),
     "no checkerboard"),
    ("squares too small", lambda: synthetic.make_checkerboard(1.0, 1, 0.1), "checkerboard",
     1.0, (7, 5), "closer"),
    ("board without corners given", lambda: synthetic.make_checkerboard(5.0, 1), "checkerboard",
     5.0, None, "columns and rows"),
    ("no ring", lambda: np.full((300, 300, 3), 200, np.uint8), "ring", 12.0, None, "no ring"),
    ("size zero", lambda: synthetic.make_bore(12.0, 1), "ring", 0.0, None, "above 0"),
    ("size negative", lambda: synthetic.make_checkerboard(5.0, 1), "checkerboard", -5.0,
     (7, 5), "above 0"),
    ("unknown method", lambda: synthetic.make_bore(12.0, 1), "laser", 12.0, None,
     "checkerboard, ring"),
]


@pytest.mark.parametrize(("name", "photo", "method", "size", "corners", "message"), BAD,
                         ids=[c[0] for c in BAD])
def test_a_photo_that_gives_no_scale_is_refused_saying_why(
        name: str, photo: Any, method: str, size: float, corners: tuple[int, int] | None,
        message: str) -> None:
    cols, rows = corners or (None, None)
    with pytest.raises(cal.CalibrationInvalid, match=message) as err:
        cal.from_photo(synthetic.encode(photo()), method, size, columns=cols, rows=rows)
    assert err.value.status_code == 422 and err.value.code == "calibration_invalid"


def test_bytes_that_are_no_photo_are_refused() -> None:
    with pytest.raises(cal.CalibrationInvalid, match="does not open"):
        cal.from_photo(b"not a photo", "ring", 12.0)


# --- a supervisor calibrates; the bore measurement follows ---------------------------------------


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    seed_device(tmp_path / "kensa.db")
    db = Database(create_sqlite_engine(tmp_path / "kensa.db"))
    try:
        with db.atomic() as session:
            auth.add_user(session, "suzuki", PASSWORD, role="supervisor")
    finally:
        db.dispose()
    proc = SidecarProcess(tmp_path)
    proc.start()
    yield proc
    proc.kill()


def _login(client: httpx.Client, username: str) -> None:
    r = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-Kensa-Session"] = r.json()["token"]


def _png(image: Any) -> dict[str, Any]:
    return {"content": synthetic.encode(image), "headers": {"Content-Type": "image/png"}}


def _rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "kensa.db") as conn:
        return int(conn.execute("SELECT count(*) FROM calibrations").fetchone()[0])


def _assert_scale_from(result: dict[str, Any], calibration: dict[str, Any]) -> None:
    """The result names the calibration its scale came from: its id, its time, its value."""
    used = result["detailed_results"]["scales"]["bore"]
    assert used["source"] == "calibration" and used["camera"] == "default"
    assert used["calibration_id"] == calibration["id"]
    assert used["mm_per_px"] == calibration["mm_per_px"]
    at = datetime.fromisoformat(used["calibrated_at"])
    taken = datetime.fromisoformat(calibration["created_at"])
    assert at.replace(tzinfo=at.tzinfo or UTC) == taken.replace(tzinfo=taken.tzinfo or UTC)


def test_a_calibration_photo_changes_the_bore_measurement_as_expected(
        sidecar: SidecarProcess) -> None:
    board = "/calibrations?method=checkerboard&size_mm=5&columns=7&rows=5"
    with sidecar.client() as inspector, sidecar.client() as supervisor:
        _login(inspector, "tanaka")
        _login(supervisor, "suzuki")
        started = inspector.post("/sessions", json={"qr_code": QR_JSON})
        assert started.status_code == 201, started.text
        sid = started.json()["id"]
        item = next(i["item_id"] for i in started.json()["items"] if i["item_code"] == "D-BORE")
        seeds = iter(range(7, 100))

        def measured() -> dict[str, Any]:
            """A new photo of a 12.00 mm bore, taken at 0.05 mm per pixel (the scale the
            pipeline assumes), measured: a calibration applies from the next photo on."""
            bore = synthetic.encode(synthetic.make_bore(12.0, next(seeds), 0.05), ".png")
            up = inspector.post(f"/sessions/{sid}/items/{item}/images", content=bore,
                                headers={"Content-Type": "image/png"})
            assert up.status_code == 201, up.text
            return analyse(inspector, sid, item, up.json()["id"])

        # Not calibrated: the pipeline's nominal scale.
        first = measured()
        assert first["measurements"]["bore_mm"] == pytest.approx(12.0, abs=0.01)
        assert first["overall_result"] == "OK"
        # The result says which scale made its millimetres: here the pipeline's nominal one.
        assert first["detailed_results"]["scales"] == {"bore": {
            "mm_per_px": 0.05, "camera": "default", "source": "pipeline",
            "calibration_id": None, "calibrated_at": None}}

        # An inspector may not calibrate: refused, nothing stored.
        refused = inspector.post(board, **_png(synthetic.make_checkerboard(5.0, 1, 0.06)))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden_role"
        # A photo with no board on it: said why, nothing stored.
        blank = supervisor.post(board, **_png(synthetic.make_surface(1, None)))
        assert blank.status_code == 422, blank.text
        assert blank.json()["error"]["code"] == "calibration_invalid"
        assert _rows(sidecar.data_dir) == 0

        # The supervisor's board says the camera sees 0.06 mm per pixel (it was moved back):
        # the same photo's bore is 12.00 × 0.06 / 0.05 = 14.40 mm, out of tolerance.
        taken = supervisor.post(board, **_png(synthetic.make_checkerboard(5.0, 1, 0.06)))
        assert taken.status_code == 201, taken.text
        assert taken.json()["mm_per_px"] == pytest.approx(0.06, rel=1e-3)
        assert taken.json()["camera_id"] == "default" and taken.json()["method"] == "checkerboard"
        second = measured()
        assert second["measurements"]["bore_mm"] == pytest.approx(
            12.0 * taken.json()["mm_per_px"] / 0.05, abs=0.01)
        assert second["measurements"]["bore_mm"] == pytest.approx(14.4, abs=0.03)
        assert second["overall_result"] == "NG"
        _assert_scale_from(second, taken.json())

        # A gauge ring of 12 mm photographed at 0.05 mm per pixel puts it back.
        ring = supervisor.post("/calibrations?method=ring&size_mm=12",
                               **_png(synthetic.make_bore(12.0, 11, 0.05)))
        assert ring.status_code == 201, ring.text
        third = measured()
        assert third["measurements"]["bore_mm"] == pytest.approx(12.0, abs=0.01)
        assert third["overall_result"] == "OK"
        _assert_scale_from(third, ring.json())

        # Both are listed, the newest the camera's scale; anyone working the line may see them.
        listed = inspector.get("/calibrations")
        assert listed.status_code == 200, listed.text
        assert listed.json()["current"] == {"default": pytest.approx(0.05, rel=1e-3)}
        assert [r["id"] for r in listed.json()["recent"]] == [ring.json()["id"],
                                                             taken.json()["id"]]
    assert _rows(sidecar.data_dir) == 2
    # Each calibration is in the audit trail with what was measured.
    with sqlite3.connect(sidecar.data_dir / "kensa.db") as conn:
        entries = conn.execute(
            "SELECT username, detail FROM audit_log WHERE entity = 'calibration' "
            "ORDER BY seq").fetchall()
    assert [e[0] for e in entries] == ["suzuki", "suzuki"]
    assert '"method": "ring"' in entries[1][1] or '"method":"ring"' in entries[1][1]
