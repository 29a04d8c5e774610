"""Vehicle access: car parks, vehicle gates, resident vehicles, visitor vehicles, parking
permits, the plate watch list, the entry/exit log (with the guard confirmation queue) and who
is parked inside now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from linli.core.db import Base, UTCDateTime, utcnow

GATE_DIRECTIONS = ("in", "out")
#: what an entrance does with a confidently read plate it does not know
UNKNOWN_ACTIONS = ("queue", "deny", "open")
PERMIT_KINDS = ("long_term", "temporary")
#: who a vehicle in the log or inside the car park is
CATEGORIES = ("resident", "permit", "visitor", "watchlist", "unknown", "unrecognised")
#: what the barrier did
DECISIONS = ("open", "queued", "denied")
REVIEW_STATES = ("pending", "confirmed", "rejected", "expired", "superseded")


class CarPark(Base):
    """A car park (or a zone of one) with its number of spaces."""

    __tablename__ = "vehicle_car_parks"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VehicleGate(Base):
    """A vehicle gate lane: one direction, a barrier (an IoT device), a camera that posts
    photos, and the confidence a read needs to open the barrier without a guard."""

    __tablename__ = "vehicle_gates"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(5), default="in")
    car_park_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_car_parks.id", ondelete="SET NULL")
    )
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    auto_open_confidence: Mapped[float] = mapped_column(Float, default=0.80)
    unknown_action: Mapped[str] = mapped_column(String(10), default="queue")
    visitors_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Vehicle(Base):
    """A resident's (or staff member's) vehicle, bound to a person's access identity — the
    plate is then also a ``plate`` credential of that identity — and/or to a household."""

    __tablename__ = "vehicles"
    __table_args__ = (UniqueConstraint("community_id", "plate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_identities.id", ondelete="SET NULL"), index=True
    )
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL"), index=True
    )
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_credentials.id", ondelete="SET NULL")
    )
    color: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Permit(Base):
    """A parking permit for a plate: long-term (monthly/annual) or temporary, optionally for a
    car park and a spot or zone."""

    __tablename__ = "vehicle_permits"
    __table_args__ = (Index("ix_vehicle_permits_comm_plate", "community_id", "plate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16))
    vehicle_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicles.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(12))
    holder: Mapped[str | None] = mapped_column(String(100))
    car_park_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_car_parks.id", ondelete="SET NULL")
    )
    spot: Mapped[str | None] = mapped_column(String(40))
    fee_type: Mapped[str | None] = mapped_column(String(60))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VisitorVehicle(Base):
    """A visitor's car registered by a resident (or staff) for a time window."""

    __tablename__ = "vehicle_visitors"
    __table_args__ = (
        Index("ix_vehicle_visitors_comm_plate", "community_id", "plate"),
        Index("ix_vehicle_visitors_comm_until", "community_id", "valid_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16))
    visitor_name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(30))
    purpose: Mapped[str | None] = mapped_column(String(200))
    host_resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id", ondelete="SET NULL"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WatchEntry(Base):
    """A plate on the watch list: why, who authorised it, until when. Every add, view and
    match is written to the audit log."""

    __tablename__ = "vehicle_watchlist"
    __table_args__ = (Index("ix_vehicle_watchlist_comm_plate", "community_id", "plate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300))
    authorised_by: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10), default="major")
    created_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(100))
    matches: Mapped[int] = mapped_column(Integer, default=0)
    last_match_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VehicleEvent(Base):
    """One vehicle at a gate: what the camera saw, what was read, who it is, what the barrier
    did. A read the gate may not act on alone waits for a guard (``review_status``)."""

    __tablename__ = "vehicle_events"
    __table_args__ = (
        Index("ix_vehicle_events_comm_at", "community_id", "at"),
        Index("ix_vehicle_events_comm_review", "community_id", "review_status"),
        Index("ix_vehicle_events_comm_plate", "community_id", "plate"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    gate_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_gates.id", ondelete="SET NULL"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    direction: Mapped[str] = mapped_column(String(5))
    #: what the reader said (best plate), and how sure it was
    read_plate: Mapped[str | None] = mapped_column(String(16))
    read_status: Mapped[str] = mapped_column(String(20))
    confidence: Mapped[float | None] = mapped_column(Float)
    plate_color: Mapped[str | None] = mapped_column(String(10))
    #: the plate acted on (a confident read, or the one a guard confirmed)
    plate: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(12))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(40))
    vehicle_id: Mapped[int | None] = mapped_column(ForeignKey("vehicles.id", ondelete="SET NULL"))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_identities.id", ondelete="SET NULL")
    )
    visitor_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_visitors.id", ondelete="SET NULL")
    )
    permit_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_permits.id", ondelete="SET NULL")
    )
    watch_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_watchlist.id", ondelete="SET NULL")
    )
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    command_id: Mapped[int | None] = mapped_column(
        ForeignKey("iot_commands.id", ondelete="SET NULL")
    )
    review_status: Mapped[str | None] = mapped_column(String(10))
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    elapsed_ms: Mapped[float | None] = mapped_column(Float)
    event_id: Mapped[str | None] = mapped_column(String(36))


class Presence(Base):
    """A vehicle inside a car park: opened by an entry, closed by its exit."""

    __tablename__ = "vehicle_presence"
    __table_args__ = (
        Index("ix_vehicle_presence_comm_open", "community_id", "exited_at"),
        Index("ix_vehicle_presence_comm_plate", "community_id", "plate"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    car_park_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_car_parks.id", ondelete="SET NULL")
    )
    plate: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(12))
    visitor_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_visitors.id", ondelete="SET NULL")
    )
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entry_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_events.id", ondelete="SET NULL")
    )
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("vehicle_events.id", ondelete="SET NULL")
    )
    overstay_alarmed: Mapped[bool] = mapped_column(Boolean, default=False)
