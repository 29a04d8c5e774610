"""Pages of community safety: the camera wall, a camera with its zone and line editor, the
event timeline, the watch list (restricted, every view audited) and the care board."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from linli.core import nav
from linli.core.db import utcnow
from linli.core.errors import AppError, ValidationFailed
from linli.core.i18n import N_
from linli.core.i18n import gettext as _
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
from linli.safety import service
from linli.safety.schemas import CameraIn, CarePersonIn, VisitIn, WatchEntryIn

router = page_router()

nav.register(
    nav.NavItem("safety", N_("Camera wall"), "/safety/cameras", Perm.SAFETY_READ),
    nav.NavItem("safety", N_("Video events"), "/safety/events", Perm.SAFETY_READ),
    nav.NavItem("safety", N_("Watch list"), "/safety/watchlist", Perm.WATCHLIST_READ),
    nav.NavItem("safety", N_("Care board"), "/safety/care", Perm.CARE_READ),
)

LABELS: dict[str, str] = {
    "unknown": N_("not started"),
    "connecting": N_("connecting"),
    "streaming": N_("live"),
    "backoff": N_("reconnecting"),
    "finished": N_("ended"),
    "stopped": N_("stopped"),
    "silent": N_("silent"),
    "person": N_("the person"),
    "family": N_("the family"),
    "well": N_("well"),
    "needs_help": N_("needs help"),
    "hospital": N_("taken to hospital"),
    "not_home": N_("not at home"),
    "other": N_("other"),
    "inactive": N_("no sign of activity"),
    "night_out": N_("night-time going out"),
    "water": N_("water running"),
    "access": N_("gate"),
    "door": N_("door"),
    "device": N_("device"),
    "visit": N_("visit"),
    "ok": N_("ok"),
    "warning": N_("watch"),
    "alarm": N_("alarm"),
    "active": N_("active"),
    "ended": N_("ended"),
    "in": N_("in"),
    "out": N_("out"),
}


def _page(request: Request, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(labels=LABELS, titles=service.EVENT_TITLES)
    return render(request, template, extra, status=status)


def _str(form: Any, key: str) -> str:
    v = form.get(key)
    return v.strip() if isinstance(v, str) else ""


def _int(form: Any, key: str) -> int | None:
    v = _str(form, key)
    return int(v) if v.isdigit() else None


def _back(ctx: Ctx, path: str) -> RedirectResponse:
    return RedirectResponse(f"/c/{ctx.community_id}{path}", status_code=303)


def _buildings(s: Session, ctx: Ctx) -> list[Any]:
    from linli.people.service import list_buildings

    return list_buildings(s, ctx) if ctx.can(Perm.PEOPLE_READ) else []


def _gates(s: Session, ctx: Ctx) -> list[Any]:
    from linli.access.service import list_gates

    return list_gates(s, ctx)


# -- cameras ----------------------------------------------------------------------------------


@router.get("/c/{cid}/safety/cameras")
def camera_wall(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    return _wall(request, s, ctx)


def _wall(
    request: Request,
    s: Session,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    cams = [service.camera_out(c) for c in service.list_cameras(s, ctx)]
    return _page(
        request,
        ctx,
        "safety_cameras.html",
        cameras=cams,
        errors=errors or {},
        values=values or {},
        buildings=_buildings(s, ctx),
        gates=_gates(s, ctx),
        status=status,
    )


def _camera_in(form: Any, analytics: dict[str, Any] | None = None) -> CameraIn:
    fps = _str(form, "fps") or "2"
    silent = _str(form, "silent_after_s") or "120"
    return CameraIn.model_validate(
        {
            "name": _str(form, "name"),
            "url": _str(form, "url"),
            "building_id": _int(form, "building_id"),
            "location": _str(form, "location") or None,
            "fps": fps,
            "enabled": form.get("enabled") is not None,
            "face_watch": form.get("face_watch") is not None,
            "blur_faces": form.get("blur_faces") is not None,
            "gate_id": _int(form, "gate_id"),
            "silent_after_s": silent,
            "analytics": analytics or {},
        }
    )


@router.post("/c/{cid}/safety/cameras")
async def add_camera(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        c = service.save_camera(s, ctx, _camera_in(form))
        s.commit()
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _wall(request, s, ctx, form_errors(exc), dict(form), status=422)
    flash(request, _("Camera %(name)s added.", name=c.name))
    return _back(ctx, f"/safety/cameras/{c.id}")


@router.get("/c/{cid}/safety/cameras/{camera_id}")
def camera_page(
    camera_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    return _camera(request, s, ctx, camera_id)


def _camera(
    request: Request,
    s: Session,
    ctx: Ctx,
    camera_id: int,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    c = service.get_camera(s, ctx, camera_id)
    evs = service.list_events(s, ctx, camera_id=c.id, limit=12)
    since = utcnow() - timedelta(hours=24)
    counts = service.line_counts(s, ctx, since=since, camera_id=c.id)
    totals: dict[str, list[int]] = {}
    for r in counts:
        t = totals.setdefault(r.line_id, [0, 0])
        t[0] += r.count_in
        t[1] += r.count_out
    return _page(
        request,
        ctx,
        "safety_camera.html",
        camera=service.camera_out(c),
        events=evs,
        totals=totals,
        errors=errors or {},
        buildings=_buildings(s, ctx),
        gates=_gates(s, ctx),
        status=status,
    )


@router.post("/c/{cid}/safety/cameras/{camera_id}")
async def edit_camera(
    camera_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> Response:
    form = await request.form()
    if form.get("delete") is not None:
        service.delete_camera(s, ctx, camera_id)
        s.commit()
        flash(request, _("Camera deleted."))
        return _back(ctx, "/safety/cameras")
    try:
        c = service.get_camera(s, ctx, camera_id)
        service.save_camera(s, ctx, _camera_in(form, dict(c.analytics or {})), camera_id)
        s.commit()
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _camera(request, s, ctx, camera_id, form_errors(exc), status=422)
    flash(request, _("Saved."))
    return _back(ctx, f"/safety/cameras/{camera_id}")


# -- events -----------------------------------------------------------------------------------


@router.get("/c/{cid}/safety/events")
def events_page(
    request: Request,
    kind: str = "",
    camera_id: str = "",
    before_id: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    cam = int(camera_id) if camera_id.isdigit() else None
    before = int(before_id) if before_id.isdigit() else None
    kinds = [
        k for k in service.EVENT_TITLES if k != "watchlist_match" or ctx.can(Perm.WATCHLIST_READ)
    ]
    k = kind if kind in kinds else None
    rows = service.list_events(s, ctx, camera_id=cam, kind=k, before_id=before, limit=50)
    if not ctx.can(Perm.WATCHLIST_READ):
        rows = [e for e in rows if e.kind != "watchlist_match"]
    cams = {c.id: c.name for c in service.list_cameras(s, ctx)}
    return _page(
        request,
        ctx,
        "safety_events.html",
        events=rows,
        cameras=cams,
        kinds=kinds,
        kind=k or "",
        camera_id=cam,
    )


# -- watch list -------------------------------------------------------------------------------


def _watch(
    request: Request,
    s: Session,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    entries = service.list_watch_entries(s, ctx, include_ended=True)
    counts = service.entry_counts(s, [e.id for e in entries])
    matches = service.list_watch_matches(s, ctx, limit=30)
    names = {e.id: e.name for e in entries}
    cams = {c.id: c.name for c in service.list_cameras(s, ctx)}
    auths = service.authorisers(s, ctx) if ctx.can(Perm.WATCHLIST_MANAGE) else []
    s.commit()  # the audit entries of this view
    tz = ZoneInfo(ctx.timezone)
    default_exp = (utcnow().astimezone(tz) + timedelta(days=30)).strftime("%Y-%m-%d")
    return _page(
        request,
        ctx,
        "safety_watchlist.html",
        entries=entries,
        counts=counts,
        matches=matches,
        names=names,
        cameras=cams,
        authorisers=auths,
        errors=errors or {},
        values=values or {},
        default_exp=default_exp,
        status=status,
    )


@router.get("/c/{cid}/safety/watchlist")
def watchlist_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> Response:
    return _watch(request, s, ctx)


@router.post("/c/{cid}/safety/watchlist")
async def watchlist_add(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        exp_text = _str(form, "expires_on")
        exp = None
        if exp_text:
            try:
                d = datetime.strptime(exp_text, "%Y-%m-%d")
            except ValueError as exc:
                raise ValidationFailed("Use the form YYYY-MM-DD.", field="expires_at") from exc
            exp = d.replace(hour=23, minute=59, tzinfo=ZoneInfo(ctx.timezone))
        data = WatchEntryIn.model_validate(
            {
                "name": _str(form, "name"),
                "reason": _str(form, "reason"),
                "authorised_by_user_id": _int(form, "authorised_by_user_id"),
                "expires_at": exp,
            }
        )
        e = service.create_watch_entry(s, ctx, data)
        photo = form.get("photo")
        if isinstance(photo, UploadFile) and photo.filename:
            raw = await photo.read()
            if raw:
                await run_in_threadpool(
                    service.add_watch_face, s, ctx, e.id, raw, get_settings(request)
                )
        s.commit()
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _watch(request, s, ctx, form_errors(exc), dict(form), status=422)
    flash(request, _("Added to the watch list."))
    return _back(ctx, "/safety/watchlist")


@router.post("/c/{cid}/safety/watchlist/{entry_id}/end")
async def watchlist_end(
    entry_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        service.end_watch_entry(s, ctx, entry_id, _str(form, "reason"))
        s.commit()
    except AppError as exc:
        s.rollback()
        return _watch(request, s, ctx, form_errors(exc), status=422)
    flash(request, _("The entry has ended; its face templates are deleted."))
    return _back(ctx, "/safety/watchlist")


# -- care -------------------------------------------------------------------------------------


def _care(
    request: Request,
    s: Session,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    board = service.care_board(s, ctx)
    residents: list[Any] = []
    devices: list[Any] = []
    if ctx.can(Perm.CARE_MANAGE):
        from linli.iot.service import list_devices
        from linli.people.service import search_residents

        if ctx.can(Perm.PEOPLE_READ):
            residents = search_residents(s, ctx, limit=500)[1]
        if ctx.can(Perm.IOT_READ):
            devices = [d for d in list_devices(s, ctx)]
    return _page(
        request,
        ctx,
        "safety_care.html",
        board=board,
        residents=residents,
        devices=devices,
        errors=errors or {},
        values=values or {},
        outcomes=("well", "needs_help", "hospital", "not_home", "other"),
        status=status,
    )


@router.get("/c/{cid}/safety/care")
def care_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> Response:
    return _care(request, s, ctx)


@router.post("/c/{cid}/safety/care")
async def care_enrol(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        data = CarePersonIn.model_validate(
            {
                "resident_id": _int(form, "resident_id"),
                "consent_by": _str(form, "consent_by"),
                "consent_name": _str(form, "consent_name"),
                "consent_note": _str(form, "consent_note") or None,
                "family_name": _str(form, "family_name") or None,
                "family_phone": _str(form, "family_phone") or None,
                "device_ids": [
                    int(v) for v in form.getlist("device_ids") if isinstance(v, str) and v.isdigit()
                ],
                "inactive_hours": _str(form, "inactive_hours") or "24",
                "water_hours": _str(form, "water_hours") or "3",
                "night_from": _str(form, "night_from") or "23:00",
                "night_to": _str(form, "night_to") or "05:00",
            }
        )
        p = service.enrol_care(s, ctx, data)
        s.commit()
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _care(request, s, ctx, form_errors(exc), dict(form), status=422)
    flash(request, _("%(name)s is now in care.", name=p.name))
    return _back(ctx, "/safety/care")


@router.post("/c/{cid}/safety/care/visits/{visit_id}")
async def care_visit(
    visit_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> Response:
    form = await request.form()
    try:
        data = VisitIn.model_validate(
            {"outcome": _str(form, "outcome"), "note": _str(form, "note") or None}
        )
        service.record_visit(s, ctx, visit_id, data)
        s.commit()
    except (ValidationError, AppError) as exc:
        s.rollback()
        errs = form_errors(exc)
        return _care(request, s, ctx, {"visit": next(iter(errs.values()), "")}, status=422)
    flash(request, _("Visit recorded."))
    return _back(ctx, "/safety/care")
