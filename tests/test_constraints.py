"""The database itself refuses impossible data, whatever code writes it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from schema import device as d
from schema import server as s
from schema.db import Database, create_engine
from schema.formats import workflow as moves
from schema.migrate import upgrade_server
from sidecar.jobs import states as job_states


def _master(db: Database) -> tuple[str, str]:
    with db.atomic() as session:
        session.add(
            d.InspectionTargetMaster(
                id="t1", product_code="BRK-100", product_name="キャリパー", version="3"
            )
        )
        session.add(
            d.InspectionItemMaster(
                id="i1",
                target_id="t1",
                item_code="V-SCRATCH",
                item_name="外観キズ",
                inspection_type="VISUAL",
                criteria={},
                order_sequence=1,
            )
        )
    return "t1", "i1"


def _job(db: Database) -> str:
    with db.atomic() as session:
        session.add(
            d.InspectionTarget(id="u1", product_id="BRK-100", batch_id="A12-3456", qr_code="x")
        )
        session.add(d.InspectionSession(id="s1", target_id="u1"))
        session.add(
            d.InspectionImage(
                id="img1", session_id="s1", file_path="a.jpg", sha256="a" * 64, file_size=1
            )
        )
        session.add(
            d.AnalysisJob(id="j1", image_id="img1", pipeline_id="p", pipeline_version=1, position=1)
        )
    return "j1"


@pytest.mark.parametrize(
    "value,ok", [(-0.01, False), (0, True), (55.5, True), (100, True), (100.01, False)]
)
def test_progress_is_between_0_and_100(device_db: Database, value: float, ok: bool) -> None:
    job = _job(device_db)
    row = d.ProgressLog(job_id=job, progress_percentage=value, current_stage="preprocessing")
    if ok:
        with device_db.atomic() as session:
            session.add(row)
    else:
        with (
            pytest.raises(sa.exc.IntegrityError, match="ck_progress_range"),
            device_db.atomic() as session,
        ):
            session.add(row)


@pytest.mark.parametrize("scale", [0.0, -0.02])
def test_calibration_scale_is_positive(device_db: Database, scale: float) -> None:
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_calibrations_scale"),
        device_db.atomic() as session,
    ):
        session.add(d.Calibration(camera_id="cam0", mm_per_px=scale))


@pytest.mark.parametrize("sequence", [0, -1])
def test_item_order_sequence_is_positive(device_db: Database, sequence: int) -> None:
    _master(device_db)
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_items_order_sequence"),
        device_db.atomic() as session,
    ):
        session.add(
            d.InspectionItemMaster(
                id="i2",
                target_id="t1",
                item_code="D-BORE",
                item_name="穴径",
                inspection_type="DIMENSION",
                criteria={},
                order_sequence=sequence,
            )
        )


def test_job_position_and_pipeline_version_are_positive(device_db: Database) -> None:
    _job(device_db)
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_jobs_position"),
        device_db.atomic() as session,
    ):
        session.add(d.AnalysisJob(image_id="img1", pipeline_id="q", pipeline_version=1, position=0))
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_pipelines_version"),
        device_db.atomic() as session,
    ):
        session.add(d.Pipeline(id="p0", name="x", definition={}, version=0))


def test_item_codes_are_unique_per_target_on_the_device(device_db: Database) -> None:
    _master(device_db)
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"), device_db.atomic() as session:
        session.add(
            d.InspectionItemMaster(
                id="i9",
                target_id="t1",
                item_code="V-SCRATCH",
                item_name="dup",
                inspection_type="VISUAL",
                criteria={},
                order_sequence=2,
            )
        )
    # The same code under another target is fine.
    with device_db.atomic() as session:
        session.add(
            d.InspectionTargetMaster(
                id="t2", product_code="PMP-220", product_name="ポンプ", version="1"
            )
        )
        session.add(
            d.InspectionItemMaster(
                id="i10",
                target_id="t2",
                item_code="V-SCRATCH",
                item_name="ok",
                inspection_type="VISUAL",
                criteria={},
                order_sequence=1,
            )
        )


def test_foreign_keys_are_enforced_on_the_device(device_db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), device_db.atomic() as session:
        session.add(d.InspectionSession(id="s-orphan", target_id="no-such-target"))
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), device_db.atomic() as session:
        session.add(d.InspectionImage(session_id="no-such-session", file_path="x", sha256="b" * 64))


def test_outbox_operation_and_sequence(device_db: Database) -> None:
    with device_db.atomic() as session:
        a = d.Outbox(entity_type="inspection_session", entity_id="s", operation="INSERT", data={})
        session.add(a)
        session.flush()
        first = a.seq
        session.delete(a)
    with device_db.atomic() as session:
        b = d.Outbox(entity_type="inspection_session", entity_id="s", operation="INSERT", data={})
        session.add(b)
        session.flush()
        # AUTOINCREMENT: a deleted (pushed) sequence number is never handed out again.
        assert first is not None and b.seq is not None and b.seq > first
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_outbox_operation"),
        device_db.atomic() as session,
    ):
        session.add(d.Outbox(entity_type="x", entity_id="x", operation="UPSERT", data={}))


def test_naive_datetimes_are_refused(device_db: Database) -> None:
    with (
        pytest.raises(sa.exc.StatementError, match="naive datetime"),
        device_db.atomic() as session,
    ):
        session.add(d.SystemConfig(key="k", value="v", updated_at=datetime(2026, 11, 27, 8, 0)))


def test_timestamps_come_back_as_utc(device_db: Database) -> None:
    when = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    with device_db.atomic() as session:
        session.add(d.SystemConfig(key="k", value="v", updated_at=when))
    with device_db.read() as session:
        row = session.get(d.SystemConfig, "k")
        assert row is not None and row.updated_at == when and row.updated_at.tzinfo is not None


# --- the server, on a real PostgreSQL ---------------------------------------------------------


@pytest.fixture
def pg_session(pg_url: str) -> Iterator[Session]:
    upgrade_server(pg_url)
    engine = create_engine(pg_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.mark.postgres
def test_server_item_codes_are_unique_per_target(pg_session: Session) -> None:
    target = s.InspectionTargetMaster(
        product_code="BRK-100", product_name="キャリパー", version="3"
    )
    pg_session.add(target)
    pg_session.flush()
    for code in ("V-SCRATCH", "V-SCRATCH"):
        pg_session.add(
            s.InspectionItemMaster(
                target_id=target.id,
                item_code=code,
                item_name="x",
                inspection_type="VISUAL",
                criteria={"judgment_type": "THRESHOLD"},
                order_sequence=1,
            )
        )
    with pytest.raises(sa.exc.IntegrityError, match="uq_items_target_item_code"):
        pg_session.flush()


@pytest.mark.postgres
def test_server_foreign_keys_and_checks(pg_session: Session) -> None:
    pg_session.add(
        s.InspectionItemMaster(
            target_id=uuid.uuid4(),
            item_code="X",
            item_name="x",
            inspection_type="VISUAL",
            criteria={},
            order_sequence=1,
        )
    )
    pg_session.flush()  # keys are deferred: checked when the unit of work commits
    with pytest.raises(sa.exc.IntegrityError, match="foreign key"):
        pg_session.commit()
    pg_session.rollback()
    pg_session.add(s.Pipeline(name="p", definition={}, version=0))
    with pytest.raises(sa.exc.IntegrityError, match="ck_pipelines_version"):
        pg_session.flush()
    pg_session.rollback()
    pg_session.add(
        s.TauriSyncQueue(
            device_id="TAB-01",
            device_type="tablet",
            app_version="0.1.0",
            entity_type="x",
            entity_id=uuid.uuid4(),
            operation="INSERT",
            data={},
            op_id=uuid.uuid4(),
            seq=0,
        )
    )
    with pytest.raises(sa.exc.IntegrityError, match="ck_sync_queue_seq"):
        pg_session.flush()


@pytest.mark.postgres
def test_server_queue_deduplicates_by_operation_id(pg_session: Session) -> None:
    op_id = uuid.uuid4()
    for seq in (1, 2):
        pg_session.add(
            s.TauriSyncQueue(
                device_id="TAB-01",
                device_type="tablet",
                app_version="0.1.0",
                entity_type="x",
                entity_id=uuid.uuid4(),
                operation="INSERT",
                data={"a": 1},
                op_id=op_id,
                seq=seq,
            )
        )
    with pytest.raises(sa.exc.IntegrityError, match="op_id"):
        pg_session.flush()


# --- the inspection's states: the device database holds exactly the move table's -------------

_CHECK = re.compile(r"CONSTRAINT (\w+) CHECK \((.*?)\),?\s*$", re.MULTILINE)


def _checks(device_db: Database, table: str) -> dict[str, str]:
    """The CHECK constraints of a migrated table, as SQLite stores its DDL."""
    with device_db.read() as session:
        ddl = session.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
            {"t": table},
        ).scalar_one()
    return dict(_CHECK.findall(ddl))


def _listed(condition: str, column: str) -> tuple[str, ...]:
    found = re.search(rf"\b{column} IN \(([^)]*)\)", condition)
    assert found is not None, condition
    return tuple(v.strip().strip("'") for v in found.group(1).split(","))


@pytest.mark.parametrize(
    "table,constraint,column,values",
    [
        ("inspection_sessions", "ck_sessions_status", "status", moves.SESSION_STATES),
        ("inspection_session_items", "ck_session_items_status", "status", moves.ITEM_STATES),
        ("inspection_sessions", "ck_sessions_result", "result", moves.HUMAN_RESULTS),
        ("inspection_session_items", "ck_session_items_result", "result", moves.HUMAN_RESULTS),
        ("human_verification_results", "ck_human_results_final", "final_result",
         moves.HUMAN_RESULTS),
        ("human_verification_results", "ck_human_results_severity", "severity",
         moves.SEVERITIES),
        ("analysis_jobs", "ck_jobs_status", "status", job_states.JOB_STATES),
    ],
)
def test_the_migrated_checks_list_the_move_tables_values(
    device_db: Database, table: str, constraint: str, column: str, values: tuple[str, ...]
) -> None:
    # The migrations, not the models, made this database: a table changed without a migration
    # shows up here.
    assert _listed(_checks(device_db, table)[constraint], column) == values


def _session_row(device_db: Database) -> None:
    _master(device_db)
    with device_db.atomic() as session:
        session.add(
            d.InspectionTarget(id="u1", product_id="BRK-100", batch_id="A12-3456", qr_code="x")
        )
        session.add(d.InspectionSession(id="s1", target_id="u1"))


OUTSIDE = ("pending_review", "paused", "", "Completed", "completed ")


@pytest.mark.parametrize("status", [*moves.SESSION_STATES, *OUTSIDE, "pending"])
def test_a_session_holds_only_a_state_of_the_table(device_db: Database, status: str) -> None:
    _session_row(device_db)
    write = sa.text("UPDATE inspection_sessions SET status = :s WHERE id = 's1'")
    if moves.is_session_state(status):
        with device_db.atomic() as session:
            session.execute(write, {"s": status})
        return
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_sessions_status"),
        device_db.atomic() as session,
    ):
        session.execute(write, {"s": status})


@pytest.mark.parametrize("status", [*moves.ITEM_STATES, *OUTSIDE, "scanning"])
def test_an_item_holds_only_a_state_of_the_table(device_db: Database, status: str) -> None:
    _session_row(device_db)
    with device_db.atomic() as session:
        session.add(
            d.InspectionSessionItem(
                id="si1", session_id="s1", item_id="i1", item_code="V-SCRATCH", order_sequence=1
            )
        )
    write = sa.text("UPDATE inspection_session_items SET status = :s WHERE id = 'si1'")
    if moves.is_item_state(status):
        with device_db.atomic() as session:
            session.execute(write, {"s": status})
        return
    with (
        pytest.raises(sa.exc.IntegrityError, match="ck_session_items_status"),
        device_db.atomic() as session,
    ):
        session.execute(write, {"s": status})


def test_a_new_session_starts_where_the_table_starts(device_db: Database) -> None:
    _session_row(device_db)
    with device_db.read() as session:
        status = session.execute(
            sa.text("SELECT status FROM inspection_sessions WHERE id = 's1'")
        ).scalar_one()
        # The column's own default, as a row written without the ORM gets it.
        session.execute(
            sa.text("INSERT INTO inspection_sessions (id, target_id) VALUES ('s2', 'u1')")
        )
        default = session.execute(
            sa.text("SELECT status FROM inspection_sessions WHERE id = 's2'")
        ).scalar_one()
    assert status == default == moves.SESSION_START
