"""Web plumbing shared by every domain: DB sessions, who is calling, permissions, CSRF, pages.

Tenancy is explicit in the path: every community-scoped route has ``{cid}`` and the
``require(perm)`` dependency checks that the caller holds a role granting ``perm`` *in that
community* (or is a platform admin). Services then filter every query by ``ctx.community_id``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from linli.core import i18n
from linli.core.audit import Actor
from linli.core.config import Settings
from linli.core.db import Database, utcnow
from linli.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from linli.core.models import ApiToken, RoleGrant, User
from linli.core.roles import GRID_SCOPED_ROLES, Perm, Role, permissions_for
from linli.core.security import parse_token_prefix, token_matches

PACKAGE_DIR = Path(__file__).resolve().parent.parent
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


# -- database session ------------------------------------------------------------------


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. Routes commit explicitly; anything uncommitted is rolled back."""
    s = get_db(request).sessionmaker()
    try:
        yield s
    except (OverflowError, DataError) as exc:
        # A value the database cannot hold (an id typed or guessed far out of range, a NUL
        # character in text on PostgreSQL): the caller's mistake, not a server error.
        raise ValidationFailed(
            "A value in the request is out of range or not allowed.", code="invalid_value"
        ) from exc
    finally:
        s.rollback()
        s.close()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# -- principals -------------------------------------------------------------------------


@dataclass
class Principal:
    """Who is calling: a logged-in user or an API token."""

    user: User | None
    token: ApiToken | None
    #: community id (None = all communities) -> roles
    grants: dict[int | None, set[Role]] = field(default_factory=dict)
    via_session: bool = False
    ip: str | None = None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.username
        assert self.token is not None
        return f"token:{self.token.name}"

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def is_platform_admin(self) -> bool:
        return Role.PLATFORM_ADMIN in self.grants.get(None, set())

    def roles_in(self, community_id: int) -> set[Role]:
        return set(self.grants.get(community_id, set())) | set(self.grants.get(None, set()))

    def permissions_in(self, community_id: int) -> frozenset[Perm]:
        if self.token is not None:
            if self.token.community_id != community_id:
                return frozenset()
            return frozenset(
                Perm(p) for p in self.token.permissions if p in Perm._value2member_map_
            )
        return permissions_for(self.roles_in(community_id))

    def community_ids(self) -> set[int | None]:
        return set(self.grants)

    def actor(self) -> Actor:
        return Actor(self.user_id, self.name, self.ip)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _load_user_principal(s: Session, user: User, ip: str | None) -> Principal:
    grants: dict[int | None, set[Role]] = {}
    for g in s.scalars(select(RoleGrant).where(RoleGrant.user_id == user.id)):
        grants.setdefault(g.community_id, set()).add(Role(g.role))
    return Principal(user=user, token=None, grants=grants, via_session=True, ip=ip)


def session_principal(request: Request, s: Session) -> Principal | None:
    uid = request.session.get("uid")
    if uid is None:
        return None
    user = s.get(User, uid)
    if user is None or not user.is_active or request.session.get("sv") != user.session_version:
        request.session.clear()
        return None
    return _load_user_principal(s, user, client_ip(request))


def token_principal(request: Request, s: Session) -> Principal | None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    raw = auth[7:].strip()
    prefix = parse_token_prefix(raw)
    if prefix is None:
        raise Unauthorized("Invalid API token.", code="invalid_token")
    tok = s.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
    now = utcnow()
    if (
        tok is None
        or not token_matches(raw, tok.token_hash)
        or tok.revoked_at is not None
        or (tok.expires_at is not None and tok.expires_at <= now)
    ):
        raise Unauthorized("Invalid API token.", code="invalid_token")
    if tok.last_used_at is None or (now - tok.last_used_at).total_seconds() > 60:
        tok.last_used_at = now
        s.commit()
    return Principal(user=None, token=tok, ip=client_ip(request))


def optional_principal(request: Request, s: Session = Depends(get_session)) -> Principal | None:
    return token_principal(request, s) or session_principal(request, s)


def current_principal(
    request: Request, p: Principal | None = Depends(optional_principal)
) -> Principal:
    if p is None:
        raise Unauthorized("Please log in.", code="login_required")
    return p


def current_user(p: Principal = Depends(current_principal)) -> User:
    if p.user is None:
        raise Forbidden("This action needs a user, not an API token.")
    return p.user


# -- community context -----------------------------------------------------------------


@dataclass
class Ctx:
    """The caller inside one community: what every scoped service function receives."""

    principal: Principal
    community_id: int
    roles: set[Role]
    permissions: frozenset[Perm]
    timezone: str = "Asia/Shanghai"
    #: building ids a grid-scoped caller may see; None = no restriction
    building_scope: set[int] | None = None

    def can(self, perm: Perm) -> bool:
        return perm in self.permissions

    def require(self, perm: Perm) -> None:
        if perm not in self.permissions:
            raise Forbidden("You do not have permission to do this.", code="permission_denied")

    @property
    def actor(self) -> Actor:
        return self.principal.actor()

    @property
    def user_id(self) -> int | None:
        return self.principal.user_id


def build_ctx(s: Session, p: Principal, cid: int) -> Ctx:
    from linli.people.models import Building, Community, Grid

    community = s.get(Community, cid)
    perms = p.permissions_in(cid)
    if community is None or not perms:
        # The same answer for "does not exist" and "not yours": ids of other communities
        # reveal nothing.
        raise NotFound("Community not found.", code="community_not_found")
    roles = p.roles_in(cid)
    scope: set[int] | None = None
    if (
        p.user is not None
        and roles
        and roles <= (GRID_SCOPED_ROLES | {Role.RESIDENT, Role.PROFESSIONAL})
    ) and roles & GRID_SCOPED_ROLES:
        q = (
            select(Building.id)
            .join(Grid, Building.grid_id == Grid.id)
            .where(Grid.worker_user_id == p.user.id, Building.community_id == cid)
        )
        scope = set(s.scalars(q))
    return Ctx(
        principal=p,
        community_id=cid,
        roles=roles,
        permissions=perms,
        timezone=community.timezone,
        building_scope=scope,
    )


def system_ctx(community_id: int, name: str = "system", timezone: str = "Asia/Shanghai") -> Ctx:
    """A context with every permission, for the CLI, the demo and background jobs."""
    user = User(id=None, username=name, display_name=name, password_hash="")
    p = Principal(user=user, token=None, grants={community_id: {Role.STAFF}})
    return Ctx(
        principal=p,
        community_id=community_id,
        roles={Role.STAFF},
        permissions=frozenset(Perm),
        timezone=timezone,
    )


def require(perm: Perm) -> Callable[..., Ctx]:
    """Dependency: the caller must hold ``perm`` in community ``{cid}`` of the path."""

    def dep(
        cid: int,
        request: Request,
        s: Session = Depends(get_session),
        p: Principal = Depends(current_principal),
    ) -> Ctx:
        ctx = build_ctx(s, p, cid)
        ctx.require(perm)
        request.state.ctx = ctx
        return ctx

    return dep


# -- CSRF --------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    tok = request.session.get("csrf")
    if not tok:
        tok = secrets.token_urlsafe(32)
        request.session["csrf"] = tok
    return str(tok)


async def csrf_protect(request: Request) -> None:
    """Every unsafe request authenticated by the session cookie must carry the CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if not given:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not expected or not given or not secrets.compare_digest(str(expected), given):
        raise Forbidden(
            "The form has expired or did not come from this site. Reload the page and try again.",
            code="csrf_failed",
        )


def page_router(**kwargs: Any) -> APIRouter:
    """Router for HTML pages: CSRF on every unsafe request, hidden from the OpenAPI schema."""
    deps = list(kwargs.pop("dependencies", []))
    return APIRouter(dependencies=[Depends(csrf_protect), *deps], include_in_schema=False, **kwargs)


def api_router(**kwargs: Any) -> APIRouter:
    deps = list(kwargs.pop("dependencies", []))
    return APIRouter(dependencies=[Depends(csrf_protect), *deps], **kwargs)


# -- templates ---------------------------------------------------------------------------


def _template_dirs() -> list[Path]:
    dirs = [PACKAGE_DIR / "templates"]
    for child in sorted(PACKAGE_DIR.iterdir()):
        t = child / "templates"
        if child.is_dir() and t.is_dir() and t != dirs[0]:
            dirs.append(t)
    return dirs


def _localtime(
    value: datetime | None, tz: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M"
) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def _mask_phone(value: str | None) -> str:
    if not value:
        return ""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def make_templates() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in _template_dirs()]),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda m: i18n.gettext(m),
        # unformatted: Jinja's newstyle gettext fills %(num)s and the other variables itself
        lambda s, p, n: i18n.translations(i18n.get_language()).ngettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, m: i18n.pgettext(c, m),
    )
    env.filters["localtime"] = _localtime
    env.filters["mask_phone"] = _mask_phone
    return env


def build_nav(ctx: Ctx | None) -> list[dict[str, Any]]:
    """Sections of the product with the pages the caller may open in this community."""
    from linli.core import nav

    if ctx is None:
        return []
    out = []
    for key, label in nav.SECTIONS:
        items = [
            {"label": i.label, "href": f"/c/{ctx.community_id}{i.path}"}
            for i in nav.items()
            if i.section == key and ctx.can(i.perm)
        ]
        planned = not any(i.section == key for i in nav.items())
        if items or planned:
            out.append({"key": key, "label": label, "items": items, "planned": planned})
    return out


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A one-time message shown on the next page (already translated)."""
    request.session["flash"] = [message, kind]


def form_errors(exc: Exception) -> dict[str, str]:
    """Field -> message for re-rendering a form after a failed submit."""
    from pydantic import ValidationError

    from linli.core.errors import AppError

    out: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        from linli.core.errors import pydantic_message

        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "_"
            out.setdefault(field, pydantic_message(dict(err), i18n.gettext))
    elif isinstance(exc, AppError):
        msg = i18n.gettext(exc.message, **exc.params) if exc.params else i18n.gettext(exc.message)
        out[exc.field or "_"] = msg
        for e in exc.errors:
            out.setdefault(str(e.get("field") or "_"), str(e.get("message")))
    return out


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    env: Environment = request.app.state.templates
    ctx: dict[str, Any] = {
        "request": request,
        "lang": i18n.get_language(),
        "languages": i18n.LANGUAGES,
        "csrf_token": csrf_token(request),
        "csrf_field": Markup(
            f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf_token(request)}">'
        ),
        "nav": build_nav(getattr(request.state, "ctx", None)),
        "me": getattr(request.state, "principal", None),
        "ctx": getattr(request.state, "ctx", None),
        "now": utcnow(),
    }
    flashed = request.session.pop("flash", None) if "session" in request.scope else None
    if flashed:
        ctx["flash"], ctx["flash_kind"] = flashed
    if context:
        ctx.update(context)
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status)
