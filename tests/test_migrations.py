"""The Alembic migrations build exactly the schema the models describe (both backends)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from linli.core.db import make_engine
from linli.models_registry import metadata


def _ignorable(diff: Any, dialect: str) -> bool:
    # SQLite cannot add the users -> residents foreign key declared with use_alter (a cycle)
    return dialect == "sqlite" and diff[0] == "add_fk" and diff[1].use_alter


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = [
                d
                for d in compare_metadata(ctx, metadata)
                if not (isinstance(d, tuple) and _ignorable(d, engine.dialect.name))
            ]
    finally:
        engine.dispose()
    assert not diffs, "models and migrations differ:\n" + "\n".join(map(str, diffs))
