"""Community safety: cameras and their health, video events and media, line counts, the
governed key-person watch list and care for elderly people living alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from linli.core.db import Base, UTCDateTime, utcnow

EVENT_KINDS = (
    "line_crossing",
    "intrusion",
    "loitering",
    "gathering",
    "motion",
    "tailgating",
    "watchlist_match",
)
CAMERA_STATES = ("unknown", "connecting", "streaming", "backoff", "finished", "stopped", "silent")
CONSENT_GIVERS = ("person", "family")
VISIT_OUTCOMES = ("well", "needs_help", "hospital", "not_home", "other")


class Camera(Base):
    """A camera: where its frames come from, how often they are sampled, what is watched."""

    __tablename__ = "safety_cameras"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    #: rtsp://, http(s):// MJPEG/JPEG or a video file path; may hold credentials (never shown)
    url: Mapped[str] = mapped_column(String(500))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    location: Mapped[str | None] = mapped_column(String(200))
    fps: Mapped[float] = mapped_column(Float, default=2.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: zones and lines (linli.vision.analytics.CameraConfig.from_dict format)
    analytics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: identify faces against the watch list
    face_watch: Mapped[bool] = mapped_column(Boolean, default=False)
    #: blur faces that matched nothing in stored snapshots
    blur_faces: Mapped[bool] = mapped_column(Boolean, default=False)
    #: a pedestrian gate of access control whose grants the tailgating rule compares with
    gate_id: Mapped[int | None] = mapped_column(ForeignKey("access_gates.id", ondelete="SET NULL"))
    #: a silent camera (no frame for this long) raises an alarm
    silent_after_s: Mapped[int] = mapped_column(Integer, default=120)
    #: bumped on every change: workers restart the camera when it changes
    version: Mapped[int] = mapped_column(Integer, default=1)
    # health, written by the worker
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_error_code: Mapped[str | None] = mapped_column(String(40))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    frame_width: Mapped[int | None] = mapped_column(Integer)
    frame_height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CameraFrame(Base):
    """The newest frame of a camera (JPEG), overwritten by the worker."""

    __tablename__ = "safety_camera_frames"

    camera_id: Mapped[int] = mapped_column(
        ForeignKey("safety_cameras.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class SafetyEvent(Base):
    """One thing the video analytics noticed, with its snapshot and short clip."""

    __tablename__ = "safety_events"
    __table_args__ = (
        Index("ix_safety_events_comm_at", "community_id", "at"),
        Index("ix_safety_events_camera_at", "camera_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("safety_cameras.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    track_id: Mapped[int | None] = mapped_column(Integer)
    zone_id: Mapped[str | None] = mapped_column(String(64))
    line_id: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(4))
    count: Mapped[int | None] = mapped_column(Integer)
    box: Mapped[list[float] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    clip_sha256: Mapped[str | None] = mapped_column(String(64))
    alarm_id: Mapped[int | None] = mapped_column(Integer)


class LineCount(Base):
    """People crossing a camera line, per hour (UTC hour bucket) and direction."""

    __tablename__ = "safety_line_counts"
    __table_args__ = (UniqueConstraint("camera_id", "line_id", "hour"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("safety_cameras.id", ondelete="CASCADE"))
    line_id: Mapped[str] = mapped_column(String(64))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    count_in: Mapped[int] = mapped_column(Integer, default=0)
    count_out: Mapped[int] = mapped_column(Integer, default=0)


class GateGrant(Base):
    """An access grant at a gate watched by a camera (copied from ``access.entry.granted``)
    for the tailgating comparison of the camera workers."""

    __tablename__ = "safety_gate_grants"
    __table_args__ = (Index("ix_safety_gate_grants_gate_at", "gate_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    gate_id: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(5))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)


class WatchEntry(Base):
    """A key person on the watch list: who authorised it, why, until when."""

    __tablename__ = "safety_watch_entries"
    __table_args__ = (Index("ix_safety_watch_comm_status", "community_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    #: the staff member who authorised the entry (a user holding watchlist.manage)
    authorised_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    authorised_by: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | ended
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(100))
    end_reason: Mapped[str | None] = mapped_column(String(300))


class WatchTemplate(Base):
    """A face embedding of a watch-list entry, AES-256-GCM encrypted (AAD = entry id)."""

    __tablename__ = "safety_watch_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("safety_watch_entries.id", ondelete="CASCADE"), index=True
    )
    template: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WatchMatch(Base):
    """A camera saw a face that matches a watch-list entry."""

    __tablename__ = "safety_watch_matches"
    __table_args__ = (Index("ix_safety_watch_matches_comm_at", "community_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("safety_watch_entries.id", ondelete="CASCADE"), index=True
    )
    camera_id: Mapped[int | None] = mapped_column(
        ForeignKey("safety_cameras.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    distance: Mapped[float] = mapped_column(Float)
    box: Mapped[list[float] | None] = mapped_column(JSON)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    alarm_id: Mapped[int | None] = mapped_column(Integer)


class CarePerson(Base):
    """An elderly person living alone, enrolled in care with recorded consent."""

    __tablename__ = "safety_care_people"
    __table_args__ = (UniqueConstraint("community_id", "resident_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    consent_by: Mapped[str] = mapped_column(String(10))  # person | family
    consent_name: Mapped[str] = mapped_column(String(100))
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_note: Mapped[str | None] = mapped_column(String(300))
    family_name: Mapped[str | None] = mapped_column(String(100))
    family_phone: Mapped[str | None] = mapped_column(String(30))
    #: access identity of the person (access events count as activity)
    identity_id: Mapped[int | None] = mapped_column(Integer)
    #: devices at home (door contacts, water meters…) whose telemetry counts as activity
    device_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    inactive_hours: Mapped[float] = mapped_column(Float, default=24.0)
    water_hours: Mapped[float] = mapped_column(Float, default=3.0)
    night_from: Mapped[str] = mapped_column(String(5), default="23:00")
    night_to: Mapped[str] = mapped_column(String(5), default="05:00")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_activity_source: Mapped[str | None] = mapped_column(String(40))
    #: telemetry read up to here (exclusive)
    telemetry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: typical active hours, daily events… (recomputed daily from the activity log)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    baseline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CareActivity(Base):
    """A sign of activity of a person in care: a gate passage, a door opening, water use."""

    __tablename__ = "safety_care_activity"
    __table_args__ = (Index("ix_safety_care_activity_person_at", "person_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("safety_care_people.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20))  # access | door | water | device | visit
    detail: Mapped[str | None] = mapped_column(String(100))


class CareVisit(Base):
    """A wellbeing visit of the grid worker and its outcome."""

    __tablename__ = "safety_care_visits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(
        ForeignKey("safety_care_people.id", ondelete="CASCADE"), index=True
    )
    alarm_id: Mapped[int | None] = mapped_column(Integer)
    work_order_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(30))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    visited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    visited_by: Mapped[str | None] = mapped_column(String(100))


class Notification(Base):
    """A message sent to a family contact through the SMS edge (logged, see notify.py)."""

    __tablename__ = "safety_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("safety_care_people.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    to: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="sent")
