"""Shapes of users, role grants, API tokens and audit entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linli.core.roles import Perm, Role


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    display_name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    language: str = Field(default="zh_CN", pattern=r"^(en|zh_CN)$")
    role: Role | None = None
    resident_id: int | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    email: str | None
    language: str
    is_active: bool
    resident_id: int | None
    roles: list[str] = Field(default_factory=list)


class GrantIn(BaseModel):
    user_id: int
    role: Role


class GrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    user_id: int
    community_id: int | None
    role: str


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    permissions: list[Perm] = Field(min_length=1)
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it in the device or integration")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    actor_user_id: int | None
    community_id: int | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    hash: str


class AuditPage(BaseModel):
    total: int
    items: list[AuditOut]
