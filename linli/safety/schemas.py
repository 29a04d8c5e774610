"""Pydantic shapes of the safety API. Watch-list face templates appear in none of them, and
camera URLs are shown with their credentials redacted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

ConsentBy = Literal["person", "family"]
Outcome = Literal["well", "needs_help", "hospital", "not_home", "other"]

#: analytics REASONS / stream REASONS codes → translatable text (shown in forms and problems)
CONFIG_MESSAGES: dict[str, str] = {
    "bad_config": "The analytics settings are not valid.",
    "bad_id": "Zone and line ids must be 1-64 letters, digits, '-', '_' or '.'.",
    "duplicate_id": "Two zones or lines have the same id.",
    "zone_outside_frame": "A zone point is outside the frame (coordinates run from 0 to 1).",
    "line_outside_frame": "A line end is outside the frame (coordinates run from 0 to 1).",
    "zone_too_few_points": "A zone needs at least 3 points.",
    "zone_zero_area": "A zone has no area (its points lie on one line).",
    "zone_self_intersecting": "A zone's edges cross each other; draw a simple polygon.",
    "line_too_short": "A line's two ends are (almost) the same point.",
    "bad_hours": "Hours must look like 22:00-06:00.",
    "bad_timezone": "Unknown time zone.",
    "bad_rule": "A rule setting is out of range.",
    "unknown_line": "No such line on this camera.",
}

STREAM_MESSAGES: dict[str, str] = {
    "bad_url": "The stream address is not a video file path or an http(s):// or rtsp:// URL.",
    "file_not_found": "The video file does not exist.",
    "cannot_open": "The video source could not be opened.",
    "connect_failed": "Could not connect to the camera.",
    "timeout": "The camera did not answer in time.",
    "http_error": "The camera answered with an HTTP error.",
    "unsupported_content": "The camera sends something that is not MJPEG, JPEG or video.",
    "malformed_stream": "The stream's data is not valid images.",
    "stream_lost": "The stream stopped in the middle.",
    "internal_error": "Unexpected error while reading the stream.",
    "bad_stream_config": "The stream settings are not valid.",
}


_BAD_URL = "bad_url"
_BAD_CONFIG = "bad_config"


def check_url(v: str) -> str:
    from linli.vision.video import StreamError, classify_url

    v = v.strip()
    try:
        kind = classify_url(v)
    except StreamError as exc:
        msg = STREAM_MESSAGES.get(exc.code) or STREAM_MESSAGES[_BAD_URL]
        raise InvalidValue(msg) from exc
    if kind == "http" and not v.lower().startswith(("http://", "https://")):
        msg = STREAM_MESSAGES[_BAD_URL]
        raise InvalidValue(msg)
    return v


def check_analytics(v: dict[str, Any]) -> dict[str, Any]:
    from linli.vision.analytics import CameraConfig, ConfigError

    try:
        CameraConfig.from_dict(v)
    except ConfigError as exc:
        msg = CONFIG_MESSAGES.get(exc.code) or CONFIG_MESSAGES[_BAD_CONFIG]
        raise InvalidValue(msg) from exc
    return v


class CameraIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=500)
    building_id: int | None = None
    location: str | None = Field(default=None, max_length=200)
    fps: float = Field(default=2.0, gt=0, le=30)
    enabled: bool = True
    face_watch: bool = False
    blur_faces: bool = False
    gate_id: int | None = None
    silent_after_s: int = Field(default=120, ge=10, le=86400)
    analytics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_url(v)

    @field_validator("analytics")
    @classmethod
    def _analytics(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_analytics(v)


class AnalyticsIn(BaseModel):
    """Zones and lines as drawn in the editor (normalised 0..1 coordinates)."""

    zones: list[dict[str, Any]] = Field(default_factory=list, max_length=32)
    lines: list[dict[str, Any]] = Field(default_factory=list, max_length=32)
    anchor: Literal["bottom", "center"] = "bottom"

    def as_config(self) -> dict[str, Any]:
        return check_analytics({"zones": self.zones, "lines": self.lines, "anchor": self.anchor})


class CameraOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    building_id: int | None
    location: str | None
    fps: float
    enabled: bool
    face_watch: bool
    blur_faces: bool
    gate_id: int | None
    silent_after_s: int
    analytics: dict[str, Any]
    state: str
    last_frame_at: datetime | None
    last_error: str | None
    frame_width: int | None
    frame_height: int | None


class SafetyEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    camera_id: int
    kind: str
    at: datetime
    track_id: int | None
    zone_id: str | None
    line_id: str | None
    direction: str | None
    count: int | None
    box: list[float] | None
    details: dict[str, Any]
    has_snapshot: bool = False
    has_clip: bool = False
    alarm_id: int | None


class LineCountOut(BaseModel):
    camera_id: int
    line_id: str
    hour: datetime
    count_in: int
    count_out: int


class WatchEntryIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=500)
    authorised_by_user_id: int | None = None
    expires_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 10:
            raise InvalidValue(
                "Give the reason for watching this person (at least %(n)s characters).", n=10
            )
        return v


class WatchEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    reason: str
    authorised_by: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    status: str
    ended_at: datetime | None
    faces: int = 0
    matches: int = 0


class WatchEndIn(BaseModel):
    reason: str = Field(min_length=1, max_length=300)


class WatchMatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    camera_id: int | None
    at: datetime
    distance: float
    box: list[float] | None
    has_snapshot: bool = False
    alarm_id: int | None


class CarePersonIn(BaseModel):
    resident_id: int
    consent_by: ConsentBy
    consent_name: str = Field(min_length=1, max_length=100)
    consent_note: str | None = Field(default=None, max_length=300)
    family_name: str | None = Field(default=None, max_length=100)
    family_phone: str | None = Field(default=None, max_length=30)
    identity_id: int | None = None
    device_ids: list[int] = Field(default_factory=list, max_length=20)
    inactive_hours: float = Field(default=24.0, ge=1, le=168)
    water_hours: float = Field(default=3.0, ge=0.5, le=48)
    night_from: str = "23:00"
    night_to: str = "05:00"

    @field_validator("consent_name")
    @classmethod
    def _consent(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise InvalidValue("This field is required.")
        return v

    @field_validator("family_phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().replace(" ", "").replace("-", "")
        if not re.fullmatch(r"\+?\d{5,20}", v):
            raise InvalidValue("Not a valid phone number.")
        return v

    @field_validator("night_from", "night_to")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        v = v.strip()
        if not _HHMM.match(v):
            raise InvalidValue("Use the form HH:MM, e.g. 23:00.")
        return v


class CarePersonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    resident_id: int
    name: str
    building_id: int | None
    consent_by: str
    consent_name: str
    consent_at: datetime
    family_name: str | None
    identity_id: int | None
    device_ids: list[int]
    inactive_hours: float
    water_hours: float
    night_from: str
    night_to: str
    active: bool
    last_activity_at: datetime | None
    last_activity_source: str | None
    baseline: dict[str, Any]


class VisitIn(BaseModel):
    outcome: Outcome
    note: str | None = Field(default=None, max_length=2000)


class VisitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    person_id: int
    reason: str
    opened_at: datetime
    work_order_id: int | None
    alarm_id: int | None
    outcome: str | None
    note: str | None
    visited_at: datetime | None
    visited_by: str | None
