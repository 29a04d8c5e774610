"""Pydantic shapes of facility monitoring (API in and out)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from linli.core.errors import InvalidValue
from linli.workorders.models import CATEGORIES

Severity = Literal["critical", "major", "minor", "warning", "info"]
MAX_ATTRIBUTES_BYTES = 16 * 1024
DEVICE_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,63}$"


def _check_category(v: str) -> str:
    if v not in CATEGORIES:
        raise InvalidValue("Must be one of: %(expected)s.", expected=", ".join(CATEGORIES))
    return v


def _check_attributes(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return v
    if len(json.dumps(v, ensure_ascii=False)) > MAX_ATTRIBUTES_BYTES:
        raise InvalidValue("The attributes are too large (16 KB at most).")
    return v


# -- profiles -------------------------------------------------------------------------------


class MetricSpec(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    unit: str = Field(default="", max_length=16)
    kind: Literal["number", "bool", "enum"] = "number"
    min: float | None = None
    max: float | None = None
    states: list[str] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> MetricSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidValue("The minimum is above the maximum.")
        if self.kind == "enum" and not self.states:
            raise InvalidValue("A metric of kind enum needs its states.")
        return self

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "unit": self.unit, "kind": self.kind}
        if self.min is not None:
            d["min"] = self.min
        if self.max is not None:
            d["max"] = self.max
        if self.states:
            d["states"] = list(self.states)
        return d


class ProfileIn(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,49}$")
    name: str = Field(min_length=1, max_length=100)
    name_zh: str | None = Field(default=None, max_length=100)
    category: str = "facility"
    metrics: list[MetricSpec] = Field(min_length=1, max_length=50)
    report_interval_s: int = Field(default=60, ge=5, le=86400)

    _category = field_validator("category")(_check_category)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: list[MetricSpec]) -> list[MetricSpec]:
        keys = [m.key for m in v]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise InvalidValue("Metric %(key)s appears twice.", key=dup[0])
        return v


class ProfileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    key: str
    name: str
    name_zh: str
    category: str
    metrics: list[dict[str, Any]]
    report_interval_s: int
    community_id: int | None


# -- devices --------------------------------------------------------------------------------


class DeviceIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    profile_id: int | None = None
    profile: str | None = Field(default=None, max_length=50, description="profile key")
    key: str | None = Field(default=None, pattern=DEVICE_KEY)
    secret: str | None = Field(default=None, min_length=16, max_length=128)
    building_id: int | None = None
    location: str | None = Field(default=None, max_length=200)
    map_x: float | None = Field(default=None, ge=0, le=1)
    map_y: float | None = Field(default=None, ge=0, le=1)
    attributes: dict[str, Any] = Field(default_factory=dict)

    _attrs = field_validator("attributes")(_check_attributes)

    @model_validator(mode="after")
    def _one_profile(self) -> DeviceIn:
        if self.profile_id is None and not self.profile:
            raise InvalidValue("Choose the device profile.")
        return self


class DeviceUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    building_id: int | None = None
    location: str | None = Field(default=None, max_length=200)
    map_x: float | None = Field(default=None, ge=0, le=1)
    map_y: float | None = Field(default=None, ge=0, le=1)
    attributes: dict[str, Any] | None = None
    enabled: bool | None = None

    _attrs = field_validator("attributes")(_check_attributes)

    @model_validator(mode="after")
    def _no_nulls(self) -> DeviceUpdate:
        for k in ("name", "enabled"):
            if k in self.model_fields_set and getattr(self, k) is None:
                raise InvalidValue("%(field)s cannot be empty.", field=k)
        return self

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    key: str
    name: str
    profile_id: int
    profile: str = ""
    building_id: int | None
    location: str | None
    map_x: float | None
    map_y: float | None
    attributes: dict[str, Any]
    enabled: bool
    online: bool
    status: str = "offline"
    last_seen_at: datetime | None
    accepted_count: int
    rejected_count: int
    created_at: datetime


class DeviceCreated(DeviceOut):
    secret: str = Field(description="shown once: store it in the device now")


class LatestValueOut(BaseModel):
    metric: str
    ts: datetime
    value: float
    unit: str = ""


class SeriesOut(BaseModel):
    metric: str
    unit: str
    start: datetime
    end: datetime
    resolution: str
    step: int = 1
    #: [time, average, minimum, maximum]
    points: list[list[Any]]


# -- rules and alarms -----------------------------------------------------------------------


class RuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    condition: dict[str, Any]
    severity: Severity = "major"
    profile_id: int | None = None
    device_id: int | None = None
    category: str = "facility"
    create_work_order: bool = True
    message: str | None = Field(default=None, max_length=200)
    enabled: bool = True

    _category = field_validator("category")(_check_category)


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    condition: dict[str, Any]
    severity: str
    profile_id: int | None
    device_id: int | None
    category: str
    create_work_order: bool
    message: str | None
    enabled: bool


class AlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int | None
    rule_id: int | None
    source: str
    kind: str
    severity: str
    status: str
    message: str
    value: float | None
    occurrences: int
    started_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    cleared_at: datetime | None
    cleared_by: str | None
    work_order_id: int | None


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int | None
    topic: str
    payload: str
    reason: str
    detail: str | None
    received_at: datetime


# -- commands -------------------------------------------------------------------------------


class CommandIn(BaseModel):
    name: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: int = Field(default=10, ge=1, le=3600)

    @field_validator("params")
    @classmethod
    def _small(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v, ensure_ascii=False)) > 4096:
            raise InvalidValue("The parameters are too large (4 KB at most).")
        return v


class CommandOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int
    name: str
    params: dict[str, Any]
    status: str
    requested_by: str
    created_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    timeout_s: int
    result: dict[str, Any] | None


# -- ingestion ------------------------------------------------------------------------------


class IngestRejection(BaseModel):
    index: int | None = None
    device: str | None = None
    reason: str
    detail: str = ""
    message: str


class IngestResult(BaseModel):
    messages: int
    accepted: int
    rejected: int
    samples: int
    duplicates: int
    alarms_raised: int
    alarms_cleared: int
    rejections: list[IngestRejection] = Field(default_factory=list)


# -- map ------------------------------------------------------------------------------------


class MapBuilding(BaseModel):
    id: int
    name: str
    map_x: float | None
    map_y: float | None


class MapDevice(BaseModel):
    id: int
    key: str
    name: str
    profile: str
    building_id: int | None
    map_x: float | None
    map_y: float | None
    status: str
    alarms: int = 0


class FacilityMap(BaseModel):
    buildings: list[MapBuilding]
    devices: list[MapDevice]
    counts: dict[str, int]
