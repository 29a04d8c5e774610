"""Pydantic shapes of the access API. Face templates appear in none of them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

IdentityKind = Literal["resident", "staff", "visitor", "delivery"]
CredentialKind = Literal["card", "pin", "plate"]
Direction = Literal["in", "out", "both"]


class IdentityIn(BaseModel):
    kind: IdentityKind
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    resident_id: int | None = None


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    resident_id: int | None
    active: bool
    has_face: bool = False
    face_consent: bool = False
    credentials: list[CredentialOut] = []


class CredentialIn(BaseModel):
    kind: CredentialKind
    value: str = Field(min_length=1, max_length=64)

    @field_validator("value")
    @classmethod
    def _clean(cls, v: str) -> str:
        v = v.strip().upper().replace(" ", "")
        if not v:
            raise InvalidValue("This field is required.")
        return v


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    label: str
    active: bool


class ConsentIn(BaseModel):
    given_by: str = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=300)


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    scope: str
    given_by: str
    recorded_by: str
    given_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class Hours(BaseModel):
    start: str | None = Field(default=None, alias="from")
    end: str | None = Field(default=None, alias="to")

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not _HHMM.match(v):
            raise InvalidValue("Must be a time of day like 08:30.")
        return v


def _default_policy() -> dict[IdentityKind, Hours]:
    return {"resident": Hours(), "staff": Hours(), "visitor": Hours()}


class GateIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    direction: Direction = "both"
    device_id: int | None = None
    policy: dict[IdentityKind, Hours] = Field(default_factory=_default_policy)
    anti_passback: bool = False
    require_liveness: bool = False
    enabled: bool = True

    def policy_json(self) -> dict[str, Any]:
        return {
            k: {"from": h.start, "to": h.end} if (h.start or h.end) else {}
            for k, h in self.policy.items()
        }


class GateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    direction: str
    device_id: int | None
    policy: dict[str, Any]
    anti_passback: bool
    require_liveness: bool
    enabled: bool


class DecideIn(BaseModel):
    """A non-face credential read by a terminal: exactly one of card, pin, qr."""

    card: str | None = Field(default=None, max_length=64)
    pin: str | None = Field(default=None, max_length=12)
    qr: str | None = Field(default=None, max_length=1000)
    direction: Literal["in", "out"] | None = None


class Decision(BaseModel):
    granted: bool
    reason: str
    message: str
    person: dict[str, Any] | None = None
    direction: str
    method: str
    event_id: int | None = None


class VisitorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    purpose: str | None = Field(default=None, max_length=200)
    valid_from: datetime
    valid_until: datetime
    max_uses: int = Field(default=1, ge=1, le=50)
    host_resident_id: int | None = None
    kind: Literal["visitor", "delivery"] = "visitor"


class VisitorPassOut(BaseModel):
    id: int
    name: str
    purpose: str | None
    valid_from: datetime
    valid_until: datetime
    max_uses: int
    uses: int
    revoked: bool
    qr: str | None = None


class AdmitIn(BaseModel):
    gate_id: int
    reason: str = Field(min_length=2, max_length=300)
    pass_id: int | None = None
    name: str | None = Field(default=None, max_length=100)
    direction: Literal["in", "out"] = "in"


class AccessEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    gate_id: int | None
    identity_id: int | None
    at: datetime
    method: str
    direction: str
    granted: bool
    reason: str
    has_snapshot: bool = False


IdentityOut.model_rebuild()
