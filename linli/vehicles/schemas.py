"""Pydantic shapes of the vehicles API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue

GateDirection = Literal["in", "out"]
UnknownAction = Literal["queue", "deny", "open"]
PermitKind = Literal["long_term", "temporary"]
Severity = Literal["critical", "major", "warning", "info"]


def _plate(v: str) -> str:
    from linli.vehicles.plates import check_plate_value

    return check_plate_value(v)


#: a licence plate as typed by a person: normalised and checked against the plate grammar
Plate = Annotated[str, Field(min_length=2, max_length=20), AfterValidator(_plate)]


class CarParkIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    capacity: int = Field(ge=0, le=100_000)


class CarParkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    capacity: int


class GateIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    direction: GateDirection = "in"
    car_park_id: int | None = None
    device_id: int | None = None
    auto_open_confidence: float = Field(default=0.80, ge=0.5, le=1.0)
    unknown_action: UnknownAction = "queue"
    visitors_allowed: bool = True
    enabled: bool = True


class GateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    direction: str
    car_park_id: int | None
    device_id: int | None
    auto_open_confidence: float
    unknown_action: str
    visitors_allowed: bool
    enabled: bool


class VehicleIn(BaseModel):
    plate: Plate
    resident_id: int | None = None
    identity_id: int | None = None
    household_id: int | None = None
    color: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=300)
    active: bool = True


class VehicleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str
    identity_id: int | None
    household_id: int | None
    credential_id: int | None
    color: str | None
    description: str | None
    note: str | None
    active: bool
    owner: str | None = None


class PermitIn(BaseModel):
    plate: Plate
    kind: PermitKind = "long_term"
    holder: str | None = Field(default=None, max_length=100)
    car_park_id: int | None = None
    spot: str | None = Field(default=None, max_length=40)
    fee_type: str | None = Field(default=None, max_length=60)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    note: str | None = Field(default=None, max_length=300)


class PermitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str
    vehicle_id: int | None
    kind: str
    holder: str | None
    car_park_id: int | None
    spot: str | None
    fee_type: str | None
    valid_from: datetime
    valid_until: datetime | None
    note: str | None
    revoked_at: datetime | None


class VisitorVehicleIn(BaseModel):
    plate: Plate
    visitor_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    purpose: str | None = Field(default=None, max_length=200)
    valid_from: datetime
    valid_until: datetime
    host_resident_id: int | None = None


class VisitorVehicleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str
    visitor_name: str | None
    purpose: str | None
    host_resident_id: int | None
    valid_from: datetime
    valid_until: datetime
    entered_at: datetime | None
    exited_at: datetime | None
    revoked_at: datetime | None


class WatchIn(BaseModel):
    plate: Plate
    reason: str = Field(min_length=2, max_length=300)
    authorised_by: str = Field(min_length=1, max_length=100)
    expires_at: datetime
    severity: Severity = "major"

    @field_validator("reason", "authorised_by")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v


class WatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    plate: str
    reason: str
    authorised_by: str
    severity: str
    created_by: str
    expires_at: datetime
    ended_at: datetime | None
    matches: int
    last_match_at: datetime | None


class ConfirmIn(BaseModel):
    plate: Plate
    note: str | None = Field(default=None, max_length=300)


class RejectIn(BaseModel):
    note: str | None = Field(default=None, max_length=300)


class VehicleEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    gate_id: int | None
    at: datetime
    direction: str
    read_plate: str | None
    read_status: str
    confidence: float | None
    plate_color: str | None
    plate: str | None
    category: str
    decision: str
    reason: str
    review_status: str | None
    reviewed_by: str | None
    command_id: int | None
    has_snapshot: bool = False


class Decision(BaseModel):
    """What a gate camera gets back for a photo."""

    event_id: int
    gate_id: int
    direction: str
    decision: str  # open | queued | denied
    category: str
    reason: str
    message: str
    plate: str | None
    read_plate: str | None
    confidence: float | None
    color: str | None
    read_status: str
    command_id: int | None
    elapsed_ms: float
