"""Raw telemetry keyed by (device, metric, time): no surrogate id, no foreign key; one open
alarm per key; the users -> residents foreign key 0001 meant to make (PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

The raw sample table is the hottest table of the product. Its natural key already made a
redelivered sample harmless (a unique index); the extra id column, its sequence and index,
and the per-row foreign-key check cost the database server about 45 % of its ingestion CPU
(bench/bench_ingest_store.py). The key is now the primary key; devices are disabled, never
deleted, and the retention job removes old samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import linli.core.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telemetry_new",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("ts", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "metric", "ts", name="pk_telemetry_key"),
    )
    op.execute(
        "INSERT INTO telemetry_new (device_id, metric, ts, value) "
        "SELECT device_id, metric, ts, value FROM telemetry"
    )
    op.drop_table("telemetry")
    op.rename_table("telemetry_new", "telemetry")
    # one open alarm per key: the check in raise_alarm, made safe between processes
    where = sa.text("status IN ('active', 'acknowledged')")
    op.create_index(
        "uq_alarms_open_key",
        "iot_alarms",
        ["community_id", "dedup_key"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )
    # 0001 declared users.resident_id -> residents with use_alter (the two tables refer to
    # each other), which create_table skips: the constraint was never made. SQLite cannot
    # add one to an existing table; the application keeps the link there.
    if op.get_bind().dialect.name != "sqlite":
        op.execute(
            "UPDATE users SET resident_id = NULL WHERE resident_id IS NOT NULL "
            "AND resident_id NOT IN (SELECT id FROM residents)"
        )
        op.create_foreign_key(
            "fk_users_resident_id_residents",
            "users",
            "residents",
            ["resident_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_users_resident_id_residents", "users", type_="foreignkey")
    op.drop_index("uq_alarms_open_key", table_name="iot_alarms")
    op.create_table(
        "telemetry_old",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("ts", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_telemetry_device_id_devices", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry"),
        sa.UniqueConstraint("device_id", "metric", "ts", name="uq_telemetry_device_id"),
    )
    op.execute(
        "INSERT INTO telemetry_old (device_id, metric, ts, value) "
        "SELECT device_id, metric, ts, value FROM telemetry"
    )
    op.drop_table("telemetry")
    op.rename_table("telemetry_old", "telemetry")
