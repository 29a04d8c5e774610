"""Pydantic shapes of work orders (API in and out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from linli.core.errors import InvalidValue
from linli.workorders.models import CATEGORIES

Severity = Literal["critical", "major", "minor", "warning", "info"]
Status = Literal["new", "assigned", "in_progress", "resolved", "closed"]


class WorkOrderIn(BaseModel):
    category: str
    severity: Severity = "minor"
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    building_id: int | None = None
    grid_id: int | None = None
    location: str | None = Field(default=None, max_length=200)
    requester_resident_id: int | None = None

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise InvalidValue("Must be one of: %(expected)s.", expected=", ".join(CATEGORIES))
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        if not v.strip():
            raise InvalidValue("The title is empty.")
        return v.strip()


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    author: str
    kind: str
    text: str | None
    from_status: str | None
    to_status: str | None
    photo: str | None


class WorkOrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    number: str
    source: str
    source_ref: str | None
    category: str
    severity: str
    title: str
    description: str | None
    building_id: int | None
    grid_id: int | None
    location: str | None
    assignee_user_id: int | None
    assignee_role: str | None
    assignee_name: str | None = None
    requester_resident_id: int | None
    status: str
    created_at: datetime
    due_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    escalation_level: int
    reopen_count: int
    resolution: str | None
    resolution_photo: str | None
    rating: int | None
    rating_comment: str | None
    overdue: bool = False


class WorkOrderDetail(WorkOrderOut):
    notes: list[NoteOut] = Field(default_factory=list)


class RequestedOrderOut(BaseModel):
    """What the resident who raised an order sees of it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    number: str
    category: str
    title: str
    status: str
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    resolution_photo: str | None
    rating: int | None
    rating_comment: str | None


class AssignIn(BaseModel):
    assignee_user_id: int


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=5000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise InvalidValue("The text is empty.")
        return v.strip()


class OptionalTextIn(BaseModel):
    text: str | None = Field(default=None, max_length=5000)


class RateIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)


class KpiSummary(BaseModel):
    count: int
    open: int
    avg_hours_to_respond: float | None
    avg_hours_to_resolve: float | None
    overdue_rate: float
    avg_rating: float | None


class KpisOut(BaseModel):
    total: KpiSummary
    by_category: dict[str, KpiSummary]
    by_grid: dict[str, KpiSummary]

    @classmethod
    def of(cls, data: dict[str, Any]) -> KpisOut:
        return cls.model_validate(data)
