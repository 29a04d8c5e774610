"""Pages of work orders: the board, creating by hand, detail with the notes timeline and the
transitions, KPIs, and a resident's own requests with their rating."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from linli.core import i18n, nav
from linli.core.db import utcnow
from linli.core.errors import AppError, NotFound
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import Ctx, flash, form_errors, get_session, page_router, render, require
from linli.people import service as people
from linli.workorders import service
from linli.workorders.api import (
    MAX_PHOTO_BYTES,
    check_photo,
    create_order,
    order_outs,
    photo_digest,
    store_photo,
    transition,
    user_names,
)
from linli.workorders.models import CATEGORIES, SEVERITIES, STATUSES
from linli.workorders.schemas import NoteOut, RateIn, TextIn, WorkOrderIn

router = page_router()

nav.register(
    nav.NavItem("workorders", N_("Work order board"), "/workorders", Perm.WORKORDERS_READ),
    nav.NavItem("workorders", N_("Work order KPIs"), "/workorders/kpis", Perm.WORKORDERS_READ),
    nav.NavItem("workorders", N_("My requests"), "/workorders/requested", Perm.SELF),
)

LABELS: dict[str, str] = {
    # statuses
    "new": N_("new"),
    "assigned": N_("assigned"),
    "in_progress": N_("in progress"),
    "resolved": N_("resolved"),
    "closed": N_("closed"),
    # severities
    "critical": N_("critical"),
    "major": N_("major"),
    "minor": N_("minor"),
    "warning": N_("warning"),
    "info": N_("info"),
    # categories
    "facility": N_("facilities"),
    "fire_safety": N_("fire safety"),
    "water": N_("water"),
    "electric": N_("electricity"),
    "elevator": N_("elevators"),
    "lighting": N_("lighting"),
    "sanitation": N_("sanitation"),
    "security": N_("security"),
    "wellbeing": N_("wellbeing"),
    "parking": N_("parking"),
    "environment": N_("environment"),
    "neighbourhood": N_("neighbourhood"),
    "other": N_("other"),
    # sources
    "alarm": N_("alarm"),
    "manual": N_("by hand"),
    "demand": N_("resident demand"),
    "care": N_("care"),
    # note kinds
    "note": N_("note"),
    "status": N_("status"),
    "assign": N_("assignment"),
    "escalate": N_("escalation"),
    "reopen": N_("reopened"),
}

ACTION_MESSAGES: dict[str, str] = {
    "assign": "Work order assigned.",
    "start": "Work started.",
    "resolve": "Work order resolved.",
    "close": "Work order closed.",
    "reopen": "Work order reopened.",
    "note": "Note added.",
}


def _page(request: Request, s: Session, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(
        community=people.get_community(s, ctx),
        labels=LABELS,
        statuses=STATUSES,
        severities=SEVERITIES,
        categories=CATEGORIES,
    )
    return render(request, template, extra, status=status)


def _int(v: str) -> int | None:
    v = v.strip()
    return int(v) if v.isdigit() and len(v) < 10 else None


# -- board -------------------------------------------------------------------------------------


@router.get("/c/{cid}/workorders")
def board(
    request: Request,
    grid_id: str = "",
    category: str = "",
    assignee: str = "",
    mine: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> Response:
    gid, uid = _int(grid_id), _int(assignee)
    cat = category if category in CATEGORIES else ""
    rows = service.list_orders(
        s,
        ctx,
        category=cat or None,
        grid_id=gid,
        assignee_user_id=uid,
        mine=mine == "on",
        limit=500,
    )
    orders = order_outs(s, rows)
    columns = {st: [o for o in orders if o.status == st] for st in STATUSES}
    columns["closed"] = columns["closed"][:30]
    filters = {"grid_id": gid, "category": cat, "assignee": uid, "mine": mine == "on"}
    data = {
        "columns": columns,
        "filters": filters,
        "grids": people.list_grids(s, ctx),
        "assignees": service.assignable_users(s, ctx),
        "grid_names": {g.id: g.name for g in people.list_grids(s, ctx)},
    }
    if request.headers.get("hx-request") or request.query_params.get("fragment"):
        request.state.principal = ctx.principal
        return render(request, "wo_columns.html", {**data, "labels": LABELS, "statuses": STATUSES})
    return _page(request, s, ctx, "wo_board.html", **data)


# -- new order ---------------------------------------------------------------------------------


def _form_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "wo_new.html",
        buildings=people.list_buildings(s, ctx),
        grids=people.list_grids(s, ctx),
        **extra,
    )


@router.get("/c/{cid}/workorders/new")
def order_new(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_MANAGE)),
) -> Response:
    return _form_page(request, s, ctx, form={"severity": "minor", "category": "facility"})


@router.post("/c/{cid}/workorders/new")
async def order_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_MANAGE)),
) -> Response:
    raw = await request.form()
    keys = ("category", "severity", "title", "description", "building_id", "grid_id", "location")
    form = {k: str(raw.get(k) or "").strip() for k in keys}
    try:
        data = WorkOrderIn.model_validate({k: (v or None) for k, v in form.items()})
        wo = create_order(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _form_page(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    flash(request, i18n.gettext("Work order %(number)s created.", number=wo.number))
    return RedirectResponse(f"/c/{ctx.community_id}/workorders/{wo.id}", status_code=303)


# -- KPIs --------------------------------------------------------------------------------------

PERIODS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}


@router.get("/c/{cid}/workorders/kpis")
def kpis_page(
    request: Request,
    period: str = "30d",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> Response:
    period = period if period in PERIODS or period == "all" else "30d"
    since = utcnow() - timedelta(days=PERIODS[period]) if period in PERIODS else None
    return _page(
        request,
        s,
        ctx,
        "wo_kpis.html",
        kpis=service.kpis(s, ctx, since=since),
        period=period,
        periods=[*PERIODS, "all"],
    )


# -- a resident's requests ---------------------------------------------------------------------


def _requested_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("error_for", None)
    return _page(
        request, s, ctx, "wo_requested.html", items=service.requested_by_me(s, ctx), **extra
    )


@router.get("/c/{cid}/workorders/requested")
def requested_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    return _requested_page(request, s, ctx)


@router.post("/c/{cid}/workorders/{order_id}/rate")
async def rate(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    raw = await request.form()
    try:
        data = RateIn.model_validate(
            {
                "rating": str(raw.get("rating") or ""),
                "comment": str(raw.get("comment") or "") or None,
            }
        )
        service.rate(s, ctx, order_id, data.rating, data.comment)
    except (ValidationError, AppError) as exc:
        s.rollback()
        if isinstance(exc, AppError) and exc.status in (403, 404):
            raise
        return _requested_page(
            request, s, ctx, errors=form_errors(exc), error_for=order_id, status=422
        )
    s.commit()
    flash(request, i18n.gettext("Thank you for your rating."))
    return RedirectResponse(f"/c/{ctx.community_id}/workorders/requested", status_code=303)


# -- detail and transitions --------------------------------------------------------------------


def _detail_page(request: Request, s: Session, ctx: Ctx, order_id: int, **extra: Any) -> Response:
    wo = service.get_order(s, ctx, order_id)
    out = order_outs(s, [wo])[0]
    notes = [NoteOut.model_validate(n) for n in service.notes(s, ctx, wo.id)]
    buildings = {b.id: b.name for b in people.list_buildings(s, ctx)}
    grids = {g.id: g.name for g in people.list_grids(s, ctx)}
    may_handle = ctx.can(Perm.WORKORDERS_MANAGE) or (
        ctx.can(Perm.WORKORDERS_HANDLE)
        and (
            wo.assignee_user_id == ctx.user_id
            or (wo.assignee_user_id is None and wo.assignee_role in ctx.roles)
        )
    )
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    extra.setdefault("action", "")
    return _page(
        request,
        s,
        ctx,
        "wo_detail.html",
        order=out,
        notes=notes,
        building=buildings.get(wo.building_id) if wo.building_id else None,
        grid=grids.get(wo.grid_id) if wo.grid_id else None,
        assignees=service.assignable_users(s, ctx) if ctx.can(Perm.WORKORDERS_MANAGE) else [],
        may_handle=may_handle,
        may_manage=ctx.can(Perm.WORKORDERS_MANAGE),
        **extra,
    )


@router.get("/c/{cid}/workorders/{order_id}")
def detail(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> Response:
    return _detail_page(request, s, ctx, order_id)


@router.post("/c/{cid}/workorders/{order_id}")
async def act(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_HANDLE)),
) -> Response:
    """One form per transition: ``action`` = assign | start | resolve | close | reopen | note,
    with ``text``, ``assignee_user_id`` and an optional ``photo``."""
    raw = await request.form()
    action = str(raw.get("action") or "")
    text = str(raw.get("text") or "").strip()
    form = {"text": text, "assignee_user_id": str(raw.get("assignee_user_id") or "")}
    upload = raw.get("photo")
    try:
        if action not in ACTION_MESSAGES:
            raise NotFound("Unknown action.")
        photo: bytes | None = None
        if isinstance(upload, UploadFile) and upload.filename:
            photo = await upload.read(MAX_PHOTO_BYTES + 1)
            check_photo(photo)
        digest = photo_digest(photo) if photo is not None else None
        if action in ("resolve", "reopen", "note"):
            text = TextIn.model_validate({"text": text}).text
        if action == "note":
            service.add_note(s, ctx, order_id, text, photo=digest)
        else:
            transition(
                s,
                ctx,
                order_id,
                action,
                text=text or None,
                photo=digest,
                assignee_user_id=_int(form["assignee_user_id"]),
            )
        if photo is not None:
            store_photo(request.app.state.files, photo)
    except (ValidationError, AppError) as exc:
        s.rollback()
        if isinstance(exc, AppError) and exc.status in (403, 404):
            raise
        status = exc.status if isinstance(exc, AppError) else 422
        return _detail_page(
            request,
            s,
            ctx,
            order_id,
            errors=form_errors(exc),
            form=form,
            action=action,
            status=status,
        )
    s.commit()
    flash(request, i18n.gettext(ACTION_MESSAGES[action]))
    return RedirectResponse(f"/c/{ctx.community_id}/workorders/{order_id}", status_code=303)


__all__ = ["LABELS", "router", "user_names"]
