"""JSON API of the people registry: /api/v1/communities/{cid}/..."""

from __future__ import annotations

from fastapi import Depends, File, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from linli.core.errors import Forbidden, TooLarge, ValidationFailed
from linli.core.roles import Perm
from linli.core.web import Ctx, Principal, api_router, current_principal, get_session, require
from linli.people import service
from linli.people.schemas import (
    BuildingIn,
    BuildingOut,
    CommunityIn,
    CommunityOut,
    GridIn,
    GridOut,
    ImportReport,
    ProfessionalIn,
    ProfessionalOut,
    ResidentIn,
    ResidentOut,
    ResidentPage,
    UnitIn,
    UnitOut,
)

router = api_router(prefix="/api/v1", tags=["people"])
MAX_CSV_BYTES = 10 * 1024 * 1024


@router.get("/communities", response_model=list[CommunityOut])
def list_communities(
    s: Session = Depends(get_session), p: Principal = Depends(current_principal)
) -> list[CommunityOut]:
    return [CommunityOut.model_validate(c) for c in service.communities_for(s, p)]


@router.post("/communities", response_model=CommunityOut, status_code=201)
def create_community(
    data: CommunityIn, s: Session = Depends(get_session), p: Principal = Depends(current_principal)
) -> CommunityOut:
    if not p.is_platform_admin:
        raise Forbidden("Only platform admins can create communities.", code="permission_denied")
    c = service.create_community(s, p.actor(), data)
    s.commit()
    return CommunityOut.model_validate(c)


@router.get("/communities/{cid}", response_model=CommunityOut)
def get_community(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.COMMUNITY_READ))
) -> CommunityOut:
    return CommunityOut.model_validate(service.get_community(s, ctx))


@router.get("/communities/{cid}/grids", response_model=list[GridOut])
def list_grids(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.PEOPLE_READ))
) -> list[GridOut]:
    return [GridOut.model_validate(g) for g in service.list_grids(s, ctx)]


@router.post("/communities/{cid}/grids", response_model=GridOut, status_code=201)
def create_grid(
    data: GridIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.GRIDS_MANAGE))
) -> GridOut:
    g = service.save_grid(s, ctx, data)
    s.commit()
    return GridOut.model_validate(g)


@router.put("/communities/{cid}/grids/{grid_id}", response_model=GridOut)
def update_grid(
    grid_id: int,
    data: GridIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.GRIDS_MANAGE)),
) -> GridOut:
    g = service.save_grid(s, ctx, data, grid_id)
    s.commit()
    return GridOut.model_validate(g)


@router.get("/communities/{cid}/buildings", response_model=list[BuildingOut])
def list_buildings(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.PEOPLE_READ))
) -> list[BuildingOut]:
    return [BuildingOut.model_validate(b) for b in service.list_buildings(s, ctx)]


@router.post("/communities/{cid}/buildings", response_model=BuildingOut, status_code=201)
def create_building(
    data: BuildingIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> BuildingOut:
    b = service.save_building(s, ctx, data)
    s.commit()
    return BuildingOut.model_validate(b)


@router.put("/communities/{cid}/buildings/{building_id}", response_model=BuildingOut)
def update_building(
    building_id: int,
    data: BuildingIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> BuildingOut:
    b = service.save_building(s, ctx, data, building_id)
    s.commit()
    return BuildingOut.model_validate(b)


@router.get("/communities/{cid}/buildings/{building_id}/units", response_model=list[UnitOut])
def list_units(
    building_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> list[UnitOut]:
    return [UnitOut.model_validate(u) for u in service.list_units(s, ctx, building_id)]


@router.post("/communities/{cid}/units", response_model=UnitOut, status_code=201)
def create_unit(
    data: UnitIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE))
) -> UnitOut:
    u = service.save_unit(s, ctx, data)
    s.commit()
    return UnitOut.model_validate(u)


@router.get("/communities/{cid}/residents", response_model=ResidentPage)
def list_residents(
    q: str | None = Query(default=None, max_length=100),
    building_id: int | None = None,
    tag: str | None = Query(default=None, max_length=30),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=500),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> ResidentPage:
    total, rows = service.search_residents(
        s, ctx, q=q, building_id=building_id, tag=tag, offset=offset, limit=limit
    )
    return ResidentPage(total=total, items=service.residents_out(s, ctx, rows, sensitive=False))


@router.post("/communities/{cid}/residents", response_model=ResidentOut, status_code=201)
def create_resident(
    data: ResidentIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> ResidentOut:
    r = service.create_resident(s, ctx, data)
    out = service.resident_out(s, ctx, r)
    s.commit()
    return out


@router.get("/communities/{cid}/residents/{resident_id}", response_model=ResidentOut)
def get_resident(
    resident_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_READ)),
) -> ResidentOut:
    r = service.view_resident(s, ctx, resident_id)
    out = service.resident_out(s, ctx, r)
    s.commit()  # the audit entry of the view
    return out


@router.put("/communities/{cid}/residents/{resident_id}", response_model=ResidentOut)
def update_resident(
    resident_id: int,
    data: ResidentIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> ResidentOut:
    r = service.update_resident(s, ctx, resident_id, data)
    out = service.resident_out(s, ctx, r)
    s.commit()
    return out


@router.delete("/communities/{cid}/residents/{resident_id}", status_code=204)
def delete_resident(
    resident_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> Response:
    service.delete_resident(s, ctx, resident_id)
    s.commit()
    return Response(status_code=204)


@router.post("/communities/{cid}/residents/import", response_model=ImportReport)
async def import_residents(
    request: Request,
    file: UploadFile = File(...),
    strict: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_IMPORT)),
) -> ImportReport:
    data = await file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise TooLarge("The CSV file is larger than 10 MB.", field="file")
    if not data.strip():
        raise ValidationFailed("The file is empty.", field="file", code="empty_file")
    report = service.import_residents(s, ctx, data, strict=strict)
    s.commit()
    return report


@router.get("/communities/{cid}/residents.csv")
def export_residents(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.PEOPLE_READ))
) -> Response:
    body = service.export_residents(s, ctx)
    s.commit()
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="residents.csv"'},
    )


@router.get("/communities/{cid}/professionals", response_model=list[ProfessionalOut])
def list_professionals(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.COMMUNITY_READ))
) -> list[ProfessionalOut]:
    return [ProfessionalOut.model_validate(p) for p in service.list_professionals(s, ctx)]


@router.post("/communities/{cid}/professionals", response_model=ProfessionalOut, status_code=201)
def create_professional(
    data: ProfessionalIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.PEOPLE_WRITE)),
) -> ProfessionalOut:
    p = service.create_professional(s, ctx, data)
    s.commit()
    return ProfessionalOut.model_validate(p)
