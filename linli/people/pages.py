"""Pages of the people registry: residents, buildings and units, grids, professionals."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core import i18n, nav
from linli.core.errors import AppError
from linli.core.i18n import N_
from linli.core.models import RoleGrant, User
from linli.core.roles import Perm
from linli.core.web import Ctx, flash, form_errors, get_session, page_router, render, require
from linli.people import service
from linli.people.api import MAX_CSV_BYTES
from linli.people.models import GENDERS, HOUSEHOLD_ROLES, PROFESSIONS, RESIDENT_TAGS
from linli.people.schemas import BuildingIn, GridIn, ProfessionalIn, ResidentIn, UnitIn

router = page_router()

nav.register(
    nav.NavItem("people", N_("Residents"), "/residents", Perm.PEOPLE_READ),
    nav.NavItem("people", N_("Buildings and units"), "/buildings", Perm.PEOPLE_READ),
    nav.NavItem("people", N_("Grids"), "/grids", Perm.PEOPLE_READ),
    nav.NavItem("people", N_("Professionals"), "/professionals", Perm.COMMUNITY_READ),
)

LABELS: dict[str, str] = {
    "male": N_("male"),
    "female": N_("female"),
    "other": N_("other"),
    "owner": N_("owner"),
    "spouse": N_("spouse"),
    "child": N_("child"),
    "parent": N_("parent"),
    "tenant": N_("tenant"),
    "relative": N_("relative"),
    "elderly": N_("elderly"),
    "lives_alone": N_("lives alone"),
    "disabled": N_("disabled"),
    "needs_care": N_("needs care"),
    "party_member": N_("party member"),
    "volunteer": N_("volunteer"),
    "lawyer": N_("lawyer"),
    "teacher": N_("teacher"),
    "police_officer": N_("police officer"),
    "property_manager": N_("property manager"),
    "doctor": N_("doctor"),
    "social_worker": N_("social worker"),
    "engineer": N_("engineer"),
}


def _import_columns() -> list[tuple[str, str]]:
    """CSV columns with their first Chinese header spelling."""
    out = []
    for col in service.EXPORT_COLUMNS:
        alias = next((n for n in service.COLUMNS[col] if not n.isascii()), "")
        out.append((col, alias))
    return out


def _page(request: Request, s: Session, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.update(
        community=service.get_community(s, ctx),
        labels=LABELS,
        genders=GENDERS,
        household_roles=HOUSEHOLD_ROLES,
        resident_tags=RESIDENT_TAGS,
        professions=PROFESSIONS,
    )
    return render(request, template, extra, status=status)


# -- residents ----------------------------------------------------------------------------


@router.get("/c/{cid}/residents")
def residents_page(
    request: Request,
    q: str = "",
    building_id: str = "",
    tag: str = "",
    offset: int = 0,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> Response:
    bid = int(building_id) if building_id.isdigit() else None
    total, rows = service.search_residents(
        s, ctx, q=q[:100] or None, building_id=bid, tag=tag or None, offset=max(offset, 0), limit=50
    )
    items = service.residents_out(s, ctx, rows, sensitive=False)
    return _page(
        request,
        s,
        ctx,
        "residents.html",
        items=items,
        total=total,
        offset=max(offset, 0),
        limit=50,
        q=q,
        building_id=bid,
        tag=tag,
        buildings=service.list_buildings(s, ctx),
    )


def _resident_form_data(form: Any) -> dict[str, Any]:
    def g(k: str) -> str:
        v = form.get(k)
        return v.strip() if isinstance(v, str) else ""

    return {
        "name": g("name"),
        "unit_id": g("unit_id") or None,
        "phone": g("phone") or None,
        "birth_year": g("birth_year") or None,
        "gender": g("gender") or None,
        "household_role": g("household_role") or None,
        "tags": [str(t) for t in form.getlist("tags")],
        "owner": g("owner") == "on",
        "emergency_contact_name": g("emergency_contact_name") or None,
        "emergency_contact_phone": g("emergency_contact_phone") or None,
        "emergency_contact_relation": g("emergency_contact_relation") or None,
        "notes": g("notes") or None,
    }


def _unit_choices(s: Session, ctx: Ctx) -> list[tuple[int, str]]:
    out = []
    for b in service.list_buildings(s, ctx):
        for u in service.list_units(s, ctx, b.id):
            out.append((u.id, f"{b.name} {u.label}"))
    return out


@router.get("/c/{cid}/residents/new")
def resident_new(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    return _page(
        request,
        s,
        ctx,
        "resident_form.html",
        resident=None,
        form={"tags": []},
        errors={},
        units=_unit_choices(s, ctx),
    )


@router.post("/c/{cid}/residents/new")
async def resident_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    form = _resident_form_data(await request.form())
    try:
        r = service.create_resident(s, ctx, ResidentIn.model_validate(form))
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _page(
            request,
            s,
            ctx,
            "resident_form.html",
            resident=None,
            form=form,
            errors=form_errors(exc),
            units=_unit_choices(s, ctx),
            status=422,
        )
    s.commit()
    flash(request, i18n.gettext("Resident %(name)s saved.", name=r.name))
    return RedirectResponse(f"/c/{ctx.community_id}/residents/{r.id}", status_code=303)


@router.get("/c/{cid}/residents/import")
def residents_import_form(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_IMPORT)),
) -> Response:
    return _page(
        request,
        s,
        ctx,
        "residents_import.html",
        report=None,
        errors={},
        columns=_import_columns(),
    )


@router.post("/c/{cid}/residents/import")
async def residents_import(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_IMPORT)),
) -> Response:
    form = await request.form()
    upload = form.get("file")
    strict = form.get("strict") == "on"
    errors: dict[str, str] = {}
    report = None
    if not isinstance(upload, UploadFile) and not hasattr(upload, "read"):
        errors["file"] = i18n.gettext("Choose a CSV file.")
    else:
        assert upload is not None and not isinstance(upload, str)
        data = await upload.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            errors["file"] = i18n.gettext("The CSV file is larger than 10 MB.")
        elif not data.strip():
            errors["file"] = i18n.gettext("The file is empty.")
        else:
            try:
                report = service.import_residents(s, ctx, data, strict=strict)
                s.commit()
            except AppError as exc:
                s.rollback()
                errors = form_errors(exc)
    return _page(
        request,
        s,
        ctx,
        "residents_import.html",
        report=report,
        errors=errors,
        columns=_import_columns(),
        status=422 if errors else 200,
    )


@router.get("/c/{cid}/residents/export.csv")
def residents_export(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.PEOPLE_READ))
) -> Response:
    body = service.export_residents(s, ctx)
    s.commit()
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="residents.csv"'},
    )


@router.get("/c/{cid}/residents/{resident_id}")
def resident_detail(
    request: Request,
    resident_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> Response:
    r = service.view_resident(s, ctx, resident_id)
    out = service.resident_out(s, ctx, r)
    s.commit()
    form = out.model_dump()
    form["notes"] = r.notes if ctx.can(Perm.PEOPLE_SENSITIVE) else None
    return _page(
        request,
        s,
        ctx,
        "resident_form.html",
        resident=out,
        form=form,
        errors={},
        units=_unit_choices(s, ctx) if ctx.can(Perm.PEOPLE_WRITE) else [],
    )


@router.post("/c/{cid}/residents/{resident_id}")
async def resident_update(
    request: Request,
    resident_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    raw = await request.form()
    if raw.get("action") == "delete":
        service.delete_resident(s, ctx, resident_id)
        s.commit()
        flash(request, i18n.gettext("Resident deleted."))
        return RedirectResponse(f"/c/{ctx.community_id}/residents", status_code=303)
    form = _resident_form_data(raw)
    try:
        r = service.update_resident(s, ctx, resident_id, ResidentIn.model_validate(form))
    except (ValidationError, AppError) as exc:
        s.rollback()
        current = service.resident_out(s, ctx, service.get_resident(s, ctx, resident_id))
        return _page(
            request,
            s,
            ctx,
            "resident_form.html",
            resident=current,
            form=form,
            errors=form_errors(exc),
            units=_unit_choices(s, ctx),
            status=422,
        )
    s.commit()
    flash(request, i18n.gettext("Resident %(name)s saved.", name=r.name))
    return RedirectResponse(f"/c/{ctx.community_id}/residents/{r.id}", status_code=303)


# -- buildings and units -------------------------------------------------------------------


def _buildings_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    buildings = service.list_buildings(s, ctx)
    counts = {b.id: len(service.list_units(s, ctx, b.id)) for b in buildings}
    grids = {g.id: g.name for g in service.list_grids(s, ctx)}
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "buildings.html",
        buildings=buildings,
        unit_counts=counts,
        grids=grids,
        **extra,
    )


@router.get("/c/{cid}/buildings")
def buildings_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> Response:
    return _buildings_page(request, s, ctx)


@router.post("/c/{cid}/buildings")
async def buildings_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("name", "floors", "grid_id")}
    try:
        data = BuildingIn.model_validate(
            {
                "name": form["name"],
                "floors": form["floors"] or 6,
                "grid_id": form["grid_id"] or None,
            }
        )
        service.save_building(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _buildings_page(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/buildings", status_code=303)


def _building_page(
    request: Request, s: Session, ctx: Ctx, building_id: int, **extra: Any
) -> Response:
    b = service.get_building(s, ctx, building_id)
    units = service.list_units(s, ctx, b.id)
    occupants = {u.id: service.unit_residents(s, ctx, u.id) for u in units}
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "building.html",
        building=b,
        units=units,
        occupants=occupants,
        grids=service.list_grids(s, ctx),
        **extra,
    )


@router.get("/c/{cid}/buildings/{building_id}")
def building_page(
    request: Request,
    building_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> Response:
    return _building_page(request, s, ctx, building_id)


@router.post("/c/{cid}/buildings/{building_id}/units")
async def unit_create(
    request: Request,
    building_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("label", "floor", "area_m2")}
    try:
        data = UnitIn.model_validate(
            {
                "building_id": building_id,
                "label": form["label"],
                "floor": form["floor"] or None,
                "area_m2": form["area_m2"] or None,
            }
        )
        service.save_unit(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _building_page(
            request, s, ctx, building_id, errors=form_errors(exc), form=form, status=422
        )
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/buildings/{building_id}", status_code=303)


@router.post("/c/{cid}/buildings/{building_id}")
async def building_update(
    request: Request,
    building_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("name", "floors", "grid_id")}
    b = service.get_building(s, ctx, building_id)
    try:
        data = BuildingIn.model_validate(
            {
                "name": form["name"],
                "floors": form["floors"] or b.floors,
                "grid_id": form["grid_id"] or None,
                "map_x": b.map_x,
                "map_y": b.map_y,
            }
        )
        service.save_building(s, ctx, data, building_id)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _building_page(
            request, s, ctx, building_id, errors=form_errors(exc), form=form, status=422
        )
    s.commit()
    flash(request, i18n.gettext("Building saved."))
    return RedirectResponse(f"/c/{ctx.community_id}/buildings/{building_id}", status_code=303)


# -- grids ------------------------------------------------------------------------------------


def _grid_workers(s: Session, ctx: Ctx) -> list[User]:
    q = (
        select(User)
        .join(RoleGrant, RoleGrant.user_id == User.id)
        .where(RoleGrant.community_id == ctx.community_id, RoleGrant.role == "grid_worker")
        .order_by(User.display_name)
    )
    return list(s.scalars(q))


def _grids_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    grids = service.list_grids(s, ctx)
    buildings = service.list_buildings(s, ctx)
    workers = _grid_workers(s, ctx)
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "grids.html",
        grids=grids,
        buildings=buildings,
        workers=workers,
        worker_names={u.id: u.display_name for u in workers},
        **extra,
    )


@router.get("/c/{cid}/grids")
def grids_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> Response:
    return _grids_page(request, s, ctx)


@router.post("/c/{cid}/grids")
async def grids_save(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.GRIDS_MANAGE)),
) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k) or "").strip() for k in ("grid_id", "name", "worker_user_id")}
    chosen = {int(str(v)) for v in raw.getlist("buildings") if str(v).isdigit()}
    try:
        data = GridIn.model_validate(
            {"name": form["name"], "worker_user_id": form["worker_user_id"] or None}
        )
        gid = int(form["grid_id"]) if form["grid_id"].isdigit() else None
        g = service.save_grid(s, ctx, data, gid)
        for b in service.list_buildings(s, ctx):
            if b.id in chosen and b.grid_id != g.id:
                b.grid_id = g.id
            elif b.id not in chosen and b.grid_id == g.id:
                b.grid_id = None
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _grids_page(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    flash(request, i18n.gettext("Grid saved."))
    return RedirectResponse(f"/c/{ctx.community_id}/grids", status_code=303)


# -- professionals ------------------------------------------------------------------------


def _professionals_page(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    return _page(
        request,
        s,
        ctx,
        "professionals.html",
        items=service.list_professionals(s, ctx),
        can_write=ctx.can(Perm.PEOPLE_WRITE),
        **extra,
    )


@router.get("/c/{cid}/professionals")
def professionals_page(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.COMMUNITY_READ)),
) -> Response:
    return _professionals_page(request, s, ctx)


@router.post("/c/{cid}/professionals")
async def professionals_create(
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    raw = await request.form()
    form = {
        k: str(raw.get(k) or "").strip() for k in ("name", "profession", "organisation", "phone")
    }
    try:
        data = ProfessionalIn.model_validate(
            {k: (v or None) for k, v in form.items()} | {"name": form["name"]}
        )
        service.create_professional(s, ctx, data)
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _professionals_page(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/professionals", status_code=303)
