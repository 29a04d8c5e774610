"""Pages of facility monitoring: devices with charts, alarm console, facility map, rules,
dead letters. Live parts (alarm table, map) follow the event stream over SSE (static/iot.js)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core import i18n, nav
from linli.core.errors import AppError
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import Ctx, flash, form_errors, get_session, page_router, render, require
from linli.iot import service
from linli.iot.api import INGEST_REASONS, RANGES, device_outs, facility_map, invalidate_ingestor
from linli.iot.models import Device, DeviceProfile
from linli.iot.schemas import CommandIn, DeviceIn, DeviceUpdate, RuleIn
from linli.people import service as people
from linli.people.models import Building
from linli.workorders.models import CATEGORIES
from linli.workorders.pages import LABELS as WO_LABELS

router = page_router()

nav.register(
    nav.NavItem("iot", N_("Devices"), "/iot/devices", Perm.IOT_READ),
    nav.NavItem("iot", N_("Alarm console"), "/iot/alarms", Perm.IOT_READ),
    nav.NavItem("iot", N_("Facility map"), "/iot/map", Perm.IOT_READ),
    nav.NavItem("iot", N_("Alarm rules"), "/iot/rules", Perm.IOT_READ),
    nav.NavItem("iot", N_("Dead letters"), "/iot/dead-letters", Perm.IOT_READ),
)

LABELS: dict[str, str] = {
    **WO_LABELS,
    "ok": N_("normal"),
    "offline": N_("offline"),
    "active": N_("active"),
    "acknowledged": N_("acknowledged"),
    "cleared": N_("cleared"),
    "pending": N_("pending"),
    "sent": N_("sent"),
    "acked": N_("done"),
    "failed": N_("failed"),
    "timeout": N_("timed out"),
    "threshold": N_("threshold"),
    "duration": N_("lasting"),
    "rate": N_("rate of change"),
    "missing": N_("no data"),
    "all": N_("all of"),
    "any": N_("any of"),
}

#: the metrics of the built-in profiles, for headings and chart legends
METRIC_TITLES: dict[str, str] = {
    "tilt": "Tilt",
    "displacement": "Displacement",
    "battery": "Battery",
    "pressure": "Water pressure",
    "leak": "Leak",
    "smoke": "Smoke",
    "on": "Lit",
    "fault": "Fault",
    "power": "Power",
    "running": "Running",
    "fault_code": "Fault code",
    "trapped": "Passenger trapped",
    "floor": "Floor",
    "temperature": "Temperature",
    "current": "Electric current",
    "distance": "Distance",
    "fill": "Fill level",
    "open": "Door open",
    "flow": "Flow",
    "total": "Total volume",
    "rssi": "Signal strength",
    "uptime": "Uptime",
}

#: names of the built-in alarm rules (an alarm's kind is the name of its rule)
RULE_TITLES: dict[str, str] = {
    "Cover tilted or moved": "Cover tilted or moved",
    "Battery low": "Battery low",
    "Water pressure low": "Water pressure low",
    "Hydrant leaking": "Hydrant leaking",
    "Smoke detected": "Smoke detected",
    "Water leak": "Water leak",
    "Light fault": "Light fault",
    "Passenger trapped": "Passenger trapped",
    "Elevator fault": "Elevator fault",
    "Charger overheating": "Charger overheating",
    "Over-current": "Over-current",
    "Bin nearly full": "Bin nearly full",
    "Device offline": "Device offline",
}

SEVERITIES = ("critical", "major", "minor", "warning", "info")


def metric_title(key: str) -> str:
    text = METRIC_TITLES.get(key)
    return i18n.gettext(text) if text else key


OPS_TEXT = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠"}


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def describe_condition(cond: Any) -> str:
    """A rule's condition in words, in the reader's language."""
    if not isinstance(cond, dict):
        return str(cond)
    kind = cond.get("kind")
    if kind in ("all", "any"):
        parts = "; ".join(
            describe_condition(c) for c in cond.get("conditions") or [] if isinstance(c, dict)
        )
        label = i18n.gettext("all of") if kind == "all" else i18n.gettext("any of")
        return f"{label}: {parts}"
    if kind == "missing":
        return i18n.gettext("no data for %(seconds)s s", seconds=_num(cond.get("seconds")))
    metric = metric_title(str(cond.get("metric", "")))
    op = OPS_TEXT.get(str(cond.get("op")), str(cond.get("op")))
    if kind == "rate":
        return i18n.gettext(
            "%(metric)s changes %(op)s %(value)s per minute",
            metric=metric,
            op=op,
            value=_num(cond.get("per_minute")),
        )
    text = f"{metric} {op} {_num(cond.get('value'))}"
    if kind == "duration":
        text = i18n.gettext(
            "%(condition)s for %(seconds)s s", condition=text, seconds=_num(cond.get("seconds"))
        )
    if "clear" in cond:
        text += " " + i18n.gettext("(clears at %(value)s)", value=_num(cond["clear"]))
    return text


def _alarm_helpers() -> dict[str, Any]:
    return {
        "labels": LABELS,
        "rule_titles": RULE_TITLES,
        "alarm_kind": service.alarm_kind_title,
        "alarm_text": service.alarm_text,
    }


def _page(request: Request, s: Session, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(_alarm_helpers())
    extra.update(
        community=people.get_community(s, ctx),
        labels=LABELS,
        metric_titles=METRIC_TITLES,
        rule_titles=RULE_TITLES,
        reasons=INGEST_REASONS,
        severities=SEVERITIES,
        categories=CATEGORIES,
        describe=describe_condition,
        as_json=lambda v: json.dumps(v, ensure_ascii=False),
        zh=i18n.get_language() == "zh_CN",
    )
    return render(request, template, extra, status=status)


def _profiles(s: Session, ctx: Ctx) -> list[DeviceProfile]:
    return service.profiles(s, ctx)


def _buildings(s: Session, ctx: Ctx) -> list[Building]:
    q = select(Building).where(Building.community_id == ctx.community_id).order_by(Building.name)
    return list(s.scalars(q))


def _g(form: Any, k: str) -> str:
    v = form.get(k)
    return v.strip() if isinstance(v, str) else ""


# -- devices -----------------------------------------------------------------------------------


@router.get("/c/{cid}/iot/devices")
def devices_page(
    request: Request,
    profile: str = "",
    status: str = "",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    profiles = _profiles(s, ctx)
    rows = service.list_devices(s, ctx, profile_key=profile[:50] or None)
    items = [d for d in device_outs(s, ctx, rows) if not status or d.status == status]
    counts = {k: 0 for k in service.DEVICE_STATES}
    for d in device_outs(s, ctx, service.list_devices(s, ctx)):
        counts[d.status] = counts.get(d.status, 0) + 1
    s.commit()  # the built-in profiles, created on first use
    return _page(
        request,
        s,
        ctx,
        "iot_devices.html",
        items=items,
        profiles=profiles,
        profile_by_id={p.id: p for p in profiles},
        buildings={b.id: b.name for b in _buildings(s, ctx)},
        profile=profile,
        state=status,
        counts=counts,
    )


def _device_form_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "iot_device_new.html",
        profiles=_profiles(s, ctx),
        buildings=_buildings(s, ctx),
        **extra,
    )


@router.get("/c/{cid}/iot/devices/new")
def device_new(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> Response:
    return _device_form_page(request, s, ctx)


def _opt(v: str) -> str | None:
    return v or None


@router.post("/c/{cid}/iot/devices/new")
async def device_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> Response:
    raw = await request.form()
    form = {
        k: _g(raw, k)
        for k in ("name", "profile_id", "key", "building_id", "location", "map_x", "map_y")
    }
    try:
        data = DeviceIn.model_validate(
            {k: _opt(v) for k, v in form.items()} | {"name": form["name"]}
        )
        assert data.profile_id is not None or data.profile is not None
        pid = (
            service.get_profile(s, ctx, data.profile_id).id
            if data.profile_id is not None
            else service.profile_by_key(s, ctx, data.profile or "").id
        )
        d, secret = service.create_device(
            s,
            ctx,
            name=data.name.strip(),
            profile_id=pid,
            key=data.key,
            building_id=data.building_id,
            location=data.location,
            map_x=data.map_x,
            map_y=data.map_y,
        )
    except (ValidationError, AppError) as exc:
        s.rollback()
        errors = form_errors(exc)
        if "_" not in errors and not set(errors) & set(form):
            errors["_"] = next(iter(errors.values()), "")
        return _device_form_page(request, s, ctx, errors=errors, form=form, status=422)
    s.commit()
    invalidate_ingestor(request.app)
    # the secret is shown on this answer only; it is never stored in clear
    return _page(request, s, ctx, "iot_device_created.html", device=d, secret=secret)


def _device_page(request: Request, s: Session, ctx: Ctx, device_id: int, **extra: Any) -> Response:
    d = service.get_device(s, ctx, device_id)
    out = device_outs(s, ctx, [d])[0]
    profile = s.get(DeviceProfile, d.profile_id)
    metrics = list(profile.metrics) if profile else []
    latest = service.latest(s, ctx, device_id)
    alarms = [a for a in service.list_alarms(s, ctx, open_only=True) if a.device_id == d.id]
    rules = service.rules_for_device(s, d)
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    chart_metrics = [
        {
            "key": m["key"],
            "unit": m.get("unit", ""),
            "title": metric_title(m["key"]),
            "kind": m.get("kind", "number"),
        }
        for m in metrics
    ]
    return _page(
        request,
        s,
        ctx,
        "iot_device.html",
        device=out,
        profile=profile,
        metrics=metrics,
        latest=latest,
        alarms=alarms,
        rules=rules,
        commands=service.list_commands(s, ctx, device_id, limit=10),
        buildings=_buildings(s, ctx),
        ranges=list(RANGES),
        chart_metrics=json.dumps(chart_metrics, ensure_ascii=False),
        attributes_json=json.dumps(d.attributes or {}, ensure_ascii=False, indent=2),
        **extra,
    )


@router.get("/c/{cid}/iot/devices/{device_id}")
def device_page(
    request: Request,
    device_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    return _device_page(request, s, ctx, device_id)


@router.post("/c/{cid}/iot/devices/{device_id}")
async def device_update(
    request: Request,
    device_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> Response:
    raw = await request.form()
    form = {k: _g(raw, k) for k in ("name", "building_id", "location", "map_x", "map_y")}
    form["enabled"] = "on" if raw.get("enabled") == "on" else ""
    try:
        data = DeviceUpdate.model_validate(
            {k: _opt(v) for k, v in form.items() if k != "enabled"}
            | {"name": form["name"], "enabled": form["enabled"] == "on"}
        )
        service.update_device(s, ctx, device_id, **data.changes())
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _device_page(
            request, s, ctx, device_id, errors=form_errors(exc), form=form, status=422
        )
    s.commit()
    invalidate_ingestor(request.app)
    flash(request, i18n.gettext("Device saved."))
    return RedirectResponse(f"/c/{ctx.community_id}/iot/devices/{device_id}", status_code=303)


@router.post("/c/{cid}/iot/devices/{device_id}/commands")
async def device_command(
    request: Request,
    device_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.DEVICES_COMMAND)),
) -> Response:
    raw = await request.form()
    form = {k: _g(raw, k) for k in ("command", "params")}
    try:
        try:
            params = json.loads(form["params"]) if form["params"] else {}
        except ValueError:
            raise AppError(
                "The parameters are not valid JSON.", field="params", status=422
            ) from None
        data = CommandIn.model_validate({"name": form["command"], "params": params})
        cmd = service.send_command(s, ctx, device_id, data.name, data.params, data.timeout_s)
    except (ValidationError, AppError) as exc:
        s.rollback()
        errors = form_errors(exc)
        if "name" in errors:
            errors["command"] = errors.pop("name")
        return _device_page(request, s, ctx, device_id, errors=errors, form=form, status=422)
    s.commit()
    flash(request, i18n.gettext("Command %(name)s sent.", name=cmd.name))
    return RedirectResponse(f"/c/{ctx.community_id}/iot/devices/{device_id}", status_code=303)


# -- alarms ------------------------------------------------------------------------------------


def _alarm_rows(s: Session, ctx: Ctx, show: str) -> dict[str, Any]:
    if show == "all":
        alarms = service.list_alarms(s, ctx, limit=300)
    elif show == "cleared":
        alarms = service.list_alarms(s, ctx, status="cleared", limit=300)
    else:
        alarms = service.list_alarms(s, ctx, open_only=True, limit=300)
    ids = {a.device_id for a in alarms if a.device_id}
    names = (
        dict(s.execute(select(Device.id, Device.name).where(Device.id.in_(ids))).all())
        if ids
        else {}
    )
    return {"alarms": alarms, "device_names": names, "show": show}


@router.get("/c/{cid}/iot/alarms")
def alarms_page(
    request: Request,
    show: str = "open",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    show = show if show in ("open", "all", "cleared") else "open"
    data = _alarm_rows(s, ctx, show)
    if request.headers.get("hx-request") or request.query_params.get("fragment"):
        request.state.principal = ctx.principal
        return render(request, "iot_alarm_rows.html", {**data, **_alarm_helpers()})
    return _page(request, s, ctx, "iot_alarms.html", **data)


@router.post("/c/{cid}/iot/alarms/{alarm_id}/{action}")
def alarm_action(
    request: Request,
    alarm_id: int,
    action: str,
    show: str = "open",
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ALARMS_HANDLE)),
) -> Response:
    if action == "acknowledge":
        service.acknowledge(s, ctx, alarm_id)
    elif action == "clear":
        service.clear(s, ctx, alarm_id)
    else:
        from linli.core.errors import NotFound

        raise NotFound("Unknown action.")
    s.commit()
    show = show if show in ("open", "all", "cleared") else "open"
    if request.headers.get("hx-request"):
        request.state.principal = ctx.principal
        data = _alarm_rows(s, ctx, show)
        return render(request, "iot_alarm_rows.html", {**data, **_alarm_helpers()})
    return RedirectResponse(f"/c/{ctx.community_id}/iot/alarms?show={show}", status_code=303)


# -- facility map ------------------------------------------------------------------------------

MAP_W, MAP_H = 1000, 640


def _layout(buildings: list[dict[str, Any]]) -> None:
    """Buildings without a position on the site plan get one on a tidy grid."""
    unplaced = [b for b in buildings if b["map_x"] is None or b["map_y"] is None]
    cols = max(1, min(6, len(unplaced)))
    for i, b in enumerate(unplaced):
        b["map_x"] = 0.1 + 0.8 * ((i % cols) + 0.5) / cols
        b["map_y"] = 0.12 + 0.18 * (i // cols)
        b["auto"] = True


@router.get("/c/{cid}/iot/map")
def map_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    fm = facility_map(s, ctx)
    buildings = [b.model_dump() for b in fm.buildings]
    _layout(buildings)
    at = {b["id"]: b for b in buildings}
    devices = []
    around: dict[int | None, int] = {}
    for d in fm.devices:
        dd = d.model_dump()
        if dd["map_x"] is None or dd["map_y"] is None:
            b = at.get(dd["building_id"]) if dd["building_id"] else None
            if b is None:
                n = around.get(None, 0)
                around[None] = n + 1
                dd["map_x"], dd["map_y"] = 0.04 + 0.05 * (n % 18), 0.95 - 0.05 * (n // 18)
            else:
                n = around.get(b["id"], 0)
                around[b["id"]] = n + 1
                dd["map_x"] = b["map_x"] - 0.04 + 0.025 * (n % 4)
                dd["map_y"] = b["map_y"] + 0.07 + 0.035 * (n // 4)
            dd["auto"] = True
        dd["px"], dd["py"] = round(dd["map_x"] * MAP_W, 1), round(dd["map_y"] * MAP_H, 1)
        devices.append(dd)
    for b in buildings:
        b["px"], b["py"] = round(b["map_x"] * MAP_W, 1), round(b["map_y"] * MAP_H, 1)
    zh = i18n.get_language() == "zh_CN"
    names = {p.key: (p.name_zh if zh else p.name) for p in _profiles(s, ctx)}
    order = {"alarm": 0, "offline": 1, "ok": 2}
    return _page(
        request,
        s,
        ctx,
        "iot_map.html",
        buildings=buildings,
        devices=devices,
        table=sorted(devices, key=lambda d: (order.get(d["status"], 3), d["name"])),
        profile_names=names,
        counts=fm.counts,
        map_w=MAP_W,
        map_h=MAP_H,
    )


# -- rules -------------------------------------------------------------------------------------


def _rules_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    profiles = _profiles(s, ctx)
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    devices = service.list_devices(s, ctx)
    return _page(
        request,
        s,
        ctx,
        "iot_rules.html",
        rules=service.list_rules(s, ctx),
        profiles=profiles,
        profile_by_id={p.id: p for p in profiles},
        devices=devices,
        device_by_id={d.id: d for d in devices},
        **extra,
    )


@router.get("/c/{cid}/iot/rules")
def rules_page(
    request: Request,
    edit: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    form: dict[str, Any] = {}
    if edit is not None and ctx.can(Perm.IOT_MANAGE):
        r = next((r for r in service.list_rules(s, ctx) if r.id == edit), None)
        if r is not None:
            form = {
                "rule_id": str(r.id),
                "name": r.name,
                "scope": f"profile:{r.profile_id}" if r.profile_id else f"device:{r.device_id}",
                "condition": json.dumps(r.condition, ensure_ascii=False),
                "severity": r.severity,
                "category": r.category,
                "message": r.message or "",
                "create_work_order": "on" if r.create_work_order else "",
                "enabled": "on" if r.enabled else "",
            }
    return _rules_page(request, s, ctx, form=form)


@router.post("/c/{cid}/iot/rules")
async def rules_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> Response:
    raw = await request.form()
    form = {
        k: _g(raw, k)
        for k in ("rule_id", "name", "scope", "condition", "severity", "category", "message")
    }
    form["create_work_order"] = "on" if raw.get("create_work_order") == "on" else ""
    form["enabled"] = "on" if raw.get("enabled") == "on" else ""
    try:
        try:
            condition = json.loads(form["condition"] or "null")
        except ValueError:
            raise AppError(
                "The condition is not valid JSON.", field="condition", status=422
            ) from None
        kind, _, ref = form["scope"].partition(":")
        scope = {"profile_id": ref or None} if kind == "profile" else {"device_id": ref or None}
        data = RuleIn.model_validate(
            {
                "name": form["name"],
                "condition": condition,
                "severity": form["severity"] or "major",
                "category": form["category"] or "facility",
                "message": form["message"] or None,
                "create_work_order": form["create_work_order"] == "on",
                "enabled": form["enabled"] == "on",
                **scope,
            }
        )
        rule = service.save_rule(
            s,
            ctx,
            name=data.name,
            condition=data.condition,
            severity=data.severity,
            profile_id=data.profile_id,
            device_id=data.device_id,
            category=data.category,
            create_work_order=data.create_work_order,
            message=data.message,
            rule_id=int(form["rule_id"]) if form["rule_id"].isdigit() else None,
        )
        rule.enabled = data.enabled
    except (ValidationError, AppError) as exc:
        s.rollback()
        errors = form_errors(exc)
        for k in ("profile_id", "device_id"):
            if k in errors:
                errors["scope"] = errors.pop(k)
        return _rules_page(request, s, ctx, errors=errors, form=form, status=422)
    s.commit()
    invalidate_ingestor(request.app)
    flash(request, i18n.gettext("Rule saved."))
    return RedirectResponse(f"/c/{ctx.community_id}/iot/rules", status_code=303)


# -- dead letters ------------------------------------------------------------------------------


@router.get("/c/{cid}/iot/dead-letters")
def dead_letters_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> Response:
    rows = service.dead_letters(s, ctx, limit=300)
    ids = {d.device_id for d in rows if d.device_id}
    names = (
        dict(s.execute(select(Device.id, Device.name).where(Device.id.in_(ids))).all())
        if ids
        else {}
    )
    return _page(request, s, ctx, "iot_dead_letters.html", items=rows, device_names=names)
