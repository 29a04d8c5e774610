"""JSON API of vehicle access: /api/v1/communities/{cid}/... (car parks, vehicle gates, the
gate camera's photo -> decision, the guard queue, vehicles, permits, visitor vehicles, the plate
watch list, the vehicle log and parking occupancy)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, get_settings, require
from linli.vehicles import service
from linli.vehicles.schemas import (
    CarParkIn,
    CarParkOut,
    ConfirmIn,
    Decision,
    GateIn,
    GateOut,
    PermitIn,
    PermitOut,
    RejectIn,
    VehicleEventOut,
    VehicleIn,
    VehicleOut,
    VisitorVehicleIn,
    VisitorVehicleOut,
    WatchIn,
    WatchOut,
)

router = api_router(prefix="/api/v1/communities/{cid}", tags=["vehicles"])


def _files(request: Request) -> Any:
    return request.app.state.files


# -- car parks and gates ------------------------------------------------------------------------


@router.get("/car-parks", response_model=list[CarParkOut])
def list_car_parks(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VEHICLES_READ))
) -> list[CarParkOut]:
    return [CarParkOut.model_validate(c) for c in service.list_car_parks(s, ctx)]


@router.post("/car-parks", response_model=CarParkOut, status_code=201)
def create_car_park(
    data: CarParkIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> CarParkOut:
    cp = service.save_car_park(s, ctx, data)
    s.commit()
    return CarParkOut.model_validate(cp)


@router.put("/car-parks/{car_park_id}", response_model=CarParkOut)
def update_car_park(
    car_park_id: int,
    data: CarParkIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> CarParkOut:
    cp = service.save_car_park(s, ctx, data, car_park_id)
    s.commit()
    return CarParkOut.model_validate(cp)


@router.get("/vehicle-gates", response_model=list[GateOut])
def list_gates(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VEHICLES_READ))
) -> list[GateOut]:
    return [GateOut.model_validate(g) for g in service.list_gates(s, ctx)]


@router.post("/vehicle-gates", response_model=GateOut, status_code=201)
def create_gate(
    data: GateIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> GateOut:
    g = service.save_gate(s, ctx, data)
    s.commit()
    return GateOut.model_validate(g)


@router.put("/vehicle-gates/{gate_id}", response_model=GateOut)
def update_gate(
    gate_id: int,
    data: GateIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> GateOut:
    g = service.save_gate(s, ctx, data, gate_id)
    s.commit()
    return GateOut.model_validate(g)


# -- the gate camera ------------------------------------------------------------------------------


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes | None, str | None]:
    """The photo a camera sent — multipart (``image``/``photo``/``frame``) or the raw body
    (``image/jpeg``, ``application/octet-stream``...) — or the reason it cannot be used."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=2, max_fields=10)
        except Exception:
            return None, "unreadable_file"
        up = next((v for k in ("image", "photo", "frame") for v in form.getlist(k)), None)
        if up is None:
            return None, "empty_image"
        if not isinstance(up, StarletteUpload):
            return None, "not_an_image"
        data = await up.read(max_bytes + 1)
    else:
        data = await request.body()
    if len(data) > max_bytes:
        return None, "image_too_large"
    if not data:
        return None, "empty_image"
    return data, None


@router.post("/vehicle-gates/{gate_id}/read", response_model=Decision)
async def gate_read(
    gate_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_DECIDE)),
) -> Decision:
    """A gate camera's photo of a vehicle: the plate is read, the decision made and the
    barrier told to open over MQTT when it may. Doubtful or unreadable photos are queued for
    a guard (``decision: "queued"``). Bad input never opens the barrier and never fails."""
    settings = get_settings(request)
    service.get_gate(s, ctx, gate_id)
    data, reject = await read_upload(request, settings.max_upload_bytes)
    decision, _ev = await run_in_threadpool(
        service.decide, s, ctx, gate_id, data, _files(request), reject=reject
    )
    s.commit()
    return decision


# -- the guard confirmation queue ---------------------------------------------------------------


def _event_out(e: Any) -> VehicleEventOut:
    return VehicleEventOut.model_validate(e).model_copy(
        update={"has_snapshot": e.snapshot_sha256 is not None}
    )


@router.get("/vehicle-queue", response_model=list[VehicleEventOut])
def review_queue(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VEHICLES_READ))
) -> list[VehicleEventOut]:
    return [_event_out(e) for e in service.review_queue(s, ctx)]


@router.post("/vehicle-queue/{event_id}/confirm", response_model=VehicleEventOut)
def confirm(
    event_id: int,
    data: ConfirmIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_CONFIRM)),
) -> VehicleEventOut:
    ev = service.confirm(s, ctx, event_id, data.plate, data.note)
    s.commit()
    return _event_out(ev)


@router.post("/vehicle-queue/{event_id}/reject", response_model=VehicleEventOut)
def reject(
    event_id: int,
    data: RejectIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_CONFIRM)),
) -> VehicleEventOut:
    ev = service.reject(s, ctx, event_id, data.note)
    s.commit()
    return _event_out(ev)


# -- vehicles, permits, visitors ----------------------------------------------------------------


def _vehicles_out(s: Session, ctx: Ctx, rows: list[Any]) -> list[VehicleOut]:
    owners = service.owner_names(s, ctx, rows)
    return [
        VehicleOut.model_validate(v).model_copy(update={"owner": owners.get(v.id)}) for v in rows
    ]


@router.get("/vehicles", response_model=list[VehicleOut])
def list_vehicles(
    q: str | None = None,
    limit: int = 200,
    offset: int = 0,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> list[VehicleOut]:
    rows = service.list_vehicles(s, ctx, q=q, limit=max(1, min(limit, 500)), offset=max(0, offset))
    return _vehicles_out(s, ctx, rows)


@router.get("/vehicles/mine", response_model=list[VehicleOut])
def my_vehicles(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.SELF))
) -> list[VehicleOut]:
    return _vehicles_out(s, ctx, service.my_vehicles(s, ctx))


@router.post("/vehicles", response_model=VehicleOut, status_code=201)
def create_vehicle(
    data: VehicleIn,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> VehicleOut:
    v = service.save_vehicle(s, ctx, data, get_settings(request))
    out = _vehicles_out(s, ctx, [v])[0]
    s.commit()
    return out


@router.put("/vehicles/{vehicle_id}", response_model=VehicleOut)
def update_vehicle(
    vehicle_id: int,
    data: VehicleIn,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> VehicleOut:
    v = service.save_vehicle(s, ctx, data, get_settings(request), vehicle_id)
    out = _vehicles_out(s, ctx, [v])[0]
    s.commit()
    return out


@router.delete("/vehicles/{vehicle_id}", status_code=204)
def delete_vehicle(
    vehicle_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    service.delete_vehicle(s, ctx, vehicle_id)
    s.commit()
    return Response(status_code=204)


@router.get("/vehicle-permits", response_model=list[PermitOut])
def list_permits(
    q: str | None = None,
    current: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> list[PermitOut]:
    return [
        PermitOut.model_validate(p) for p in service.list_permits(s, ctx, q=q, current_only=current)
    ]


@router.post("/vehicle-permits", response_model=PermitOut, status_code=201)
def create_permit(
    data: PermitIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> PermitOut:
    p = service.save_permit(s, ctx, data)
    s.commit()
    return PermitOut.model_validate(p)


@router.put("/vehicle-permits/{permit_id}", response_model=PermitOut)
def update_permit(
    permit_id: int,
    data: PermitIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> PermitOut:
    p = service.save_permit(s, ctx, data, permit_id)
    s.commit()
    return PermitOut.model_validate(p)


@router.delete("/vehicle-permits/{permit_id}", status_code=204)
def revoke_permit(
    permit_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_MANAGE)),
) -> Response:
    service.revoke_permit(s, ctx, permit_id)
    s.commit()
    return Response(status_code=204)


@router.get("/visitor-vehicles", response_model=list[VisitorVehicleOut])
def list_visitor_vehicles(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE))
) -> list[VisitorVehicleOut]:
    return [VisitorVehicleOut.model_validate(v) for v in service.list_visitor_vehicles(s, ctx)]


@router.post("/visitor-vehicles", response_model=VisitorVehicleOut, status_code=201)
def register_visitor_vehicle(
    data: VisitorVehicleIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> VisitorVehicleOut:
    v = service.register_visitor_vehicle(s, ctx, data)
    s.commit()
    return VisitorVehicleOut.model_validate(v)


@router.delete("/visitor-vehicles/{visitor_id}", status_code=204)
def revoke_visitor_vehicle(
    visitor_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    service.revoke_visitor_vehicle(s, ctx, visitor_id)
    s.commit()
    return Response(status_code=204)


# -- the plate watch list (audited) -------------------------------------------------------------


@router.get("/vehicle-watchlist", response_model=list[WatchOut])
def list_watch(
    include_ended: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> list[WatchOut]:
    rows = [
        WatchOut.model_validate(w) for w in service.list_watch(s, ctx, include_ended=include_ended)
    ]
    s.commit()  # the audit entry of the look-up
    return rows


@router.post("/vehicle-watchlist", response_model=WatchOut, status_code=201)
def add_watch(
    data: WatchIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> WatchOut:
    w = service.add_watch(s, ctx, data)
    s.commit()
    return WatchOut.model_validate(w)


@router.delete("/vehicle-watchlist/{watch_id}", status_code=204)
def end_watch(
    watch_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> Response:
    service.end_watch(s, ctx, watch_id)
    s.commit()
    return Response(status_code=204)


# -- log and occupancy --------------------------------------------------------------------------


@router.get("/vehicle-events", response_model=list[VehicleEventOut])
def vehicle_log(
    gate_id: int | None = None,
    plate: str | None = None,
    decision: str | None = None,
    limit: int = 100,
    offset: int = 0,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> list[VehicleEventOut]:
    rows = service.vehicle_log(
        s,
        ctx,
        gate_id=gate_id,
        plate=plate,
        decision=decision,
        limit=max(1, min(limit, 500)),
        offset=max(0, offset),
    )
    out = [_event_out(e) for e in rows]
    s.commit()
    return out


@router.get("/vehicle-events/{event_id}/snapshot")
def vehicle_snapshot(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VEHICLES_READ)),
) -> Response:
    data = service.snapshot(s, ctx, event_id, _files(request))
    s.commit()
    return Response(
        data, media_type=service.media_type(data), headers={"Cache-Control": "no-store"}
    )


@router.get("/parking/occupancy")
def parking_occupancy(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VEHICLES_READ))
) -> dict[str, Any]:
    return service.occupancy(s, ctx)
