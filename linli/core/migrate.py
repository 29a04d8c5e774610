"""Alembic migrations, driven from code (``linli db upgrade``) and checked at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from linli.core.db import make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revisions(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_revisions(url: str) -> set[str]:
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


class SchemaOutdated(RuntimeError):
    pass


def check_schema(url: str) -> None:
    """Raise SchemaOutdated with a clear message unless the database is at the newest revision."""
    current = current_revisions(url)
    heads = head_revisions(url)
    if current != heads:
        have = ", ".join(sorted(current)) or "empty"
        want = ", ".join(sorted(heads))
        raise SchemaOutdated(
            f"The database schema is not up to date (database: {have}; this version needs: "
            f"{want}). Run `linli db upgrade` first (back up the database before upgrading)."
        )
