"""Facility monitoring: device profiles, devices, telemetry, rules, alarms, commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from linli.core.db import Base, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class DeviceProfile(Base):
    """What a kind of device reports: metrics with units and valid ranges, reporting interval.

    Built-in profiles have ``community_id`` NULL and are shared by every community.
    """

    __tablename__ = "device_profiles"
    __table_args__ = (UniqueConstraint("community_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))
    name_zh: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32), default="facility")
    #: [{"key": "pressure", "unit": "MPa", "min": 0, "max": 2.5, "kind": "number"|"bool"|"enum",
    #:   "states": [...]}]
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    report_interval_s: Mapped[int] = mapped_column(Integer, default=60)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_comm", "community_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("device_profiles.id"))
    #: the MQTT client id / user name and the topic segment: unique across the platform
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(128))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    location: Mapped[str | None] = mapped_column(String(200))
    map_x: Mapped[float | None] = mapped_column(Float)
    map_y: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    accepted_count: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Telemetry(Base):
    """Raw samples, keyed by (device, metric, time): a redelivered sample is harmless. No
    surrogate id and no foreign key on this hottest of tables (see migration 0008): devices
    are disabled, never deleted, and the retention job removes old samples."""

    __tablename__ = "telemetry"
    __table_args__ = (PrimaryKeyConstraint("device_id", "metric", "ts", name="pk_telemetry_key"),)

    device_id: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)


class TelemetryRollup(Base):
    """1-minute ('m') and 1-hour ('h') aggregates."""

    __tablename__ = "telemetry_rollups"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(1), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    vmin: Mapped[float] = mapped_column(Float)
    vmax: Mapped[float] = mapped_column(Float)
    vsum: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class LatestValue(Base):
    __tablename__ = "telemetry_latest"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)


class DeadLetter(Base):
    """A rejected message, kept for staff to inspect."""

    __tablename__ = "iot_dead_letters"
    __table_args__ = (Index("ix_dead_letters_comm_at", "community_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE")
    )
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(300))
    payload: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rule(Base):
    """An alarm rule, for a profile (every device of it) or one device (override)."""

    __tablename__ = "iot_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("device_profiles.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    #: a device rule with the same name as a profile rule overrides it for that device
    name: Mapped[str] = mapped_column(String(100))
    #: {"kind": "threshold"|"duration"|"rate"|"missing"|"all"|"any", ...} see iot/rules.py
    condition: Mapped[dict[str, Any]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16), default="major")
    message: Mapped[str | None] = mapped_column(String(200))
    create_work_order: Mapped[bool] = mapped_column(Boolean, default=True)
    category: Mapped[str] = mapped_column(String(32), default="facility")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Alarm(Base):
    __tablename__ = "iot_alarms"
    __table_args__ = (
        Index("ix_alarms_comm_status", "community_id", "status"),
        # one open alarm per key, even with several ingesters raising at the same moment
        Index(
            "uq_alarms_open_key",
            "community_id",
            "dedup_key",
            unique=True,
            postgresql_where=text("status IN ('active', 'acknowledged')"),
            sqlite_where=text("status IN ('active', 'acknowledged')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("iot_rules.id", ondelete="SET NULL"))
    #: de-duplication key: one open alarm per key ("rule:3:device:7", "camera:2:offline", …)
    dedup_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16), default="iot")
    kind: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|acknowledged|cleared
    message: Mapped[str] = mapped_column(String(300))
    value: Mapped[float | None] = mapped_column(Float)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_by: Mapped[str | None] = mapped_column(String(100))
    work_order_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Command(Base):
    """A command sent to a device over MQTT, tracked until acknowledged or timed out."""

    __tablename__ = "iot_commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending|sent|acked|failed|timeout
    requested_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timeout_s: Mapped[int] = mapped_column(Integer, default=10)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
