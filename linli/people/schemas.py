"""Pydantic shapes of the people registry (API in and out)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue
from linli.people.models import GENDERS, HOUSEHOLD_ROLES, PROFESSIONS, RESIDENT_TAGS

PHONE_RE = re.compile(r"^\+?[0-9][0-9\- ]{4,19}$")
CURRENT_YEAR = datetime.now().year


def clean_phone(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    if not PHONE_RE.match(v):
        raise InvalidValue("Not a valid phone number.")
    v = v.replace(" ", "").replace("-", "")
    if v.startswith("+86"):
        v = v[3:]
    elif v.startswith("0086"):
        v = v[4:]
    return v


class CommunityIn(BaseModel):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=100)
    name_en: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        # pages convert every time into the community's zone: an unknown one would break them
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValue("Unknown time zone") from None
        return v


class CommunityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    name: str
    name_en: str | None
    address: str | None
    timezone: str


class GridIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    worker_user_id: int | None = None


class GridOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    worker_user_id: int | None


class BuildingIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    floors: int = Field(default=6, ge=1, le=200)
    grid_id: int | None = None
    map_x: float | None = Field(default=None, ge=0, le=1)
    map_y: float | None = Field(default=None, ge=0, le=1)


class BuildingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    floors: int
    grid_id: int | None
    map_x: float | None
    map_y: float | None


class UnitIn(BaseModel):
    building_id: int
    label: str = Field(min_length=1, max_length=30)
    floor: int | None = Field(default=None, ge=-5, le=200)
    area_m2: float | None = Field(default=None, gt=0, le=10000)


class UnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    building_id: int
    label: str
    floor: int | None
    area_m2: float | None


class ResidentIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    unit_id: int | None = None
    phone: str | None = Field(default=None, max_length=30)
    birth_year: int | None = Field(default=None, ge=1900, le=CURRENT_YEAR)
    gender: str | None = None
    household_role: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
    owner: bool = False
    emergency_contact_name: str | None = Field(default=None, max_length=100)
    emergency_contact_phone: str | None = Field(default=None, max_length=30)
    emergency_contact_relation: str | None = Field(default=None, max_length=30)
    notes: str | None = Field(default=None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v

    @field_validator("phone", "emergency_contact_phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return clean_phone(v)

    @field_validator("gender")
    @classmethod
    def _gender(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if v not in GENDERS:
            raise InvalidValue("Must be one of: %(expected)s.", expected=", ".join(GENDERS))
        return v

    @field_validator("household_role")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if v not in HOUSEHOLD_ROLES:
            raise InvalidValue("Must be one of: %(expected)s.", expected=", ".join(HOUSEHOLD_ROLES))
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t not in RESIDENT_TAGS]
        if bad:
            raise InvalidValue(
                "Unknown tags: %(tags)s. Allowed: %(allowed)s.",
                tags=", ".join(bad),
                allowed=", ".join(RESIDENT_TAGS),
            )
        return sorted(set(v))


class ResidentOut(BaseModel):
    """Registry entry. Phone numbers are masked unless the caller may see sensitive data."""

    id: int
    name: str
    unit_id: int | None
    unit_label: str | None
    building: str | None
    phone: str | None
    birth_year: int | None
    gender: str | None
    household_role: str | None
    tags: list[str]
    owner: bool
    owned_area_m2: float
    emergency_contact_name: str | None
    emergency_contact_phone: str | None
    emergency_contact_relation: str | None
    updated_at: datetime


class ResidentPage(BaseModel):
    total: int
    items: list[ResidentOut]


class ProfessionalIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    profession: str
    organisation: str | None = Field(default=None, max_length=150)
    phone: str | None = Field(default=None, max_length=30)

    @field_validator("profession")
    @classmethod
    def _prof(cls, v: str) -> str:
        if v not in PROFESSIONS:
            raise InvalidValue("Must be one of: %(expected)s.", expected=", ".join(PROFESSIONS))
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return clean_phone(v)


class ProfessionalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    profession: str
    organisation: str | None
    phone: str | None


class ImportRowError(BaseModel):
    line: int
    reason: str


class ImportReport(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[ImportRowError] = Field(default_factory=list)
    buildings_created: int = 0
    units_created: int = 0
