"""Living environment: collection stations with their delivery hours and devices, bins by
category (each linked to its fill-level sensor, lid and scale), terminal sessions, deposits
with photos and staff inspection, the points ledger, supervision records, editable voice
prompt texts."""

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
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from linli.core.db import Base, UTCDateTime, utcnow

#: bin categories; the first five are the guidance categories, renovation is a station area
BIN_CATEGORIES = ("recyclable", "hazardous", "kitchen", "residual", "bulky", "renovation")
DEPOSIT_STATUSES = ("valid", "lid_failed")
INSPECTIONS = ("pending", "correct", "contaminated")
SESSION_STATES = ("identified", "opening", "done", "failed")
SUPERVISION_KINDS = ("outside_hours_drop", "pile_beside_bins")
IDENTIFY_METHODS = ("card", "qr", "face")


class Station(Base):
    """A collection point (投放点) with fixed delivery hours (定时定点) and its devices."""

    __tablename__ = "waste_stations"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(200))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    #: [{"start": "07:00", "end": "09:00"}, ...] in the community's time zone
    hours: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    terminal_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    camera_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    speaker_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    #: minutes before the predicted overflow at which the alarm and work order come
    overflow_lead_min: Mapped[int] = mapped_column(Integer, default=60)
    #: the camera's region beside the bins watched for piled garbage (normalised polygon)
    pile_zone: Mapped[list[list[float]] | None] = mapped_column(JSON)
    #: content hash of the reference picture of the empty area beside the bins
    pile_reference_sha256: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bin(Base):
    """A bin of one category at a station, with the devices that serve it."""

    __tablename__ = "waste_bins"
    __table_args__ = (Index("ix_waste_bins_station", "station_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    station_id: Mapped[int] = mapped_column(ForeignKey("waste_stations.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(50))
    capacity_l: Mapped[int] = mapped_column(Integer, default=240)
    fill_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    lid_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    scale_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    #: FIWARE WasteContainer entity id (the fill device's entity when linked)
    fiware_id: Mapped[str | None] = mapped_column(String(200))
    fill_level: Mapped[float | None] = mapped_column(Float)  # percent, last seen
    fill_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    predicted_full_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fill_rate_per_h: Mapped[float | None] = mapped_column(Float)
    last_emptied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TerminalSession(Base):
    """One resident at a terminal: identified, then a category picked and the lid opened."""

    __tablename__ = "waste_sessions"
    __table_args__ = (Index("ix_waste_sessions_station", "station_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    station_id: Mapped[int] = mapped_column(ForeignKey("waste_stations.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default="identified")
    bin_id: Mapped[int | None] = mapped_column(ForeignKey("waste_bins.id", ondelete="SET NULL"))
    command_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Deposit(Base):
    """One delivery into a bin: who, what, how heavy, the photo, inside the hours or not."""

    __tablename__ = "waste_deposits"
    __table_args__ = (
        Index("ix_waste_deposits_comm_at", "community_id", "at"),
        Index("ix_waste_deposits_resident", "resident_id"),
        UniqueConstraint("session_id", name="uq_waste_deposits_session"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    station_id: Mapped[int] = mapped_column(ForeignKey("waste_stations.id", ondelete="CASCADE"))
    bin_id: Mapped[int] = mapped_column(ForeignKey("waste_bins.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("waste_sessions.id", ondelete="SET NULL")
    )
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL")
    )
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    category: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    weight_kg: Mapped[float | None] = mapped_column(Float)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="valid")
    outside_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    command_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    inspection: Mapped[str] = mapped_column(String(14), default="pending")
    inspected_by: Mapped[str | None] = mapped_column(String(100))
    inspected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    inspection_note: Mapped[str | None] = mapped_column(String(300))


class PointEntry(Base):
    """The points ledger: one row per award or deduction, per resident and household."""

    __tablename__ = "waste_points"
    __table_args__ = (
        Index("ix_waste_points_resident", "community_id", "resident_id"),
        UniqueConstraint("deposit_id", "reason", name="uq_waste_points_deposit_reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL")
    )
    deposit_id: Mapped[int | None] = mapped_column(
        ForeignKey("waste_deposits.id", ondelete="CASCADE")
    )
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))  # deposit|correct|contaminated|adjust
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Supervision(Base):
    """Something the station camera recorded for supervision: garbage left outside the
    delivery hours, or garbage piled beside the bins."""

    __tablename__ = "waste_supervision"
    __table_args__ = (Index("ix_waste_supervision_comm_at", "community_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    station_id: Mapped[int] = mapped_column(ForeignKey("waste_stations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open|handled
    note: Mapped[str | None] = mapped_column(String(300))
    alarm_id: Mapped[int | None] = mapped_column(Integer)
    handled_by: Mapped[str | None] = mapped_column(String(100))


class PromptText(Base):
    """A staff-edited voice prompt text, for the community (station NULL) or one station."""

    __tablename__ = "waste_prompt_texts"
    __table_args__ = (
        UniqueConstraint("community_id", "station_id", "key", "lang", name="uq_waste_prompt"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    station_id: Mapped[int | None] = mapped_column(
        ForeignKey("waste_stations.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(40))
    lang: Mapped[str] = mapped_column(String(4))
    text: Mapped[str] = mapped_column(String(500))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
