"""Pydantic shapes of the waste API and terminal protocol."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from linli.core.errors import InvalidValue

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

BinCategory = Literal["recyclable", "hazardous", "kitchen", "residual", "bulky", "renovation"]
Method = Literal["card", "qr", "face"]
Inspection = Literal["correct", "contaminated"]


class Window(BaseModel):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        v = v.strip()
        if not _HHMM.match(v):
            raise InvalidValue("Use the form HH:MM (e.g. 07:00).")
        return v

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.end <= self.start:
            raise InvalidValue("The end of a delivery window must be after its start.")
        return self


class StationIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    location: str | None = Field(default=None, max_length=200)
    building_id: int | None = None
    hours: list[Window] = Field(default_factory=list, max_length=8)
    overflow_lead_min: int = Field(default=60, ge=5, le=24 * 60)
    with_devices: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v


class BinIn(BaseModel):
    category: BinCategory
    label: str | None = Field(default=None, max_length=50)
    capacity_l: int = Field(default=240, ge=10, le=20_000)
    #: link an existing fill-level device (e.g. imported from FIWARE) instead of a new one
    fill_device_id: int | None = None
    with_devices: bool = True


class DeviceSecret(BaseModel):
    role: str
    device_id: int
    key: str
    secret: str


class BinOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    category: str
    label: str | None
    capacity_l: int
    fill_device_id: int | None
    lid_device_id: int | None
    scale_device_id: int | None
    fiware_id: str | None
    fill_level: float | None
    fill_at: datetime | None
    predicted_full_at: datetime | None
    fill_rate_per_h: float | None
    last_emptied_at: datetime | None
    enabled: bool


class StationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    location: str | None
    building_id: int | None
    hours: list[dict[str, Any]]
    terminal_device_id: int | None
    camera_device_id: int | None
    speaker_device_id: int | None
    overflow_lead_min: int
    enabled: bool
    bins: list[BinOut] = []


class StationCreated(BaseModel):
    station: StationOut
    devices: list[DeviceSecret]


class BinCreated(BaseModel):
    bin: BinOut
    devices: list[DeviceSecret]


class IdentifyIn(BaseModel):
    """How the resident identifies at the terminal: a card number, a QR pass, or a face
    photo (JPEG/PNG as base64)."""

    method: Method
    value: str | None = Field(default=None, max_length=4096)
    image_b64: str | None = Field(default=None, max_length=8_000_000)

    @model_validator(mode="after")
    def _present(self) -> IdentifyIn:
        if self.method in ("card", "qr") and not (self.value or "").strip():
            raise InvalidValue("Give the card number or the QR code.")
        if self.method == "face" and not self.image_b64:
            raise InvalidValue("Give the face photo.")
        return self


class OpenIn(BaseModel):
    category: BinCategory
    #: seconds to wait for the lid to confirm opening before answering (0 = answer at once)
    wait_s: float = Field(default=0.0, ge=0.0, le=15.0)


class DepositIn(BaseModel):
    weight_kg: float
    photo_b64: str = Field(min_length=1, max_length=8_000_000)

    @field_validator("weight_kg", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise InvalidValue("Must be a number.")
        if isinstance(v, int | float) and not math.isfinite(float(v)):
            raise InvalidValue("The weight must be a finite number.")
        return v


class Prompt(BaseModel):
    key: str
    lang: str
    text: str
    url: str


class SessionOut(BaseModel):
    session_id: int
    status: str
    resident: str
    method: str
    expires_at: datetime
    lid: str | None = None
    command_id: int | None = None
    bin_id: int | None = None
    category: str | None = None
    outside_hours: bool = False
    next_open: datetime | None = None
    points: int | None = None
    prompts: list[Prompt] = []


class DepositOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    bin_id: int
    resident_id: int | None
    household_id: int | None
    building_id: int | None
    category: str
    method: str
    weight_kg: float | None
    photo_sha256: str | None
    status: str
    outside_hours: bool
    at: datetime
    inspection: str
    inspected_by: str | None
    inspected_at: datetime | None
    inspection_note: str | None


class DepositResult(BaseModel):
    deposit: DepositOut
    points_awarded: int
    points_balance: int
    prompts: list[Prompt] = []


class InspectIn(BaseModel):
    result: Inspection
    note: str | None = Field(default=None, max_length=300)


class PromptTextIn(BaseModel):
    key: str = Field(min_length=1, max_length=40)
    lang: Literal["zh", "en"]
    text: str = Field(min_length=1, max_length=500)
    station_id: int | None = None


class GuideIn(BaseModel):
    item: Any = None


class SupervisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    station_id: int
    kind: str
    at: datetime
    snapshot_sha256: str | None
    score: float
    status: str
    note: str | None
    alarm_id: int | None


class FrameResult(BaseModel):
    outside_hours: bool
    motion: float
    pile: float | None
    supervision_id: int | None = None
    alarm_id: int | None = None
