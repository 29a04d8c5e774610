"""Living environment: stations, bins, deposits, supervision, voice prompts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

Tables of the waste domain (see linli/waste/models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import linli.core.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "waste_stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("terminal_device_id", sa.Integer(), nullable=True),
        sa.Column("camera_device_id", sa.Integer(), nullable=True),
        sa.Column("speaker_device_id", sa.Integer(), nullable=True),
        sa.Column("overflow_lead_min", sa.Integer(), nullable=False),
        sa.Column("pile_zone", sa.JSON(), nullable=True),
        sa.Column("pile_reference_sha256", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_waste_stations_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["camera_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_stations_camera_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_stations_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["speaker_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_stations_speaker_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["terminal_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_stations_terminal_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_stations")),
        sa.UniqueConstraint("community_id", "name", name=op.f("uq_waste_stations_community_id")),
    )
    op.create_table(
        "waste_bins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=True),
        sa.Column("capacity_l", sa.Integer(), nullable=False),
        sa.Column("fill_device_id", sa.Integer(), nullable=True),
        sa.Column("lid_device_id", sa.Integer(), nullable=True),
        sa.Column("scale_device_id", sa.Integer(), nullable=True),
        sa.Column("fiware_id", sa.String(length=200), nullable=True),
        sa.Column("fill_level", sa.Float(), nullable=True),
        sa.Column("fill_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("predicted_full_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fill_rate_per_h", sa.Float(), nullable=True),
        sa.Column("last_emptied_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_bins_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fill_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_bins_fill_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lid_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_bins_lid_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scale_device_id"],
            ["devices.id"],
            name=op.f("fk_waste_bins_scale_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["waste_stations.id"],
            name=op.f("fk_waste_bins_station_id_waste_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_bins")),
    )
    op.create_index("ix_waste_bins_station", "waste_bins", ["station_id"], unique=False)
    op.create_table(
        "waste_prompt_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("lang", sa.String(length=4), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_prompt_texts_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["waste_stations.id"],
            name=op.f("fk_waste_prompt_texts_station_id_waste_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_prompt_texts")),
        sa.UniqueConstraint("community_id", "station_id", "key", "lang", name="uq_waste_prompt"),
    )
    op.create_table(
        "waste_supervision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("handled_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_supervision_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["waste_stations.id"],
            name=op.f("fk_waste_supervision_station_id_waste_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_supervision")),
    )
    op.create_index(
        "ix_waste_supervision_comm_at", "waste_supervision", ["community_id", "at"], unique=False
    )
    op.create_table(
        "waste_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("bin_id", sa.Integer(), nullable=True),
        sa.Column("command_id", sa.Integer(), nullable=True),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bin_id"],
            ["waste_bins.id"],
            name=op.f("fk_waste_sessions_bin_id_waste_bins"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_sessions_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_waste_sessions_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["waste_stations.id"],
            name=op.f("fk_waste_sessions_station_id_waste_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_sessions")),
    )
    op.create_index(
        "ix_waste_sessions_station", "waste_sessions", ["station_id", "created_at"], unique=False
    )
    op.create_table(
        "waste_deposits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("bin_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("photo_sha256", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("outside_hours", sa.Boolean(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=True),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("inspection", sa.String(length=14), nullable=False),
        sa.Column("inspected_by", sa.String(length=100), nullable=True),
        sa.Column("inspected_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("inspection_note", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["bin_id"],
            ["waste_bins.id"],
            name=op.f("fk_waste_deposits_bin_id_waste_bins"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_waste_deposits_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_deposits_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_waste_deposits_household_id_households"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_waste_deposits_resident_id_residents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["waste_sessions.id"],
            name=op.f("fk_waste_deposits_session_id_waste_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["waste_stations.id"],
            name=op.f("fk_waste_deposits_station_id_waste_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_deposits")),
        sa.UniqueConstraint("session_id", name="uq_waste_deposits_session"),
    )
    op.create_index(
        "ix_waste_deposits_comm_at", "waste_deposits", ["community_id", "at"], unique=False
    )
    op.create_index("ix_waste_deposits_resident", "waste_deposits", ["resident_id"], unique=False)
    op.create_table(
        "waste_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("deposit_id", sa.Integer(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_waste_points_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deposit_id"],
            ["waste_deposits.id"],
            name=op.f("fk_waste_points_deposit_id_waste_deposits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_waste_points_household_id_households"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_waste_points_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waste_points")),
        sa.UniqueConstraint("deposit_id", "reason", name="uq_waste_points_deposit_reason"),
    )
    op.create_index(
        "ix_waste_points_resident", "waste_points", ["community_id", "resident_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_waste_points_resident", table_name="waste_points")
    op.drop_table("waste_points")
    op.drop_index("ix_waste_deposits_resident", table_name="waste_deposits")
    op.drop_index("ix_waste_deposits_comm_at", table_name="waste_deposits")
    op.drop_table("waste_deposits")
    op.drop_index("ix_waste_sessions_station", table_name="waste_sessions")
    op.drop_table("waste_sessions")
    op.drop_index("ix_waste_supervision_comm_at", table_name="waste_supervision")
    op.drop_table("waste_supervision")
    op.drop_table("waste_prompt_texts")
    op.drop_index("ix_waste_bins_station", table_name="waste_bins")
    op.drop_table("waste_bins")
    op.drop_table("waste_stations")
