"""Pages of access control: people and their credentials and consent, enrollment (upload or
the browser's camera), gates and policies, the live access log, visitors, flow of people."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from linli.access import service
from linli.access.models import IDENTITY_KINDS
from linli.access.schemas import ConsentIn, CredentialIn, GateIn, IdentityIn, VisitorIn
from linli.core import i18n, nav
from linli.core.db import utcnow
from linli.core.errors import AppError, NotFound
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import (
    Ctx,
    flash,
    form_errors,
    get_session,
    get_settings,
    page_router,
    render,
    require,
)

router = page_router()

nav.register(
    nav.NavItem("access", N_("My access"), "/access/me", Perm.SELF),
    nav.NavItem("access", N_("People and credentials"), "/access/people", Perm.ACCESS_MANAGE),
    nav.NavItem("access", N_("Gates"), "/access/gates", Perm.ACCESS_READ),
    nav.NavItem("access", N_("Access log"), "/access/log", Perm.ACCESS_LOG_READ),
    nav.NavItem("access", N_("Visitors"), "/access/visitors", Perm.VISITORS_MANAGE),
    nav.NavItem("access", N_("Flow of people"), "/access/flow", Perm.ACCESS_READ),
)

LABELS: dict[str, str] = {
    "resident": N_("resident"),
    "staff": N_("staff"),
    "visitor": N_("visitor"),
    "delivery": N_("delivery worker"),
    "card": N_("IC card"),
    "pin": N_("PIN"),
    "plate": N_("licence plate"),
    "in": N_("in"),
    "out": N_("out"),
    "both": N_("in and out"),
    "face": N_("face"),
    "qr": N_("QR pass"),
    "manual": N_("by hand"),
}


def _page(request: Request, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(labels=LABELS, reason_message=service.reason_message, kinds=IDENTITY_KINDS)
    return render(request, template, extra, status=status)


def _str(form: Any, key: str) -> str:
    v = form.get(key)
    return v.strip() if isinstance(v, str) else ""


def _back(ctx: Ctx, path: str) -> RedirectResponse:
    return RedirectResponse(f"/c/{ctx.community_id}{path}", status_code=303)


# -- people -------------------------------------------------------------------------------------


@router.get("/c/{cid}/access/people")
def people_page(
    request: Request,
    q: str = "",
    kind: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> Response:
    rows = service.list_identities(
        s, ctx, kind=kind if kind in IDENTITY_KINDS else None, q=q[:100] or None
    )
    return _page(
        request,
        ctx,
        "access_people.html",
        items=[service.identity_out(s, i) for i in rows],
        q=q,
        kind=kind,
        errors={},
        form={},
    )


@router.post("/c/{cid}/access/people")
async def people_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> Response:
    form = await request.form()
    rid = _str(form, "resident_id")
    try:
        if rid:
            i = service.identity_for_resident(s, ctx, int(rid) if rid.isdigit() else -1)
        else:
            i = service.create_identity(
                s,
                ctx,
                IdentityIn.model_validate(
                    {
                        "kind": _str(form, "kind"),
                        "name": _str(form, "name"),
                        "phone": _str(form, "phone") or None,
                    }
                ),
            )
    except (ValidationError, AppError) as exc:
        s.rollback()
        rows = service.list_identities(s, ctx)
        return _page(
            request,
            ctx,
            "access_people.html",
            items=[service.identity_out(s, x) for x in rows],
            q="",
            kind="",
            errors=form_errors(exc),
            form=dict(form),
            status=422,
        )
    s.commit()
    return _back(ctx, f"/access/people/{i.id}")


@router.get("/c/{cid}/access/me")
def my_access(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.SELF))
) -> Response:
    i = service.own_identity(s, ctx)
    if i is None:
        return _page(
            request, ctx, "access_person.html", person=None, consents=[], errors={}, own=True
        )
    s.commit()
    return _person(request, s, ctx, i.id, own=True)


def _person(
    request: Request,
    s: Session,
    ctx: Ctx,
    identity_id: int,
    *,
    own: bool = False,
    errors: dict[str, str] | None = None,
    status: int = 200,
    new_pin: str | None = None,
) -> Response:
    i = service.get_identity(s, ctx, identity_id)
    return _page(
        request,
        ctx,
        "access_person.html",
        person=service.identity_out(s, i),
        consents=service.consents(s, i.id),
        errors=errors or {},
        own=own,
        status=status,
        keep_photos=get_settings(request).keep_enrollment_photos,
        new_pin=new_pin,
    )


@router.get("/c/{cid}/access/people/{identity_id}")
def person_page(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    return _person(request, s, ctx, identity_id)


@router.post("/c/{cid}/access/people/{identity_id}/credentials")
async def person_credential(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        if _str(form, "remove").isdigit():
            service.remove_credential(s, ctx, identity_id, int(_str(form, "remove")))
        else:
            data = CredentialIn.model_validate(
                {"kind": _str(form, "kind"), "value": _str(form, "value")}
            )
            service.add_credential(s, ctx, identity_id, data, get_settings(request))
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _person(request, s, ctx, identity_id, errors=form_errors(exc), status=422)
    s.commit()
    flash(request, i18n.gettext("Saved."))
    return _back(ctx, f"/access/people/{identity_id}")


@router.post("/c/{cid}/access/people/{identity_id}/pin")
async def person_pin(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    """A new random PIN for the person, shown once on the page (never stored in clear)."""
    form = await request.form()
    own = _str(form, "own") == "1"
    try:
        pin = service.issue_pin(s, ctx, identity_id, get_settings(request))
    except AppError as exc:
        s.rollback()
        return _person(request, s, ctx, identity_id, own=own, errors=form_errors(exc), status=422)
    s.commit()
    return _person(request, s, ctx, identity_id, own=own, new_pin=pin)


@router.post("/c/{cid}/access/people/{identity_id}/consent")
async def person_consent(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    form = await request.form()
    own = _str(form, "own") == "1"
    try:
        if _str(form, "action") == "withdraw":
            n = service.withdraw_consent(s, ctx, identity_id, request.app.state.files)
            msg = i18n.gettext("Consent withdrawn; %(n)s face templates deleted.", n=n)
        else:
            service.record_consent(
                s,
                ctx,
                identity_id,
                ConsentIn(
                    given_by=_str(form, "given_by") or ctx.actor.name,
                    note=_str(form, "note") or None,
                ),
            )
            msg = i18n.gettext("Consent recorded.")
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _person(request, s, ctx, identity_id, own=own, errors=form_errors(exc), status=422)
    s.commit()
    flash(request, msg)
    return _back(ctx, "/access/me" if own else f"/access/people/{identity_id}")


@router.post("/c/{cid}/access/people/{identity_id}/face")
async def person_face(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    settings = get_settings(request)
    form = await request.form()
    own = _str(form, "own") == "1"
    photo = form.get("photo")
    data = b""
    if isinstance(photo, UploadFile):
        data = await photo.read(settings.max_upload_bytes + 1)
    errors: dict[str, str] = {}
    if _str(form, "action") == "delete":
        try:
            service.delete_face(s, ctx, identity_id, request.app.state.files)
        except AppError as exc:
            s.rollback()
            return _person(
                request, s, ctx, identity_id, own=own, errors=form_errors(exc), status=422
            )
        s.commit()
        flash(request, i18n.gettext("Face template deleted."))
        return _back(ctx, "/access/me" if own else f"/access/people/{identity_id}")
    if not data:
        errors["photo"] = i18n.gettext("Choose a photo or take one with the camera.")
    elif len(data) > settings.max_upload_bytes:
        errors["photo"] = service.reason_message("image_too_large")
    else:
        try:
            res = await run_in_threadpool(
                service.enroll_face, s, ctx, identity_id, data, settings, request.app.state.files
            )
        except AppError as exc:
            s.rollback()
            return _person(
                request, s, ctx, identity_id, own=own, errors=form_errors(exc), status=422
            )
        if not res.ok:
            errors["photo"] = res.message or ""
    if errors:
        s.rollback()
        return _person(request, s, ctx, identity_id, own=own, errors=errors, status=422)
    s.commit()
    flash(request, i18n.gettext("Face enrolled."))
    return _back(ctx, "/access/me" if own else f"/access/people/{identity_id}")


# -- gates --------------------------------------------------------------------------------------


@router.get("/c/{cid}/access/gates")
def gates_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_READ)),
) -> Response:
    return _page(
        request,
        ctx,
        "access_gates.html",
        gates=service.list_gates(s, ctx),
        errors={},
        error_gate=None,
    )


@router.post("/c/{cid}/access/gates")
async def gates_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> Response:
    form = await request.form()
    gid = _str(form, "gate_id")
    policy = {
        k: {"from": _str(form, f"from_{k}") or None, "to": _str(form, f"to_{k}") or None}
        for k in IDENTITY_KINDS
        if form.get(f"allow_{k}") == "on"
    }
    try:
        data = GateIn.model_validate(
            {
                "name": _str(form, "name"),
                "direction": _str(form, "direction") or "both",
                "policy": policy,
                "anti_passback": form.get("anti_passback") == "on",
                "require_liveness": form.get("require_liveness") == "on",
                "enabled": form.get("enabled") == "on",
            }
        )
        old = service.get_gate(s, ctx, int(gid)) if gid.isdigit() else None
        data.device_id = old.device_id if old is not None else None
        g = service.save_gate(s, ctx, data, old.id if old else None)
        if form.get("with_device") == "on" and g.device_id is None:
            service.ensure_gate_device(s, ctx, g)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _page(
            request,
            ctx,
            "access_gates.html",
            gates=service.list_gates(s, ctx),
            errors=form_errors(exc),
            error_gate=gid,
            status=422,
        )
    s.commit()
    flash(request, i18n.gettext("Gate %(name)s saved.", name=g.name))
    return _back(ctx, "/access/gates")


# -- access log ---------------------------------------------------------------------------------


@router.get("/c/{cid}/access/log")
def log_page(
    request: Request,
    gate_id: str = "",
    denied: str = "",
    visitors: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_LOG_READ)),
) -> Response:
    gid = int(gate_id) if gate_id.isdigit() else None
    rows = service.access_log(
        s,
        ctx,
        gate_id=gid,
        granted=False if denied else None,
        visitors=bool(visitors),
        limit=100,
    )
    names = service.names_of(s, ctx, {e.identity_id for e in rows if e.identity_id})
    gates = service.list_gates(s, ctx)
    s.commit()  # the audit entry of the look-up
    live = bool(request.query_params.get("fragment"))  # the rows, redrawn on each passage
    return _page(
        request,
        ctx,
        "access_log_rows.html" if live else "access_log.html",
        rows=rows,
        names=names,
        gates=gates,
        gate_names={g.id: g.name for g in gates},
        gate_id=gid,
        denied=bool(denied),
        visitors=bool(visitors),
    )


@router.get("/c/{cid}/access/log/{event_id}/snapshot")
def log_snapshot(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_LOG_READ)),
) -> Response:
    data = service.snapshot(s, ctx, event_id, request.app.state.files)
    s.commit()
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# -- visitors -----------------------------------------------------------------------------------


def _visitors(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    tz = ZoneInfo(ctx.timezone)
    today = utcnow().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    expected = service.list_passes(s, ctx, expected_on=today) if ctx.can(Perm.ACCESS_READ) else []
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    extra.setdefault("new_qr", None)
    return _page(
        request,
        ctx,
        "access_visitors.html",
        mine=service.list_passes(s, ctx, own_only=True),
        expected=expected,
        gates=service.list_gates(s, ctx) if ctx.can(Perm.ACCESS_ADMIT) else [],
        **extra,
    )


@router.get("/c/{cid}/access/visitors")
def visitors_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    return _visitors(request, s, ctx)


def _local(value: str, tz: str) -> datetime | str:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return value


@router.post("/c/{cid}/access/visitors")
async def visitors_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    form = await request.form()
    if _str(form, "revoke").isdigit():
        try:
            service.revoke_pass(s, ctx, int(_str(form, "revoke")))
        except NotFound:
            s.rollback()
        s.commit()
        return _back(ctx, "/access/visitors")
    start = _str(form, "valid_from")
    hours = _str(form, "hours")
    try:
        vf = _local(start, ctx.timezone) if start else utcnow()
        vu: Any = (
            vf + timedelta(hours=float(hours))
            if isinstance(vf, datetime) and hours
            else (vf + timedelta(hours=4) if isinstance(vf, datetime) else vf)
        )
    except (ValueError, OverflowError):
        vu = "bad"
    try:
        data = VisitorIn.model_validate(
            {
                "name": _str(form, "name"),
                "phone": _str(form, "phone") or None,
                "purpose": _str(form, "purpose") or None,
                "valid_from": vf,
                "valid_until": vu,
                "max_uses": _str(form, "max_uses") or 1,
                "kind": "delivery" if _str(form, "kind") == "delivery" else "visitor",
            }
        )
        p, _i, token = service.create_visitor(s, ctx, data, get_settings(request))
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _visitors(request, s, ctx, errors=form_errors(exc), form=dict(form), status=422)
    s.commit()
    return _visitors(
        request,
        s,
        ctx,
        new_qr=token,
        new_pass=p,
        new_name=_i.name,
        new_qr_svg=_qr_markup(token),
    )


def _qr_markup(token: str) -> Markup:
    from linli.access import qr

    return Markup(qr.render_svg_inline(token, scale=5))  # generated by segno, no user text


@router.get("/c/{cid}/access/visitors/{pass_id}")
def visitor_pass_page(
    pass_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    """One visitor pass with its QR code, to show on the phone or send to the visitor."""
    p, i, token = service.pass_with_token(s, ctx, pass_id, get_settings(request))
    now = utcnow()
    if p.revoked_at is not None:
        state = "qr_revoked"
    elif now >= p.valid_until:
        state = "qr_expired"
    elif p.uses >= p.max_uses:
        state = "qr_used"
    elif now < p.valid_from:
        state = "qr_not_yet_valid"
    else:
        state = "valid"
    return _page(
        request,
        ctx,
        "access_pass.html",
        p=p,
        visitor=i,
        token=token,
        qr_svg=_qr_markup(token),
        state=state,
    )


@router.get("/c/{cid}/access/visitors/{pass_id}/qr.png")
def visitor_pass_png(
    pass_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    from linli.access import qr

    _p, _i, token = service.pass_with_token(s, ctx, pass_id, get_settings(request))
    return Response(
        qr.render_png(token),
        media_type="image/png",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="visitor-pass-{pass_id}.png"',
        },
    )


@router.post("/c/{cid}/access/admit")
async def admit(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_ADMIT)),
) -> Response:
    form = await request.form()
    gid, reason, pid = _str(form, "gate_id"), _str(form, "reason"), _str(form, "pass_id")
    errors: dict[str, str] = {}
    if not gid.isdigit():
        errors["gate_id"] = i18n.gettext("This field is required.")
    if len(reason) < 2:
        errors["reason"] = i18n.gettext("Give the reason for admitting by hand.")
    if not errors:
        try:
            service.admit(
                s,
                ctx,
                int(gid),
                reason[:300],
                pass_id=int(pid) if pid.isdigit() else None,
                name=_str(form, "name")[:100] or None,
            )
        except AppError as exc:
            errors = form_errors(exc)
    if errors:
        s.rollback()
        return _visitors(request, s, ctx, errors=errors, status=422)
    s.commit()
    flash(request, i18n.gettext("Admitted; the gate was told to open."))
    return _back(ctx, "/access/visitors")


# -- flow ---------------------------------------------------------------------------------------


@router.get("/c/{cid}/access/flow")
def flow_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_READ)),
) -> Response:
    f = service.flow(s, ctx)
    peak = max([*f["hourly"], *f["daily"].values(), 1])
    return _page(request, ctx, "access_flow.html", flow=f, peak=peak)
