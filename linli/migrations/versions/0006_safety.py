"""Community safety: cameras, video events, key-person watchlist, elderly care

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

Tables of the safety domain (see linli/safety/models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import linli.core.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "safety_gate_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("gate_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=5), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_gate_grants_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_gate_grants")),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_safety_gate_grants_gate_at", "safety_gate_grants", ["gate_id", "at"], unique=False
    )
    op.create_table(
        "safety_watch_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("authorised_by_user_id", sa.Integer(), nullable=True),
        sa.Column("authorised_by", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("ended_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=100), nullable=True),
        sa.Column("end_reason", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["authorised_by_user_id"],
            ["users.id"],
            name=op.f("fk_safety_watch_entries_authorised_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_watch_entries_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_watch_entries")),
    )
    op.create_index(
        "ix_safety_watch_comm_status",
        "safety_watch_entries",
        ["community_id", "status"],
        unique=False,
    )
    op.create_table(
        "safety_watch_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_watch_templates_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["safety_watch_entries.id"],
            name=op.f("fk_safety_watch_templates_entry_id_safety_watch_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_watch_templates")),
    )
    op.create_index(
        op.f("ix_safety_watch_templates_community_id"),
        "safety_watch_templates",
        ["community_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_safety_watch_templates_entry_id"),
        "safety_watch_templates",
        ["entry_id"],
        unique=False,
    )
    op.create_table(
        "safety_cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("analytics", sa.JSON(), nullable=False),
        sa.Column("face_watch", sa.Boolean(), nullable=False),
        sa.Column("blur_faces", sa.Boolean(), nullable=False),
        sa.Column("gate_id", sa.Integer(), nullable=True),
        sa.Column("silent_after_s", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_frame_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_error_code", sa.String(length=40), nullable=True),
        sa.Column("heartbeat_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("frame_width", sa.Integer(), nullable=True),
        sa.Column("frame_height", sa.Integer(), nullable=True),
        sa.Column("created_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_safety_cameras_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_cameras_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["gate_id"],
            ["access_gates.id"],
            name=op.f("fk_safety_cameras_gate_id_access_gates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_cameras")),
        sa.UniqueConstraint("community_id", "name", name=op.f("uq_safety_cameras_community_id")),
    )
    op.create_table(
        "safety_camera_frames",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["safety_cameras.id"],
            name=op.f("fk_safety_camera_frames_camera_id_safety_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_safety_camera_frames")),
    )
    op.create_table(
        "safety_care_people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("consent_by", sa.String(length=10), nullable=False),
        sa.Column("consent_name", sa.String(length=100), nullable=False),
        sa.Column("consent_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consent_note", sa.String(length=300), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("family_phone", sa.String(length=30), nullable=True),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("device_ids", sa.JSON(), nullable=False),
        sa.Column("inactive_hours", sa.Float(), nullable=False),
        sa.Column("water_hours", sa.Float(), nullable=False),
        sa.Column("night_from", sa.String(length=5), nullable=False),
        sa.Column("night_to", sa.String(length=5), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_activity_source", sa.String(length=40), nullable=True),
        sa.Column("telemetry_until", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("baseline_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_safety_care_people_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_care_people_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_safety_care_people_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_care_people")),
        sa.UniqueConstraint(
            "community_id", "resident_id", name=op.f("uq_safety_care_people_community_id")
        ),
    )
    op.create_table(
        "safety_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("zone_id", sa.String(length=64), nullable=True),
        sa.Column("line_id", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=4), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("clip_sha256", sa.String(length=64), nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["safety_cameras.id"],
            name=op.f("fk_safety_events_camera_id_safety_cameras"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_events_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_events")),
    )
    op.create_index(
        "ix_safety_events_camera_at", "safety_events", ["camera_id", "at"], unique=False
    )
    op.create_index(
        "ix_safety_events_comm_at", "safety_events", ["community_id", "at"], unique=False
    )
    op.create_table(
        "safety_line_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("hour", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count_in", sa.Integer(), nullable=False),
        sa.Column("count_out", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["safety_cameras.id"],
            name=op.f("fk_safety_line_counts_camera_id_safety_cameras"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_line_counts_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_line_counts")),
        sa.UniqueConstraint(
            "camera_id", "line_id", "hour", name=op.f("uq_safety_line_counts_camera_id")
        ),
    )
    op.create_table(
        "safety_watch_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["safety_cameras.id"],
            name=op.f("fk_safety_watch_matches_camera_id_safety_cameras"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_watch_matches_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["safety_watch_entries.id"],
            name=op.f("fk_safety_watch_matches_entry_id_safety_watch_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_watch_matches")),
    )
    op.create_index(
        "ix_safety_watch_matches_comm_at",
        "safety_watch_matches",
        ["community_id", "at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_safety_watch_matches_entry_id"), "safety_watch_matches", ["entry_id"], unique=False
    )
    op.create_table(
        "safety_care_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_care_activity_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["safety_care_people.id"],
            name=op.f("fk_safety_care_activity_person_id_safety_care_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_care_activity")),
    )
    op.create_index(
        "ix_safety_care_activity_person_at",
        "safety_care_activity",
        ["person_id", "at"],
        unique=False,
    )
    op.create_table(
        "safety_care_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("work_order_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("opened_at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("visited_at", linli.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("visited_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_care_visits_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["safety_care_people.id"],
            name=op.f("fk_safety_care_visits_person_id_safety_care_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_care_visits")),
    )
    op.create_index(
        op.f("ix_safety_care_visits_person_id"), "safety_care_visits", ["person_id"], unique=False
    )
    op.create_table(
        "safety_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("to", sa.String(length=30), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("at", linli.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_safety_notifications_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["safety_care_people.id"],
            name=op.f("fk_safety_notifications_person_id_safety_care_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_notifications")),
    )


def downgrade() -> None:
    op.drop_table("safety_notifications")
    op.drop_index(op.f("ix_safety_care_visits_person_id"), table_name="safety_care_visits")
    op.drop_table("safety_care_visits")
    op.drop_index("ix_safety_care_activity_person_at", table_name="safety_care_activity")
    op.drop_table("safety_care_activity")
    op.drop_index(op.f("ix_safety_watch_matches_entry_id"), table_name="safety_watch_matches")
    op.drop_index("ix_safety_watch_matches_comm_at", table_name="safety_watch_matches")
    op.drop_table("safety_watch_matches")
    op.drop_table("safety_line_counts")
    op.drop_index("ix_safety_events_comm_at", table_name="safety_events")
    op.drop_index("ix_safety_events_camera_at", table_name="safety_events")
    op.drop_table("safety_events")
    op.drop_table("safety_care_people")
    op.drop_table("safety_camera_frames")
    op.drop_table("safety_cameras")
    op.drop_index(op.f("ix_safety_watch_templates_entry_id"), table_name="safety_watch_templates")
    op.drop_index(
        op.f("ix_safety_watch_templates_community_id"), table_name="safety_watch_templates"
    )
    op.drop_table("safety_watch_templates")
    op.drop_index("ix_safety_watch_comm_status", table_name="safety_watch_entries")
    op.drop_table("safety_watch_entries")
    op.drop_index("ix_safety_gate_grants_gate_at", table_name="safety_gate_grants")
    op.drop_table("safety_gate_grants")
