"""Pages of the living environment: stations and bins with fill levels, deposits with photos
and inspection, statistics, voice prompts (playable), supervision records, and the sorting
guidance page for residents."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from linli.core import i18n, nav
from linli.core.db import utcnow
from linli.core.errors import AppError
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import Ctx, flash, form_errors, get_session, page_router, render, require
from linli.waste import service, terminal, voice
from linli.waste.models import BIN_CATEGORIES
from linli.waste.schemas import BinIn, StationIn, Window

router = page_router()

nav.register(
    nav.NavItem("waste", N_("Sorting guide"), "/waste/guide", Perm.SELF),
    nav.NavItem("waste", N_("Collection stations"), "/waste", Perm.WASTE_READ),
    nav.NavItem("waste", N_("Deposits and inspection"), "/waste/deposits", Perm.WASTE_READ),
    nav.NavItem("waste", N_("Waste statistics"), "/waste/stats", Perm.WASTE_READ),
    nav.NavItem("waste", N_("Voice prompts"), "/waste/prompts", Perm.WASTE_READ),
    nav.NavItem("waste", N_("Supervision records"), "/waste/supervision", Perm.WASTE_READ),
)

LABELS: dict[str, str] = {
    "recyclable": N_("Recyclable"),
    "hazardous": N_("Hazardous"),
    "kitchen": N_("Kitchen (wet)"),
    "residual": N_("Residual (dry)"),
    "bulky": N_("Bulky"),
    "renovation": N_("Renovation"),
    "pending": N_("not inspected"),
    "correct": N_("correctly sorted"),
    "contaminated": N_("contaminated"),
    "valid": N_("valid"),
    "lid_failed": N_("lid did not open"),
    "outside_hours_drop": N_("garbage left outside delivery hours"),
    "pile_beside_bins": N_("garbage piled beside the bins"),
    "open": N_("open"),
    "handled": N_("handled"),
}
PROMPT_LABELS: dict[str, str] = {
    "welcome": N_("Welcome"),
    "which_bin": N_("Which bin"),
    "bin.recyclable": N_("Recyclable bin"),
    "bin.hazardous": N_("Hazardous bin"),
    "bin.kitchen": N_("Kitchen bin"),
    "bin.residual": N_("Residual bin"),
    "bin.bulky": N_("Bulky waste"),
    "break_bag": N_("Break the bag"),
    "outside_hours": N_("Outside delivery hours"),
    "bin_full": N_("Bin full"),
    "wrong_bin": N_("Wrong bin"),
    "ask_staff": N_("Ask staff"),
    "thank_you": N_("Thank you"),
}
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–~]\s*(\d{1,2}:\d{2})\s*$")


def ctx_sys(ctx: Ctx) -> Ctx:
    """The resident's own identity is looked up (or created) with the system's rights."""
    from linli.core.web import system_ctx

    return system_ctx(ctx.community_id, ctx.actor.name, ctx.timezone)


def _base(ctx: Ctx) -> dict[str, Any]:
    return {
        "ctx": ctx,
        "labels": LABELS,
        "colours": {k: v["colour"] for k, v in service.CATEGORY_LABELS.items()},
        "categories": BIN_CATEGORIES,
    }


def parse_hours(text: str) -> list[Window]:
    out = []
    for part in re.split(r"[,，;；\n]+", text or ""):
        if not part.strip():
            continue
        m = _WINDOW.match(part)
        if not m:
            raise AppError(
                N_("Write the delivery hours like 07:00-09:00, 18:00-20:00."), field="hours"
            )
        a, b = (x.zfill(5) for x in m.groups())
        try:
            out.append(Window(start=a, end=b))
        except ValidationError:
            raise AppError(
                N_("Write the delivery hours like 07:00-09:00, 18:00-20:00."), field="hours"
            ) from None
    return out


def _stations(
    request: Request,
    s: Session,
    ctx: Ctx,
    errors: dict[str, str] | None = None,
    secrets: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    rows = [(st, service.bins_of(s, st.id)) for st in service.list_stations(s, ctx)]
    from sqlalchemy import select

    from linli.people.models import Building

    buildings = list(s.scalars(select(Building).where(Building.community_id == ctx.community_id)))
    return render(
        request,
        "waste_stations.html",
        {
            **_base(ctx),
            "rows": rows,
            "buildings": buildings,
            "errors": errors or {},
            "secrets": secrets or [],
            "hours_text": service.hours_text,
            "full_at": service.FULL_AT,
        },
        status=status,
    )


@router.get("/c/{cid}/waste")
def stations_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
) -> Response:
    return _stations(request, s, ctx)


def _int(v: Any) -> int | None:
    v = str(v or "").strip()
    return int(v) if v.isdigit() and len(v) < 10 else None


@router.post("/c/{cid}/waste/stations")
async def stations_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        data = StationIn.model_validate(
            {
                "name": str(form.get("name") or ""),
                "location": str(form.get("location") or "") or None,
                "building_id": _int(form.get("building_id")),
                "hours": parse_hours(str(form.get("hours") or "")),
                "overflow_lead_min": str(form.get("overflow_lead_min") or "60"),
                "with_devices": True,
            }
        )
        sid = _int(form.get("station_id"))
        secrets: list[dict[str, Any]] = []
        if sid:
            service.update_station(s, ctx, sid, data)
        else:
            st, secrets = service.create_station(s, ctx, data)
            for cat in ("recyclable", "hazardous", "kitchen", "residual"):
                _b, more = service.add_bin(s, ctx, st.id, BinIn(category=cat))
                secrets += more
        s.commit()
    except (AppError, ValidationError) as exc:
        s.rollback()
        return _stations(request, s, ctx, form_errors(exc), status=422)
    flash(request, i18n.gettext("Saved."))
    if secrets:
        return _stations(request, s, ctx, secrets=secrets)
    return RedirectResponse(f"/c/{ctx.community_id}/waste", status_code=303)


@router.post("/c/{cid}/waste/stations/{sid}/bins")
async def bin_add(
    sid: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        _b, secrets = service.add_bin(
            s, ctx, sid, BinIn.model_validate({"category": str(form.get("category") or "")})
        )
        s.commit()
    except (AppError, ValidationError) as exc:
        s.rollback()
        return _stations(request, s, ctx, form_errors(exc), status=422)
    return _stations(request, s, ctx, secrets=secrets)


@router.get("/c/{cid}/waste/deposits")
def deposits_page(
    request: Request,
    inspection: str | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
) -> Response:
    if inspection not in (None, "", "pending", "correct", "contaminated"):
        inspection = None
    rows = service.list_deposits(s, ctx, inspection=inspection or None, limit=100)
    names = {r: service.resident_name(s, r) for r in {d.resident_id for d in rows}}
    stations = {st.id: st.name for st in service.list_stations(s, ctx)}
    return render(
        request,
        "waste_deposits.html",
        {
            **_base(ctx),
            "rows": rows,
            "names": names,
            "stations": stations,
            "inspection": inspection or "",
            "tz": ctx.timezone,
        },
    )


@router.post("/c/{cid}/waste/deposits/{did}/inspection")
async def deposit_inspect(
    did: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        service.inspect(s, ctx, did, str(form.get("result") or ""), str(form.get("note") or ""))
        s.commit()
        flash(request, i18n.gettext("Inspection saved."))
    except AppError as exc:
        s.rollback()
        flash(request, i18n.gettext(exc.message, **exc.params), "error")
    back = str(form.get("back") or "")
    q = f"?inspection={back}" if back in ("pending", "correct", "contaminated") else ""
    return RedirectResponse(f"/c/{ctx.community_id}/waste/deposits{q}", status_code=303)


def _dates(start: str | None, end: str | None) -> tuple[date, date]:
    try:
        b = date.fromisoformat(end) if end else utcnow().date()
        a = date.fromisoformat(start) if start else b - timedelta(days=13)
    except ValueError:
        raise AppError(N_("Use dates in the form YYYY-MM-DD."), field="start") from None
    return a, b


@router.get("/c/{cid}/waste/stats")
def stats_page(
    request: Request,
    start: str | None = None,
    end: str | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
) -> Response:
    errors: dict[str, str] = {}
    try:
        a, b = _dates(start, end)
        stats = service.statistics(s, ctx, a, b)
    except AppError as exc:
        errors = form_errors(exc)
        a, b = _dates(None, None)
        stats = service.statistics(s, ctx, a, b)
    peak = max((r["total"] for r in stats["daily"]), default=0.0) or 1.0
    return render(
        request,
        "waste_stats.html",
        {
            **_base(ctx),
            "stats": stats,
            "peak": peak,
            "start": a.isoformat(),
            "end": b.isoformat(),
            "errors": errors,
            "by_building": service.accuracy(s, ctx, "building"),
            "by_resident": service.accuracy(s, ctx, "resident")[:20],
        },
        status=422 if errors else 200,
    )


@router.get("/c/{cid}/waste/prompts")
def prompts_page(
    request: Request,
    station_id: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    errors: dict[str, str] | None = None,
) -> Response:
    return _prompts(request, s, ctx, station_id)


def _prompts(
    request: Request,
    s: Session,
    ctx: Ctx,
    station_id: int | None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    from linli.waste.api import _sample_params

    settings = request.app.state.settings
    stations = service.list_stations(s, ctx)
    if station_id is not None and station_id not in {st.id for st in stations}:
        station_id = None
    rows = service.prompt_table(s, ctx, station_id)
    audio_error = None
    for r in rows:
        r["audio"] = {}
        for lang in voice.LANGS:
            try:
                r["audio"][lang] = service.prompt(
                    s,
                    settings,
                    ctx.community_id,
                    station_id,
                    r["key"],
                    lang,
                    **_sample_params(r["key"]),
                )
            except voice.VoiceError as exc:
                audio_error = str(exc)
    return render(
        request,
        "waste_prompts.html",
        {
            **_base(ctx),
            "rows": rows,
            "stations": stations,
            "station_id": station_id,
            "prompt_labels": PROMPT_LABELS,
            "errors": errors or {},
            "audio_error": audio_error,
        },
        status=status,
    )


@router.post("/c/{cid}/waste/prompts")
async def prompts_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> Response:
    form = await request.form()
    station_id = _int(form.get("station_id"))
    key, lang = str(form.get("key") or ""), str(form.get("lang") or "")
    try:
        if form.get("reset"):
            service.reset_prompt_text(s, ctx, key, lang, station_id)
        else:
            service.save_prompt_text(
                s,
                ctx,
                request.app.state.settings,
                key,
                lang,
                str(form.get("text") or ""),
                station_id,
            )
        s.commit()
    except AppError as exc:
        s.rollback()
        errors = {f"{key}.{lang}": i18n.gettext(exc.message, **exc.params)}
        return _prompts(request, s, ctx, station_id, errors, status=422)
    flash(request, i18n.gettext("Saved."))
    q = f"?station_id={station_id}" if station_id else ""
    return RedirectResponse(f"/c/{ctx.community_id}/waste/prompts{q}", status_code=303)


@router.get("/c/{cid}/waste/supervision")
def supervision_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
) -> Response:
    rows = service.list_supervision(s, ctx, limit=100)
    stations = {st.id: st.name for st in service.list_stations(s, ctx)}
    return render(
        request,
        "waste_supervision.html",
        {**_base(ctx), "rows": rows, "stations": stations, "tz": ctx.timezone},
    )


@router.post("/c/{cid}/waste/supervision/{rid}/handled")
async def supervision_handled(
    rid: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> Response:
    form = await request.form()
    try:
        service.handle_supervision(s, ctx, rid, str(form.get("note") or ""))
        s.commit()
    except AppError as exc:
        s.rollback()
        flash(request, i18n.gettext(exc.message, **exc.params), "error")
    return RedirectResponse(f"/c/{ctx.community_id}/waste/supervision", status_code=303)


@router.get("/c/{cid}/waste/guide")
def guide_page(
    request: Request,
    item: str | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    answer = None
    error = None
    if item is not None:
        try:
            answer = terminal.guide(item)
        except AppError as exc:
            error = i18n.gettext(exc.message, **exc.params)
    points = None
    user = ctx.principal.user
    rid = getattr(user, "resident_id", None) if user is not None else None
    qr_svg = None
    if isinstance(rid, int):
        from markupsafe import Markup

        from linli.access.qr import render_svg_inline

        points = service.balance(s, ctx.community_id, rid)
        token = service.resident_qr_token(s, ctx_sys(ctx), request.app.state.settings, rid)
        s.commit()  # the access identity may have been created on first use
        qr_svg = Markup(render_svg_inline(token, scale=4))
    return render(
        request,
        "waste_guide.html",
        {
            **_base(ctx),
            "item": (item or "")[:100],
            "answer": answer,
            "error": error,
            "points": points,
            "qr_svg": qr_svg,
            "zh": i18n.get_language().startswith("zh"),
        },
        status=422 if error else 200,
    )
