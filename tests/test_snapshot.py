"""schema/sql/*.sql must be what the models render: a model change without a snapshot fails."""

from __future__ import annotations

import pytest

from schema import snapshot


@pytest.mark.parametrize("kind", ["device", "server"])
def test_snapshot_is_current(kind: str) -> None:
    committed = snapshot.path(kind).read_text(encoding="utf-8")  # type: ignore[arg-type]
    assert committed == snapshot.render(kind), (  # type: ignore[arg-type]
        f"schema/sql/{kind}.sql is stale: run `kensa db snapshot` and add a migration"
    )


def test_snapshot_covers_every_table() -> None:
    import schema.device
    import schema.server

    for kind, metadata in (("device", schema.device.metadata), ("server", schema.server.metadata)):
        text = snapshot.path(kind).read_text(encoding="utf-8")  # type: ignore[arg-type]
        for name in metadata.tables:
            assert f"CREATE TABLE {name} (" in text
