"""Alembic environment: works for SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

from alembic import context

from linli.core.db import make_engine
from linli.models_registry import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)  # type: ignore[arg-type]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
