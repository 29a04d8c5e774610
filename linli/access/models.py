"""Access control: unified identities, credentials, consent, face templates, gates, visitor
passes and the access log."""

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

IDENTITY_KINDS = ("resident", "staff", "visitor", "delivery")
CREDENTIAL_KINDS = ("card", "pin", "plate")
DIRECTIONS = ("in", "out", "both")
METHODS = ("face", "card", "pin", "qr", "manual")
CONSENT_SCOPE_FACE = "face_recognition"


class Identity(Base):
    """One person for access control, whatever their role in the community."""

    __tablename__ = "access_identities"
    __table_args__ = (
        Index("ix_access_identities_comm_kind", "community_id", "kind"),
        UniqueConstraint("community_id", "resident_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(30))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Credential(Base):
    """A non-biometric way in: IC card number, PIN (stored as a keyed hash) or licence plate.

    ``lookup`` is what a terminal's reading is matched against: the card number or plate as
    read, or HMAC-SHA256(secret key, PIN) for a PIN (never the PIN itself).
    """

    __tablename__ = "access_credentials"
    __table_args__ = (UniqueConstraint("community_id", "kind", "lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("access_identities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    lookup: Mapped[str] = mapped_column(String(128))
    #: what staff see: the card number or plate, "••••" for a PIN
    label: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base):
    """Recorded consent to face recognition: who gave it, when, for what, withdrawn when."""

    __tablename__ = "access_consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("access_identities.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(40), default=CONSENT_SCOPE_FACE)
    given_by: Mapped[str] = mapped_column(String(100))  # the person, or their guardian
    recorded_by: Mapped[str] = mapped_column(String(100))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(300))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(100))


class FaceTemplate(Base):
    """A face embedding, AES-256-GCM encrypted (AAD = identity id). Never leaves the server."""

    __tablename__ = "access_face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("access_identities.id", ondelete="CASCADE"), index=True
    )
    consent_id: Mapped[int] = mapped_column(ForeignKey("access_consents.id", ondelete="CASCADE"))
    template: Mapped[bytes] = mapped_column(LargeBinary)
    #: the enrollment photo in the file store, only with settings.keep_enrollment_photos
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Gate(Base):
    """A pedestrian gate and its policy: which kinds of people may pass, and when.

    ``policy`` maps an identity kind to its hours: ``{"resident": {}, "delivery": {"from":
    "08:00", "to": "20:00"}}``; a kind that is absent may not pass. Hours are local time.
    """

    __tablename__ = "access_gates"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(10), default="both")
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    anti_passback: Mapped[bool] = mapped_column(Boolean, default=False)
    require_liveness: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VisitorPass(Base):
    """A visitor registered by a resident (or staff): a signed QR pass for a time window."""

    __tablename__ = "access_visitor_passes"
    __table_args__ = (Index("ix_access_passes_comm_until", "community_id", "valid_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("access_identities.id", ondelete="CASCADE"), index=True
    )
    host_resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id", ondelete="SET NULL")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    purpose: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    nonce: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessEvent(Base):
    """One access decision (granted or denied) or a manual admission."""

    __tablename__ = "access_events"
    __table_args__ = (
        Index("ix_access_events_comm_at", "community_id", "at"),
        Index("ix_access_events_identity_at", "identity_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    gate_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_gates.id", ondelete="SET NULL"), index=True
    )
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_identities.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(10))
    direction: Mapped[str] = mapped_column(String(5))
    granted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    distance: Mapped[float | None] = mapped_column(Float)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))
