"""Pages: log-in and log-out, language, home, account, users and roles, API tokens, audit."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from linli.admin import service
from linli.admin.schemas import GrantIn, TokenIn, UserIn
from linli.core import i18n, nav
from linli.core.errors import AppError
from linli.core.i18n import N_
from linli.core.roles import Perm, Role
from linli.core.web import (
    Ctx,
    Principal,
    client_ip,
    current_principal,
    flash,
    form_errors,
    get_session,
    get_settings,
    optional_principal,
    page_router,
    render,
    require,
)
from linli.people import service as people

router = page_router()

nav.register(
    nav.NavItem("overview", N_("Community overview"), "", Perm.COMMUNITY_READ),
    nav.NavItem("admin", N_("Users and roles"), "/users", Perm.USERS_MANAGE),
    nav.NavItem("admin", N_("API tokens"), "/tokens", Perm.TOKENS_MANAGE),
    nav.NavItem("admin", N_("Audit log"), "/audit", Perm.AUDIT_READ),
)

ROLE_LABELS: dict[str, str] = {
    Role.PLATFORM_ADMIN: N_("Platform admin"),
    Role.STAFF: N_("Community staff"),
    Role.GRID_WORKER: N_("Grid worker"),
    Role.PROPERTY_MANAGER: N_("Property manager"),
    Role.SECURITY_GUARD: N_("Security guard"),
    Role.PROFESSIONAL: N_("Professional"),
    Role.RESIDENT: N_("Resident"),
}

#: what a permission allows, for the tokens page (a code missing here is shown as it is)
PERM_LABELS: dict[str, str] = {
    "community.read": N_("See the community"),
    "community.manage": N_("Manage the community"),
    "people.read": N_("See residents"),
    "people.write": N_("Edit residents"),
    "people.import": N_("Import residents"),
    "people.sensitive": N_("See sensitive personal data"),
    "grids.manage": N_("Manage grids"),
    "users.manage": N_("Manage users and roles"),
    "tokens.manage": N_("Manage API tokens"),
    "audit.read": N_("Read the audit log"),
    "events.read": N_("Follow the event stream"),
    "self": N_("Own records"),
    "workorders.read": N_("See work orders"),
    "workorders.handle": N_("Handle work orders"),
    "workorders.manage": N_("Manage work orders"),
    "iot.read": N_("See facilities and sensors"),
    "iot.manage": N_("Manage devices and rules"),
    "alarms.handle": N_("Handle alarms"),
    "devices.ingest": N_("Send device data"),
    "devices.command": N_("Send commands to devices"),
}


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "errors": {}})


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    s: Session = Depends(get_session),
) -> Response:
    settings = get_settings(request)
    try:
        if not username or not password:
            raise AppError("Enter your username and password.", field="password", status=422)
        user = service.authenticate(
            s, settings, username.strip(), password, client_ip(request) or ""
        )
    except AppError as exc:
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "username": username, "errors": form_errors(exc)},
            status=exc.status,
        )
    request.session.clear()
    request.session["uid"] = user.id
    request.session["sv"] = user.session_version
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie("lang", user.language, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/lang")
def set_lang(request: Request, lang: str = Form(...), next: str = Form("/")) -> Response:
    chosen = i18n.normalise(lang) or i18n.DEFAULT_LANGUAGE
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie("lang", chosen, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/")
def home(
    request: Request,
    s: Session = Depends(get_session),
    p: Principal | None = Depends(optional_principal),
) -> Response:
    if p is None:
        return RedirectResponse("/login", status_code=303)
    request.state.principal = p
    communities = people.communities_for(s, p)
    if len(communities) == 1 and not p.is_platform_admin:
        return RedirectResponse(f"/c/{communities[0].id}", status_code=303)
    return render(request, "home.html", {"communities": communities})


@router.get("/account")
def account(request: Request, p: Principal = Depends(current_principal)) -> Response:
    request.state.principal = p
    return render(request, "account.html", {"errors": {}})


@router.post("/account/password")
def account_password(
    request: Request,
    current_password: str = Form(""),
    new_password: str = Form(""),
    s: Session = Depends(get_session),
    p: Principal = Depends(current_principal),
) -> Response:
    request.state.principal = p
    if p.user is None:
        return RedirectResponse("/login", status_code=303)
    try:
        service.change_password(s, p.user, current_password, new_password, client_ip(request))
    except AppError as exc:
        return render(request, "account.html", {"errors": form_errors(exc)}, status=exc.status)
    s.commit()
    request.session["sv"] = p.user.session_version
    flash(request, i18n.gettext("Your password was changed. Other sessions were logged out."))
    return RedirectResponse("/account", status_code=303)


# -- community pages ---------------------------------------------------------------------


def _community_page(
    request: Request, s: Session, ctx: Ctx, template: str, **extra: Any
) -> Response:
    request.state.principal = ctx.principal
    extra.setdefault("community", people.get_community(s, ctx))
    extra.setdefault("role_labels", ROLE_LABELS)
    return render(request, template, extra, status=extra.pop("status", 200))


@router.get("/c/{cid}")
def overview(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.COMMUNITY_READ)),
) -> Response:
    stats = people.overview(s, ctx) if ctx.can(Perm.PEOPLE_READ) else None
    mine = people.own_resident(s, ctx)
    me = people.resident_out(s, ctx, mine, sensitive=True) if mine else None
    household = []
    if mine is not None and me is not None and me.unit_id is not None:
        household = [
            people.resident_out(s, ctx, r, sensitive=True)
            for r in people.unit_residents(s, ctx, me.unit_id)
        ]
    return _community_page(
        request, s, ctx, "overview.html", stats=stats, myself=me, household=household
    )


def _users_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    return _community_page(
        request,
        s,
        ctx,
        "users.html",
        users=service.users_of(s, ctx),
        roles=[r for r in Role if r != Role.PLATFORM_ADMIN],
        **extra,
    )


@router.get("/c/{cid}/users")
def users_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.USERS_MANAGE)),
) -> Response:
    return _users_page(request, s, ctx, errors={}, form={})


@router.post("/c/{cid}/users")
def users_create(
    request: Request,
    username: str = Form(""),
    display_name: str = Form(""),
    password: str = Form(""),
    email: str = Form(""),
    role: str = Form(""),
    language: str = Form("zh_CN"),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.USERS_MANAGE)),
) -> Response:
    form = {"username": username, "display_name": display_name, "email": email, "role": role}
    try:
        data = UserIn(
            username=username.strip(),
            display_name=display_name.strip(),
            password=password,
            email=email.strip() or None,
            role=Role(role) if role in Role._value2member_map_ else None,
            language=language,
        )
        user = service.create_community_user(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _users_page(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    flash(request, i18n.gettext("User %(name)s created.", name=user.username))
    return RedirectResponse(f"/c/{ctx.community_id}/users", status_code=303)


@router.post("/c/{cid}/users/{user_id}/grants")
def users_grant(
    request: Request,
    user_id: int,
    role: str = Form(""),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.USERS_MANAGE)),
) -> Response:
    try:
        service.get_user_in(s, ctx, user_id)
        if role not in Role._value2member_map_:
            raise AppError("Choose a role.", field="role", status=422)
        service.grant_role(s, ctx, GrantIn(user_id=user_id, role=Role(role)))
    except AppError as exc:
        s.rollback()
        return _users_page(request, s, ctx, errors=form_errors(exc), form={}, status=exc.status)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/users", status_code=303)


@router.post("/c/{cid}/grants/{grant_id}/revoke")
def users_revoke(
    request: Request,
    grant_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.USERS_MANAGE)),
) -> Response:
    try:
        service.revoke_grant(s, ctx, grant_id)
    except AppError as exc:
        s.rollback()
        return _users_page(request, s, ctx, errors=form_errors(exc), form={}, status=exc.status)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/users", status_code=303)


def _tokens_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    return _community_page(
        request,
        s,
        ctx,
        "tokens.html",
        tokens=service.list_tokens(s, ctx),
        perms=sorted(p.value for p in ctx.permissions),
        perm_labels=PERM_LABELS,
        **extra,
    )


@router.get("/c/{cid}/tokens")
def tokens_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE)),
) -> Response:
    return _tokens_page(request, s, ctx, errors={})


@router.post("/c/{cid}/tokens")
async def tokens_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE)),
) -> Response:
    form = await request.form()
    perms = [str(v) for v in form.getlist("permissions")]
    days = str(form.get("expires_days") or "").strip()
    try:
        data = TokenIn.model_validate(
            {
                "name": str(form.get("name") or "").strip(),
                "permissions": perms,
                "expires_days": days or None,
            }
        )
        raw, tok = service.create_token(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        status = exc.status if isinstance(exc, AppError) else 422
        return _tokens_page(request, s, ctx, errors=form_errors(exc), status=status)
    s.commit()
    return _tokens_page(request, s, ctx, errors={}, new_token=raw, new_token_name=tok.name)


@router.post("/c/{cid}/tokens/{token_id}/revoke")
def tokens_revoke(
    request: Request,
    token_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE)),
) -> Response:
    service.revoke_token(s, ctx, token_id)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/tokens", status_code=303)


@router.get("/c/{cid}/audit")
def audit_page(
    request: Request,
    action: str = "",
    actor: str = "",
    offset: int = 0,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.AUDIT_READ)),
) -> Response:
    total, rows = service.search_audit(
        s, ctx, action=action or None, actor=actor or None, offset=max(offset, 0), limit=50
    )
    return _community_page(
        request,
        s,
        ctx,
        "audit.html",
        rows=rows,
        total=total,
        offset=max(offset, 0),
        limit=50,
        action=action,
        actor=actor,
    )
