"""Identity and administration: log-in, passwords, users, role grants, API tokens, audit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from linli.admin.schemas import GrantIn, TokenIn, UserIn
from linli.core import audit, events
from linli.core.config import Settings
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, TooManyRequests, ValidationFailed
from linli.core.models import ApiToken, AuditEntry, LoginAttempt, RoleGrant, User
from linli.core.roles import Perm, Role
from linli.core.security import (
    DUMMY_HASH,
    hash_password,
    new_api_token,
    password_problem,
    verify_password,
)
from linli.core.web import Ctx

PASSWORD_REASONS = {
    "password_too_short": "The password must have at least 8 characters.",
    "password_too_simple": "The password must mix letters with digits or symbols.",
}


# -- log-in ---------------------------------------------------------------------------------


def authenticate(s: Session, settings: Settings, username: str, password: str, ip: str) -> User:
    """Check a log-in. Too many recent failures for the name or the address lock it for a while."""
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    failures_user = s.scalar(
        select(func.count()).where(
            LoginAttempt.username == username,
            LoginAttempt.success.is_(False),
            LoginAttempt.at >= since,
        )
    )
    failures_ip = s.scalar(
        select(func.count()).where(
            LoginAttempt.ip == ip, LoginAttempt.success.is_(False), LoginAttempt.at >= since
        )
    )
    if (failures_user or 0) >= settings.login_max_failures or (failures_ip or 0) >= (
        settings.login_max_failures * 4
    ):
        raise TooManyRequests(
            "Too many failed log-ins. Try again in %(minutes)s minutes.",
            params={"minutes": settings.login_window_seconds // 60},
            code="login_locked",
        )
    user = s.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not ok or not user.is_active:
        s.add(LoginAttempt(username=username[:64], ip=ip, success=False))
        audit.record(
            s,
            audit.Actor(None, username[:100], ip),
            "login.failed",
            "user",
            user.id if user else None,
        )
        s.commit()
        raise ValidationFailed("Wrong username or password.", code="login_failed", field="password")
    s.add(LoginAttempt(username=username, ip=ip, success=True))
    user.last_login_at = utcnow()
    audit.record(s, audit.Actor(user.id, user.username, ip), "login.succeeded", "user", user.id)
    s.commit()
    return user


def change_password(s: Session, user: User, current: str, new: str, ip: str | None) -> None:
    if not verify_password(user.password_hash, current):
        raise ValidationFailed(
            "The current password is wrong.", code="wrong_password", field="current_password"
        )
    problem = password_problem(new)
    if problem:
        raise ValidationFailed(PASSWORD_REASONS[problem], code=problem, field="new_password")
    user.password_hash = hash_password(new)
    user.session_version += 1
    audit.record(s, audit.Actor(user.id, user.username, ip), "password.changed", "user", user.id)


# -- users and roles ----------------------------------------------------------------------------


def create_user(s: Session, actor: audit.Actor, data: UserIn, community_id: int | None) -> User:
    if s.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise Conflict("This username is taken.", field="username")
    problem = password_problem(data.password)
    if problem:
        raise ValidationFailed(PASSWORD_REASONS[problem], code=problem, field="password")
    user = User(
        username=data.username,
        display_name=data.display_name,
        email=data.email,
        language=data.language,
        password_hash=hash_password(data.password),
        resident_id=data.resident_id,
    )
    s.add(user)
    s.flush()
    audit.record(s, actor, "user.created", "user", user.id, community_id=community_id)
    if data.role is not None:
        if data.role == Role.PLATFORM_ADMIN:
            s.add(RoleGrant(user_id=user.id, community_id=None, role=data.role.value))
        elif community_id is not None:
            s.add(RoleGrant(user_id=user.id, community_id=community_id, role=data.role.value))
        s.flush()
    return user


def users_of(s: Session, ctx: Ctx) -> list[tuple[User, list[RoleGrant]]]:
    ctx.require(Perm.USERS_MANAGE)
    grants = list(
        s.scalars(
            select(RoleGrant)
            .where(RoleGrant.community_id == ctx.community_id)
            .order_by(RoleGrant.user_id)
        )
    )
    by_user: dict[int, list[RoleGrant]] = {}
    for g in grants:
        by_user.setdefault(g.user_id, []).append(g)
    users = s.scalars(select(User).where(User.id.in_(list(by_user))).order_by(User.username))
    return [(u, by_user[u.id]) for u in users]


def get_user_in(s: Session, ctx: Ctx, user_id: int) -> User:
    """A user who holds a role in the caller's community."""
    ctx.require(Perm.USERS_MANAGE)
    grant = s.scalar(
        select(RoleGrant.id).where(
            RoleGrant.user_id == user_id, RoleGrant.community_id == ctx.community_id
        )
    )
    user = s.get(User, user_id)
    if user is None or grant is None:
        raise NotFound("User not found.", code="user_not_found")
    return user


def create_community_user(s: Session, ctx: Ctx, data: UserIn) -> User:
    ctx.require(Perm.USERS_MANAGE)
    if data.role is None:
        raise ValidationFailed("Choose a role for the new user.", field="role")
    _check_grantable(ctx, data.role)
    if data.resident_id is not None:
        from linli.people.service import get_resident

        get_resident(s, ctx, data.resident_id)
    return create_user(s, ctx.actor, data, ctx.community_id)


def _check_grantable(ctx: Ctx, role: Role) -> None:
    if role == Role.PLATFORM_ADMIN:
        raise Forbidden("Only the platform operator can make platform admins.", field="role")


def grant_role(s: Session, ctx: Ctx, data: GrantIn) -> RoleGrant:
    ctx.require(Perm.USERS_MANAGE)
    _check_grantable(ctx, data.role)
    user = s.get(User, data.user_id)
    if user is None:
        raise NotFound("User not found.", code="user_not_found", field="user_id")
    existing = s.scalar(
        select(RoleGrant).where(
            RoleGrant.user_id == user.id,
            RoleGrant.community_id == ctx.community_id,
            RoleGrant.role == data.role.value,
        )
    )
    if existing is not None:
        return existing
    g = RoleGrant(
        user_id=user.id, community_id=ctx.community_id, role=data.role.value, granted_by=ctx.user_id
    )
    s.add(g)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "role.granted",
        "user",
        user.id,
        community_id=ctx.community_id,
        details={"role": data.role.value},
    )
    events.emit(
        s,
        "admin.role.granted",
        {"user_id": user.id, "role": data.role.value},
        community_id=ctx.community_id,
    )
    return g


def revoke_grant(s: Session, ctx: Ctx, grant_id: int) -> None:
    ctx.require(Perm.USERS_MANAGE)
    g = s.get(RoleGrant, grant_id)
    if g is None or g.community_id != ctx.community_id:
        raise NotFound("Role grant not found.", code="grant_not_found")
    if g.user_id == ctx.user_id and g.role in (Role.STAFF.value,):
        others = s.scalar(
            select(func.count()).where(
                RoleGrant.community_id == ctx.community_id,
                RoleGrant.role == Role.STAFF.value,
                RoleGrant.user_id != ctx.user_id,
            )
        )
        if not others:
            raise Conflict("You are the last staff member of this community; keep your role.")
    s.execute(delete(RoleGrant).where(RoleGrant.id == g.id))
    audit.record(
        s,
        ctx.actor,
        "role.revoked",
        "user",
        g.user_id,
        community_id=ctx.community_id,
        details={"role": g.role},
    )


# -- API tokens -------------------------------------------------------------------------------


def create_token(s: Session, ctx: Ctx, data: TokenIn) -> tuple[str, ApiToken]:
    ctx.require(Perm.TOKENS_MANAGE)
    extra = set(data.permissions) - set(ctx.permissions)
    if extra:
        raise Forbidden(
            "A token cannot carry permissions you do not hold: %(perms)s",
            params={"perms": ", ".join(sorted(extra))},
            field="permissions",
        )
    raw, prefix, hashed = new_api_token()
    tok = ApiToken(
        community_id=ctx.community_id,
        name=data.name,
        prefix=prefix,
        token_hash=hashed,
        permissions=sorted(p.value for p in data.permissions),
        created_by=ctx.user_id,
        expires_at=utcnow() + timedelta(days=data.expires_days) if data.expires_days else None,
    )
    s.add(tok)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "token.created",
        "api_token",
        tok.id,
        community_id=ctx.community_id,
        details={"name": data.name, "permissions": tok.permissions},
    )
    return raw, tok


def list_tokens(s: Session, ctx: Ctx) -> list[ApiToken]:
    ctx.require(Perm.TOKENS_MANAGE)
    q = select(ApiToken).where(ApiToken.community_id == ctx.community_id).order_by(ApiToken.id)
    return list(s.scalars(q))


def revoke_token(s: Session, ctx: Ctx, token_id: int) -> ApiToken:
    ctx.require(Perm.TOKENS_MANAGE)
    tok = s.get(ApiToken, token_id)
    if tok is None or tok.community_id != ctx.community_id:
        raise NotFound("Token not found.", code="token_not_found")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
        audit.record(
            s, ctx.actor, "token.revoked", "api_token", tok.id, community_id=ctx.community_id
        )
    return tok


# -- audit ------------------------------------------------------------------------------------


def search_audit(
    s: Session,
    ctx: Ctx,
    *,
    action: str | None = None,
    actor: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[AuditEntry]]:
    ctx.require(Perm.AUDIT_READ)
    q = select(AuditEntry).where(AuditEntry.community_id == ctx.community_id)
    if action:
        q = q.where(AuditEntry.action.like(f"{action}%"))
    if actor:
        q = q.where(AuditEntry.actor.like(f"%{actor}%"))
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(s.scalars(q.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)))
    return int(total), rows
