"""Pages of vehicle access: vehicles and permits, "my vehicles / my visitor cars", the live
vehicle log, the guard confirmation queue, parking occupancy, the plate watch list and the
vehicle gates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from linli.core import i18n, nav
from linli.core.db import utcnow
from linli.core.errors import AppError
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
from linli.vehicles import service
from linli.vehicles.api import read_upload
from linli.vehicles.models import PERMIT_KINDS, UNKNOWN_ACTIONS
from linli.vehicles.plates import display_plate
from linli.vehicles.schemas import (
    CarParkIn,
    GateIn,
    PermitIn,
    VehicleIn,
    VisitorVehicleIn,
    WatchIn,
)

router = page_router()

nav.register(
    nav.NavItem("vehicles", N_("My vehicles"), "/vehicles/mine", Perm.SELF),
    nav.NavItem("vehicles", N_("Vehicles"), "/vehicles", Perm.VEHICLES_READ),
    nav.NavItem("vehicles", N_("Parking permits"), "/vehicles/permits", Perm.VEHICLES_READ),
    nav.NavItem("vehicles", N_("Vehicle log"), "/vehicles/log", Perm.VEHICLES_READ),
    nav.NavItem("vehicles", N_("Guard queue"), "/vehicles/queue", Perm.VEHICLES_READ),
    nav.NavItem("vehicles", N_("Parking occupancy"), "/vehicles/parking", Perm.VEHICLES_READ),
    nav.NavItem("vehicles", N_("Plate watch list"), "/vehicles/watchlist", Perm.WATCHLIST_READ),
    nav.NavItem("vehicles", N_("Vehicle gates"), "/vehicles/gates", Perm.VEHICLES_READ),
)

LABELS: dict[str, str] = {
    "in": N_("entrance"),
    "out": N_("exit"),
    "open": N_("opened"),
    "queued": N_("waiting for a guard"),
    "denied": N_("not opened"),
    "pending": N_("waiting"),
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    "expired": N_("expired"),
    "superseded": N_("replaced"),
    "long_term": N_("long-term"),
    "temporary": N_("temporary"),
    "queue": N_("ask a guard"),
    "deny": N_("keep closed"),
    "valid": N_("valid"),
    "future": N_("not yet valid"),
    "revoked": N_("cancelled"),
    "expected": N_("expected"),
    "inside": N_("inside"),
    "overstaying": N_("overstaying"),
    "left": N_("left"),
    "cancelled": N_("cancelled"),
    "sent": N_("sent"),
    "acked": N_("barrier opened"),
    "failed": N_("barrier failed"),
    "timeout": N_("no answer from the barrier"),
    "critical": N_("critical"),
    "major": N_("major"),
    "warning": N_("warning"),
    "info": N_("info"),
}
UNKNOWN_LABELS: dict[str, str] = {
    "queue": N_("ask a guard"),
    "deny": N_("keep closed"),
    "open": N_("let in (temporary parking)"),
}


def _page(request: Request, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(
        labels=LABELS,
        categories=service.CATEGORY_LABELS,
        reason_message=service.reason_message,
        plate=display_plate,
        unknown_labels=UNKNOWN_LABELS,
    )
    return render(request, template, extra, status=status)


def _fragment(request: Request, template: str, **extra: Any) -> HTMLResponse:
    extra.update(
        labels=LABELS,
        categories=service.CATEGORY_LABELS,
        reason_message=service.reason_message,
        plate=display_plate,
    )
    return render(request, template, extra)


def _str(form: Any, key: str) -> str:
    v = form.get(key)
    return v.strip() if isinstance(v, str) else ""


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 else None


def _back(ctx: Ctx, path: str) -> RedirectResponse:
    return RedirectResponse(f"/c/{ctx.community_id}{path}", status_code=303)


def _local(value: str, tz: str) -> datetime | str:
    """A ``datetime-local`` form value in the community's time zone (or the text, which the
    schema then refuses with a translated message)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return value


def _date_end(value: str, tz: str) -> datetime | str | None:
    if not value:
        return None
    v = _local(value, tz)
    if isinstance(v, datetime) and len(value) == 10:  # a date: valid through that day
        return v + timedelta(days=1)
    return v


# -- vehicles -------------------------------------------------------------------------------------


def _vehicles(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    q = str(extra.pop("q", "") or "")
    rows = service.list_vehicles(s, ctx, q=q[:50] or None)
    residents: list[Any] = []
    if ctx.can(Perm.VEHICLES_MANAGE) and ctx.can(Perm.PEOPLE_READ):
        from linli.people import service as people

        _n, residents = people.search_residents(s, ctx, limit=1000)
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    extra.setdefault("editing", None)
    return _page(
        request,
        ctx,
        "vehicles_list.html",
        rows=rows,
        owners=service.owner_names(s, ctx, rows),
        residents=residents,
        q=q,
        **extra,
    )


@router.get("/c/{cid}/vehicles")
def vehicles_page(
    request: Request,
    q: str = "",
    edit: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    editing = None
    form: dict[str, Any] = {}
    vid = _int(edit)
    if vid is not None and ctx.can(Perm.VEHICLES_MANAGE):
        editing = service.get_vehicle(s, ctx, vid)
        ident_resident = None
        if editing.identity_id:
            from linli.access.models import Identity

            ident = s.get(Identity, editing.identity_id)
            ident_resident = ident.resident_id if ident else None
        form = {
            "plate": editing.plate,
            "resident_id": ident_resident or "",
            "household_id": editing.household_id or "",
            "color": editing.color or "",
            "description": editing.description or "",
            "note": editing.note or "",
            "active": editing.active,
        }
    return _vehicles(request, s, ctx, q=q, editing=editing, form=form)


@router.post("/c/{cid}/vehicles")
async def vehicles_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    form = await request.form()
    vid = _int(_str(form, "vehicle_id"))
    if _str(form, "action") == "delete" and vid is not None:
        try:
            service.delete_vehicle(s, ctx, vid)
        except AppError as exc:
            s.rollback()
            return _vehicles(request, s, ctx, errors=form_errors(exc), status=422)
        s.commit()
        flash(request, i18n.gettext("Vehicle removed."))
        return _back(ctx, "/vehicles")
    try:
        data = VehicleIn.model_validate(
            {
                "plate": _str(form, "plate"),
                "resident_id": _int(_str(form, "resident_id")),
                "household_id": _int(_str(form, "household_id")),
                "color": _str(form, "color") or None,
                "description": _str(form, "description") or None,
                "note": _str(form, "note") or None,
                "active": form.get("active") == "on",
            }
        )
        v = service.save_vehicle(s, ctx, data, get_settings(request), vid)
    except (ValidationError, AppError) as exc:
        s.rollback()
        editing = service.get_vehicle(s, ctx, vid) if vid is not None else None
        return _vehicles(
            request,
            s,
            ctx,
            errors=form_errors(exc),
            form=dict(form),
            editing=editing,
            status=422,
        )
    s.commit()
    flash(request, i18n.gettext("Vehicle %(plate)s saved.", plate=display_plate(v.plate)))
    return _back(ctx, "/vehicles")


# -- permits --------------------------------------------------------------------------------------


def _permits(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    q = str(extra.pop("q", "") or "")
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    extra.setdefault("editing", None)
    now = utcnow()
    rows = service.list_permits(s, ctx, q=q[:50] or None)
    return _page(
        request,
        ctx,
        "vehicles_permits.html",
        rows=rows,
        status_of={p.id: service.permit_status(p, now) for p in rows},
        car_parks=service.list_car_parks(s, ctx),
        cp_names={c.id: c.name for c in service.list_car_parks(s, ctx)},
        kinds=PERMIT_KINDS,
        q=q,
        **extra,
    )


@router.get("/c/{cid}/vehicles/permits")
def permits_page(
    request: Request,
    q: str = "",
    edit: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    pid = _int(edit)
    editing = service.get_permit(s, ctx, pid) if pid and ctx.can(Perm.VEHICLES_MANAGE) else None
    form: dict[str, Any] = {}
    if editing is not None:
        tz = ZoneInfo(ctx.timezone)
        form = {
            "plate": editing.plate,
            "kind": editing.kind,
            "holder": editing.holder or "",
            "car_park_id": editing.car_park_id or "",
            "spot": editing.spot or "",
            "fee_type": editing.fee_type or "",
            "valid_from": editing.valid_from.astimezone(tz).strftime("%Y-%m-%dT%H:%M"),
            "valid_until": editing.valid_until.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
            if editing.valid_until
            else "",
            "note": editing.note or "",
        }
    return _permits(request, s, ctx, q=q, editing=editing, form=form)


@router.post("/c/{cid}/vehicles/permits")
async def permits_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    form = await request.form()
    pid = _int(_str(form, "permit_id"))
    if _int(_str(form, "revoke")) is not None:
        try:
            service.revoke_permit(s, ctx, int(_str(form, "revoke")))
        except AppError as exc:
            s.rollback()
            return _permits(request, s, ctx, errors=form_errors(exc), status=422)
        s.commit()
        flash(request, i18n.gettext("Permit cancelled."))
        return _back(ctx, "/vehicles/permits")
    vf = _str(form, "valid_from")
    try:
        data = PermitIn.model_validate(
            {
                "plate": _str(form, "plate"),
                "kind": _str(form, "kind") or "long_term",
                "holder": _str(form, "holder") or None,
                "car_park_id": _int(_str(form, "car_park_id")),
                "spot": _str(form, "spot") or None,
                "fee_type": _str(form, "fee_type") or None,
                "valid_from": _local(vf, ctx.timezone) if vf else None,
                "valid_until": _date_end(_str(form, "valid_until"), ctx.timezone),
                "note": _str(form, "note") or None,
            }
        )
        p = service.save_permit(s, ctx, data, pid)
    except (ValidationError, AppError) as exc:
        s.rollback()
        editing = service.get_permit(s, ctx, pid) if pid else None
        return _permits(
            request, s, ctx, errors=form_errors(exc), form=dict(form), editing=editing, status=422
        )
    s.commit()
    flash(request, i18n.gettext("Permit for %(plate)s saved.", plate=display_plate(p.plate)))
    return _back(ctx, "/vehicles/permits")


# -- my vehicles and my visitor cars --------------------------------------------------------------


def _mine(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    now = utcnow()
    tz = ZoneInfo(ctx.timezone)
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    visitors = (
        service.list_visitor_vehicles(s, ctx, own_only=True)
        if ctx.can(Perm.VISITORS_MANAGE)
        else []
    )
    expected = (
        service.list_visitor_vehicles(s, ctx, current_on=today)
        if ctx.can(Perm.VEHICLES_READ)
        else []
    )
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        ctx,
        "vehicles_mine.html",
        vehicles=service.my_vehicles(s, ctx),
        visitors=visitors,
        expected=expected,
        visitor_status=lambda v: service.visitor_status(v, now),
        **extra,
    )


@router.get("/c/{cid}/vehicles/mine")
def mine_page(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.SELF))
) -> Response:
    return _mine(request, s, ctx)


@router.post("/c/{cid}/vehicles/mine")
async def mine_visitor(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    form = await request.form()
    cancel = _int(_str(form, "cancel"))
    if cancel is not None:
        try:
            service.revoke_visitor_vehicle(s, ctx, cancel)
        except AppError as exc:
            s.rollback()
            return _mine(request, s, ctx, errors=form_errors(exc), status=422)
        s.commit()
        flash(request, i18n.gettext("Visitor car cancelled."))
        return _back(ctx, "/vehicles/mine")
    start = _str(form, "valid_from")
    hours = _str(form, "hours") or "4"
    vf: Any = _local(start, ctx.timezone) if start else utcnow()
    vu: Any = "?"
    try:
        h = float(hours)
        if isinstance(vf, datetime) and 0 < h <= 24 * 31:
            vu = vf + timedelta(hours=h)
    except (ValueError, OverflowError):
        pass
    try:
        data = VisitorVehicleIn.model_validate(
            {
                "plate": _str(form, "plate"),
                "visitor_name": _str(form, "visitor_name") or None,
                "phone": _str(form, "phone") or None,
                "purpose": _str(form, "purpose") or None,
                "valid_from": vf,
                "valid_until": vu,
                "host_resident_id": _int(_str(form, "host_resident_id")),
            }
        )
        v = service.register_visitor_vehicle(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        errors = form_errors(exc)
        if "valid_until" in errors and vu == "?":
            errors["hours"] = errors.pop("valid_until")
        return _mine(request, s, ctx, errors=errors, form=dict(form), status=422)
    s.commit()
    flash(
        request,
        i18n.gettext(
            "Visitor car %(plate)s registered: the barrier opens for it in its time window.",
            plate=display_plate(v.plate),
        ),
    )
    return _back(ctx, "/vehicles/mine")


# -- the live vehicle log -------------------------------------------------------------------------


@router.get("/c/{cid}/vehicles/log")
def log_page(
    request: Request,
    gate_id: str = "",
    plate: str = "",
    decision: str = "",
    fragment: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    gid = _int(gate_id)
    dec = decision if decision in ("open", "queued", "denied") else None
    live = bool(fragment)
    rows = service.vehicle_log(
        s, ctx, gate_id=gid, plate=plate[:20] or None, decision=dec, limit=100, audited=not live
    )
    gates = service.list_gates(s, ctx)
    extra = {
        "rows": rows,
        "gate_names": {g.id: g.name for g in gates},
        "commands": service.command_states(s, rows),
    }
    s.commit()  # the audit entry of the look-up
    if live:
        return _fragment(request, "vehicles_log_rows.html", ctx=ctx, **extra)
    return _page(
        request,
        ctx,
        "vehicles_log.html",
        gates=gates,
        gate_id=gid,
        plate_q=plate[:20],
        decision=dec or "",
        **extra,
    )


@router.get("/c/{cid}/vehicles/log/{event_id}/snapshot")
def log_snapshot(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    data = service.snapshot(s, ctx, event_id, request.app.state.files)
    s.commit()
    return Response(
        data, media_type=service.media_type(data), headers={"Cache-Control": "no-store"}
    )


# -- the guard confirmation queue -----------------------------------------------------------------


@router.get("/c/{cid}/vehicles/queue")
def queue_page(
    request: Request,
    fragment: str = "",
    after: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    rows = service.review_queue(s, ctx)
    gates = {g.id: g.name for g in service.list_gates(s, ctx)}
    last = max((e.id for e in rows), default=0)
    watch_ok = ctx.can(Perm.WATCHLIST_READ)
    if fragment:
        since = _int(after) or 0
        fresh = [e for e in rows if e.id > since]
        return _fragment(
            request,
            "vehicles_queue_items.html",
            ctx=ctx,
            rows=fresh,
            gate_names=gates,
            last=max(last, since),
            watch_ok=watch_ok,
            errors={},
            oob=True,
        )
    return _page(
        request,
        ctx,
        "vehicles_queue.html",
        rows=rows,
        gate_names=gates,
        last=last,
        watch_ok=watch_ok,
        errors={},
    )


@router.post("/c/{cid}/vehicles/queue/{event_id}")
async def queue_decide(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_CONFIRM)),
) -> Response:
    form = await request.form()
    note = _str(form, "note")[:300] or None
    try:
        if _str(form, "action") == "reject":
            service.reject(s, ctx, event_id, note)
            msg = i18n.gettext("Rejected; the barrier stays closed.")
        else:
            from linli.vehicles.schemas import ConfirmIn

            data = ConfirmIn.model_validate({"plate": _str(form, "plate"), "note": note})
            ev = service.confirm(s, ctx, event_id, data.plate, data.note)
            msg = i18n.gettext(
                "%(plate)s confirmed; the barrier was told to open.", plate=display_plate(ev.plate)
            )
    except (ValidationError, AppError) as exc:
        s.rollback()
        errors = form_errors(exc)
        rows = service.review_queue(s, ctx)
        return _page(
            request,
            ctx,
            "vehicles_queue.html",
            rows=rows,
            gate_names={g.id: g.name for g in service.list_gates(s, ctx)},
            last=max((e.id for e in rows), default=0),
            watch_ok=ctx.can(Perm.WATCHLIST_READ),
            errors={event_id: errors},
            page_error=None if any(e.id == event_id for e in rows) else " ".join(errors.values()),
            status=409 if isinstance(exc, AppError) and exc.status == 409 else 422,
        )
    s.commit()
    flash(request, msg)
    return _back(ctx, "/vehicles/queue")


# -- parking occupancy ----------------------------------------------------------------------------


def _parking(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    now = utcnow()
    inside = service.inside_now(s, ctx)
    from linli.vehicles.models import VisitorVehicle

    vids = {p.visitor_id for p in inside if p.visitor_id}
    windows = {
        v.id: v.valid_until for v in (s.get(VisitorVehicle, i) for i in vids) if v is not None
    }
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        ctx,
        "vehicles_parking.html",
        occ=service.occupancy(s, ctx),
        inside=inside,
        windows=windows,
        now=now,
        car_parks=service.list_car_parks(s, ctx),
        **extra,
    )


@router.get("/c/{cid}/vehicles/parking")
def parking_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    return _parking(request, s, ctx)


@router.post("/c/{cid}/vehicles/parking")
async def car_park_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    form = await request.form()
    cpid = _int(_str(form, "car_park_id"))
    try:
        data = CarParkIn.model_validate(
            {"name": _str(form, "name"), "capacity": _str(form, "capacity") or "0"}
        )
        service.save_car_park(s, ctx, data, cpid)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _parking(request, s, ctx, errors=form_errors(exc), form=dict(form), status=422)
    s.commit()
    flash(request, i18n.gettext("Saved."))
    return _back(ctx, "/vehicles/parking")


# -- the plate watch list (restricted, audited) ---------------------------------------------------


def _watchlist(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    rows = service.list_watch(s, ctx, include_ended=bool(extra.pop("all", False)))
    matches = service.watch_matches(s, ctx)
    s.commit()  # the audit entry of the look-up
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        ctx,
        "vehicles_watchlist.html",
        rows=rows,
        matches=matches,
        gate_names={g.id: g.name for g in service.list_gates(s, ctx)}
        if ctx.can(Perm.VEHICLES_READ)
        else {},
        severities=("critical", "major", "warning", "info"),
        **extra,
    )


@router.get("/c/{cid}/vehicles/watchlist")
def watchlist_page(
    request: Request,
    all: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> Response:
    return _watchlist(request, s, ctx, all=bool(all), show_all=bool(all))


@router.post("/c/{cid}/vehicles/watchlist")
async def watchlist_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> Response:
    form = await request.form()
    end = _int(_str(form, "end"))
    try:
        if end is not None:
            service.end_watch(s, ctx, end)
            msg = i18n.gettext("Watch-list entry ended.")
        else:
            data = WatchIn.model_validate(
                {
                    "plate": _str(form, "plate"),
                    "reason": _str(form, "reason"),
                    "authorised_by": _str(form, "authorised_by"),
                    "expires_at": _date_end(_str(form, "expires_at"), ctx.timezone) or "",
                    "severity": _str(form, "severity") or "major",
                }
            )
            w = service.add_watch(s, ctx, data)
            msg = i18n.gettext("%(plate)s is on the watch list.", plate=display_plate(w.plate))
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _watchlist(request, s, ctx, errors=form_errors(exc), form=dict(form), status=422)
    s.commit()
    flash(request, msg)
    return _back(ctx, "/vehicles/watchlist")


# -- vehicle gates --------------------------------------------------------------------------------


def _gates(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("error_gate", None)
    extra.setdefault("tried", None)
    extra.setdefault("new_secret", None)
    devices: list[Any] = []
    if ctx.can(Perm.VEHICLES_MANAGE) and ctx.can(Perm.IOT_READ):
        from linli.iot import service as iot

        devices = iot.list_devices(s, ctx)[:500]
    return _page(
        request,
        ctx,
        "vehicles_gates.html",
        devices=devices,
        gates=service.list_gates(s, ctx),
        car_parks=service.list_car_parks(s, ctx),
        unknown_actions=UNKNOWN_ACTIONS,
        **extra,
    )


@router.get("/c/{cid}/vehicles/gates")
def gates_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    return _gates(request, s, ctx)


@router.post("/c/{cid}/vehicles/gates")
async def gates_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    form = await request.form()
    gid = _str(form, "gate_id")
    secret = None
    try:
        old = service.get_gate(s, ctx, int(gid)) if gid.isdigit() and len(gid) < 10 else None
        threshold = _str(form, "auto_open_confidence")
        data = GateIn.model_validate(
            {
                "name": _str(form, "name"),
                "direction": _str(form, "direction") or "in",
                "car_park_id": _int(_str(form, "car_park_id")),
                "device_id": _int(_str(form, "device_id"))
                if "device_id" in form
                else (old.device_id if old is not None else None),
                "auto_open_confidence": threshold or 0.80,
                "unknown_action": _str(form, "unknown_action") or "queue",
                "visitors_allowed": form.get("visitors_allowed") == "on",
                "enabled": form.get("enabled") == "on",
            }
        )
        g = service.save_gate(s, ctx, data, old.id if old else None)
        if form.get("with_device") == "on" and g.device_id is None:
            _d, secret = service.ensure_barrier_device(s, ctx, g)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _gates(request, s, ctx, errors=form_errors(exc), error_gate=gid, status=422)
    s.commit()
    if secret:
        return _gates(request, s, ctx, new_secret=(g, secret))
    flash(request, i18n.gettext("Gate %(name)s saved.", name=g.name))
    return _back(ctx, "/vehicles/gates")


@router.post("/c/{cid}/vehicles/gates/{gate_id}/try")
async def gate_try(
    gate_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    """Send a photo to the gate as its camera would: the real decision, logged, and the
    barrier really told to open when it may."""
    settings = get_settings(request)
    service.get_gate(s, ctx, gate_id)
    data, reject = await read_upload(request, settings.max_upload_bytes)
    decision, _ev = await run_in_threadpool(
        service.decide, s, ctx, gate_id, data, request.app.state.files, reject=reject
    )
    s.commit()
    return _gates(request, s, ctx, tried=decision)
