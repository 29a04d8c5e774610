"""Pydantic shapes of the consultation domain (API in and out)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue

MAX_TEXT = 5000
MAX_SHORT = 300


def _clean_text(value: str) -> str:
    v = value.strip()
    if not v:
        raise InvalidValue("The text is empty.")
    if "\x00" in v:
        raise InvalidValue("Has characters that are not allowed here.")
    return v


class DemandIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    category: str | None = Field(default=None, max_length=32)
    building_id: int | None = None
    location: str | None = Field(default=None, max_length=200)
    anonymous: bool = False
    #: staff entering a demand received by phone or in person
    channel: Literal["app", "phone", "in_person"] = "app"
    resident_id: int | None = None

    _text = field_validator("text")(_clean_text)


class DemandOut(BaseModel):
    id: int
    text: str
    category: str
    suggested_category: str | None
    building_id: int | None
    building: str | None = None
    location: str | None
    anonymous: bool
    author: str | None  # None when anonymous
    channel: str
    status: str
    reply: str | None
    replied_at: datetime | None
    topic_id: int | None
    work_order_id: int | None
    has_photo: bool
    created_at: datetime
    resolved_at: datetime | None


class DemandReplyIn(BaseModel):
    reply: str = Field(min_length=1, max_length=MAX_TEXT)
    status: Literal["accepted", "in_progress", "resolved", "closed", "rejected"] = "accepted"

    _reply = field_validator("reply")(_clean_text)


class ToOrderIn(BaseModel):
    severity: Literal["critical", "major", "minor", "warning", "info"] = "minor"


class HotIssue(BaseModel):
    demand_ids: list[int]
    residents: int
    category: str
    sample: str


class TopicIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    background: str | None = Field(default=None, max_length=20000)
    demand_ids: list[int] = Field(default_factory=list, max_length=500)

    _title = field_validator("title")(_clean_text)


class TopicOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    background: str | None
    status: str
    created_at: datetime


class MeetingIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    mode: Literal["online", "on_site"] = "on_site"
    starts_at: datetime
    place: str | None = Field(default=None, max_length=300)
    agenda: str | None = Field(default=None, max_length=MAX_TEXT)
    minutes: str | None = Field(default=None, max_length=20000)

    _title = field_validator("title")(_clean_text)


class MeetingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    mode: str
    starts_at: datetime
    place: str | None
    agenda: str | None
    minutes: str | None


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    parent_id: int | None = None

    _text = field_validator("text")(_clean_text)


class CommentOut(BaseModel):
    id: int
    parent_id: int | None
    author: str
    expert: bool
    profession: str | None = None
    text: str | None  # None when hidden
    hidden: bool
    hidden_reason: str | None
    reports: int | None = None  # moderators only
    created_at: datetime


class ReportIn(BaseModel):
    reason: str | None = Field(default=None, max_length=MAX_SHORT)


class HideIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_SHORT)

    _reason = field_validator("reason")(_clean_text)


class StatementIn(BaseModel):
    text: str = Field(min_length=1, max_length=280)

    _text = field_validator("text")(_clean_text)


class StatementVoteIn(BaseModel):
    vote: Literal[-1, 0, 1]


class PollIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    topic_id: int | None = None
    kind: Literal["single", "multiple", "ranked", "owners"] = "single"
    unit: Literal["resident", "household", "owner"] = "resident"
    secret: bool = False
    special_matter: bool = False
    options: list[str] = Field(default_factory=list, max_length=50)
    max_choices: int = Field(default=1, ge=1, le=50)
    quorum: float = Field(default=0.0, ge=0, le=1)
    threshold: float = Field(default=0.0, ge=0, le=1)
    closes_at: datetime | None = None

    _title = field_validator("title")(_clean_text)

    @field_validator("options")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        out = [o.strip() for o in v if o.strip()]
        if any(len(o) > 200 for o in out):
            raise InvalidValue("An option is too long (200 characters at most).")
        if len(set(out)) != len(out):
            raise InvalidValue("Two options have the same text.")
        return out


class OptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    label: str
    position: int


class PollOut(BaseModel):
    id: int
    title: str
    description: str | None
    topic_id: int | None
    kind: str
    unit: str
    secret: bool
    special_matter: bool
    max_choices: int
    quorum: float
    threshold: float
    status: str
    closes_at: datetime | None
    options: list[OptionOut]
    voters: int
    result: dict[str, Any] | None


class BallotIn(BaseModel):
    choices: list[int] = Field(min_length=1, max_length=50)


class ActionIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    owner_name: str = Field(min_length=1, max_length=100)
    owner_user_id: int | None = None
    due_date: date | None = None
    topic_id: int | None = None
    poll_id: int | None = None

    _title = field_validator("title")(_clean_text)
    _owner = field_validator("owner_name")(_clean_text)


class ActionUpdateIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    progress: int = Field(ge=0, le=100)
    status: Literal["open", "in_progress", "done"] | None = None

    _text = field_validator("text")(_clean_text)


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    owner_name: str
    due_date: date | None
    status: str
    progress: int
    topic_id: int | None
    poll_id: int | None
    created_at: datetime


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    body: str | None
    link: str | None
    created_at: datetime
    read_at: datetime | None
