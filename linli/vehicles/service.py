"""Vehicle access logic: car parks and vehicle gates, resident vehicles (a plate is a
``plate`` credential of the person's access identity), visitor vehicles, parking permits, the
plate watch list, the barrier decision with the guard confirmation queue, the entry/exit log,
parking occupancy, overstaying visitors and snapshot retention.

The rule of the barrier: it opens on a plate read at or above the gate's auto-open confidence
that belongs to a resident, a permit holder or a visitor in their window (and for any such
read on the way out), or on a guard's confirmation of the plate. Everything else — no plate, an
unreadable or doubtful plate, a watch-list plate, a stranger at an entrance that queues them —
waits for a guard with the snapshot. A guessed plate never opens the barrier.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.config import Settings
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.files import FileStore, expire_media
from linli.core.i18n import N_, gettext
from linli.core.roles import Perm
from linli.core.web import Ctx, system_ctx
from linli.vehicles.models import (
    CarPark,
    Permit,
    Presence,
    Vehicle,
    VehicleEvent,
    VehicleGate,
    VisitorVehicle,
    WatchEntry,
)
from linli.vehicles.plates import display_plate, normalise_plate
from linli.vehicles.schemas import (
    CarParkIn,
    Decision,
    GateIn,
    PermitIn,
    VehicleIn,
    VisitorVehicleIn,
    WatchIn,
)

log = logging.getLogger(__name__)

#: Why the barrier did what it did (machine code -> English msgid).
VEHICLE_REASONS: dict[str, str] = {
    "resident": N_("Resident vehicle"),
    "permit": N_("Parking permit holder"),
    "visitor": N_("Visitor vehicle in its time window"),
    "exit": N_("Vehicle leaving"),
    "temporary_parking": N_("Unregistered vehicle let in for temporary parking"),
    "unknown_vehicle": N_("Unknown vehicle"),
    "visitor_outside_window": N_("Visitor vehicle outside its time window"),
    "visitors_not_here": N_("Visitors do not enter through this gate"),
    "identity_inactive": N_("The owner's access is suspended"),
    "vehicle_inactive": N_("This vehicle is deactivated"),
    "watchlist": N_("Plate on the watch list: a guard must decide"),
    "low_confidence": N_("Plate read with low confidence: a guard must confirm it"),
    "gate_disabled": N_("This gate is closed"),
    "confirmed_by_guard": N_("Confirmed by a guard"),
    "rejected_by_guard": N_("Rejected by a guard"),
    "review_expired": N_("Nobody confirmed it in time"),
    "review_superseded": N_("Replaced by a newer photo of the same car"),
    "no_plate": N_("No licence plate found in the image"),
    "unrecognised": N_("Something that looks like a plate was found but it could not be read"),
    "read_failed": N_("The plate reader failed on this image"),
    "models_missing": N_("The plate-reading models are not installed"),
}

CATEGORY_LABELS: dict[str, str] = {
    "resident": N_("resident"),
    "permit": N_("permit holder"),
    "visitor": N_("visitor"),
    "watchlist": N_("watch list"),
    "unknown": N_("unknown"),
    "unrecognised": N_("unrecognised"),
}

#: a visitor still inside this long after the end of their window raises an alarm
OVERSTAY_GRACE = timedelta(minutes=15)
#: a photo nobody looked at for this long leaves the queue (the car has gone)
REVIEW_TTL = timedelta(minutes=30)
#: a newer photo of the same plate at the same gate within this time replaces a waiting one
SUPERSEDE_WITHIN = timedelta(minutes=2)
MAX_VISITOR_WINDOW = timedelta(days=7)
MAX_WATCH = timedelta(days=366)
BARRIER_PROFILE = "vehicle_barrier"
BARRIER_TIMEOUT_S = 5
SYSTEM = audit.Actor.system("vehicles")


def reason_message(code: str) -> str:
    from linli.vision.plates import REASONS

    text = VEHICLE_REASONS.get(code) or REASONS.get(code) or code
    return gettext(text)


def _utc(value: datetime, tz: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def _manager_ctx(ctx: Ctx) -> Ctx:
    """A context with every permission acting in the caller's name, for the parts of another
    domain that the vehicles permission already covers (the plate credential, the barrier
    device)."""
    return system_ctx(ctx.community_id, ctx.actor.name, ctx.timezone)


# -- car parks ---------------------------------------------------------------------------------


def list_car_parks(s: Session, ctx: Ctx) -> list[CarPark]:
    ctx.require(Perm.VEHICLES_READ)
    return list(
        s.scalars(
            select(CarPark).where(CarPark.community_id == ctx.community_id).order_by(CarPark.name)
        )
    )


def get_car_park(s: Session, ctx: Ctx, car_park_id: int) -> CarPark:
    cp = s.get(CarPark, car_park_id)
    if cp is None or cp.community_id != ctx.community_id:
        raise NotFound("Car park not found.", field="car_park_id", code="car_park_not_found")
    return cp


def save_car_park(s: Session, ctx: Ctx, data: CarParkIn, car_park_id: int | None = None) -> CarPark:
    ctx.require(Perm.VEHICLES_MANAGE)
    dup = select(CarPark.id).where(
        CarPark.community_id == ctx.community_id, CarPark.name == data.name
    )
    if car_park_id is not None:
        dup = dup.where(CarPark.id != car_park_id)
    if s.scalar(dup) is not None:
        raise Conflict("A car park with this name already exists.", field="name")
    cp = (
        CarPark(community_id=ctx.community_id)
        if car_park_id is None
        else get_car_park(s, ctx, car_park_id)
    )
    cp.name, cp.capacity = data.name, data.capacity
    s.add(cp)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.car_park.saved",
        "vehicle_car_park",
        cp.id,
        community_id=ctx.community_id,
        details={"name": cp.name, "capacity": cp.capacity},
    )
    return cp


# -- gates -------------------------------------------------------------------------------------


def list_gates(s: Session, ctx: Ctx) -> list[VehicleGate]:
    ctx.require(Perm.VEHICLES_READ)
    return list(
        s.scalars(
            select(VehicleGate)
            .where(VehicleGate.community_id == ctx.community_id)
            .order_by(VehicleGate.name)
        )
    )


def get_gate(s: Session, ctx: Ctx, gate_id: int) -> VehicleGate:
    g = s.get(VehicleGate, gate_id)
    if g is None or g.community_id != ctx.community_id:
        raise NotFound("Vehicle gate not found.", code="gate_not_found")
    return g


def save_gate(s: Session, ctx: Ctx, data: GateIn, gate_id: int | None = None) -> VehicleGate:
    ctx.require(Perm.VEHICLES_MANAGE)
    if data.device_id is not None:
        from linli.iot.models import Device

        d = s.get(Device, data.device_id)
        if d is None or d.community_id != ctx.community_id:
            raise NotFound("Device not found.", field="device_id", code="device_not_found")
    if data.car_park_id is not None:
        get_car_park(s, ctx, data.car_park_id)
    dup = select(VehicleGate.id).where(
        VehicleGate.community_id == ctx.community_id, VehicleGate.name == data.name
    )
    if gate_id is not None:
        dup = dup.where(VehicleGate.id != gate_id)
    if s.scalar(dup) is not None:
        raise Conflict("A gate with this name already exists.", field="name")
    g = VehicleGate(community_id=ctx.community_id) if gate_id is None else get_gate(s, ctx, gate_id)
    for k, v in data.model_dump().items():
        setattr(g, k, v)
    s.add(g)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.gate.saved",
        "vehicle_gate",
        g.id,
        community_id=ctx.community_id,
        details=data.model_dump(),
    )
    return g


def ensure_barrier_device(s: Session, ctx: Ctx, gate: VehicleGate) -> Any:
    """Give a gate a barrier device (community profile ``vehicle_barrier``) if it has none.
    Returns the device and, for a new one, its MQTT secret (shown once)."""
    from linli.iot import service as iot
    from linli.iot.models import Device

    ctx.require(Perm.VEHICLES_MANAGE)
    if gate.device_id is not None:
        return s.get(Device, gate.device_id), None
    mctx = _manager_ctx(ctx)
    try:
        profile = iot.profile_by_key(s, mctx, BARRIER_PROFILE)
    except NotFound:
        profile = iot.save_profile(
            s,
            mctx,
            key=BARRIER_PROFILE,
            name="Vehicle barrier",
            name_zh="车辆道闸",
            category="security",
            metrics=[
                {"key": "open", "unit": "", "kind": "bool"},
                {"key": "rssi", "unit": "dBm", "kind": "number"},
                {"key": "uptime", "unit": "s", "kind": "number"},
            ],
            report_interval_s=600,
        )
    d, secret = iot.create_device(
        s, mctx, name=gate.name, profile_id=profile.id, location=gate.name
    )
    gate.device_id = d.id
    s.flush()
    return d, secret


# -- resident vehicles -------------------------------------------------------------------------


def _vehicle_query(ctx: Ctx) -> Any:
    return select(Vehicle).where(Vehicle.community_id == ctx.community_id)


def list_vehicles(
    s: Session, ctx: Ctx, q: str | None = None, limit: int = 200, offset: int = 0
) -> list[Vehicle]:
    ctx.require(Perm.VEHICLES_READ)
    query = _vehicle_query(ctx)
    if q:
        needle = normalise_plate(q)[:20]
        from linli.access.models import Identity

        ids = select(Identity.id).where(
            Identity.community_id == ctx.community_id, Identity.name.contains(q[:50])
        )
        query = query.where(
            or_(
                Vehicle.plate.contains(needle),
                Vehicle.identity_id.in_(ids),
                Vehicle.description.contains(q[:50]),
            )
        )
    return list(s.scalars(query.order_by(Vehicle.plate).offset(offset).limit(limit)))


def get_vehicle(s: Session, ctx: Ctx, vehicle_id: int) -> Vehicle:
    v = s.get(Vehicle, vehicle_id)
    if v is None or v.community_id != ctx.community_id:
        raise NotFound("Vehicle not found.", code="vehicle_not_found")
    if not ctx.can(Perm.VEHICLES_READ) and v not in my_vehicles(s, ctx):
        raise NotFound("Vehicle not found.", code="vehicle_not_found")
    return v


def vehicle_by_plate(s: Session, community_id: int, plate: str) -> Vehicle | None:
    return s.scalar(
        select(Vehicle).where(Vehicle.community_id == community_id, Vehicle.plate == plate)
    )


def owner_names(s: Session, ctx: Ctx, vehicles: list[Vehicle]) -> dict[int, str]:
    """vehicle id -> the owner's name (the person, else the household's unit)."""
    from linli.access import service as access
    from linli.people.models import Household, Unit

    names = access.names_of(s, ctx, {v.identity_id for v in vehicles if v.identity_id})
    hh_ids = {v.household_id for v in vehicles if v.household_id and not v.identity_id}
    units: dict[int, str] = {}
    if hh_ids:
        for hid, label, hname in s.execute(
            select(Household.id, Unit.label, Household.name)
            .join(Unit, Unit.id == Household.unit_id)
            .where(Household.id.in_(hh_ids), Household.community_id == ctx.community_id)
        ):
            units[int(hid)] = str(hname or label)
    out: dict[int, str] = {}
    for v in vehicles:
        if v.identity_id and v.identity_id in names:
            out[v.id] = names[v.identity_id]
        elif v.household_id and v.household_id in units:
            out[v.id] = units[v.household_id]
    return out


def _check_household(s: Session, ctx: Ctx, household_id: int) -> None:
    from linli.people.models import Household

    h = s.get(Household, household_id)
    if h is None or h.community_id != ctx.community_id:
        raise NotFound("Household not found.", field="household_id", code="household_not_found")


def save_vehicle(
    s: Session, ctx: Ctx, data: VehicleIn, settings: Settings, vehicle_id: int | None = None
) -> Vehicle:
    """Register or change a resident vehicle. Bound to a person (a resident, or any access
    identity) its plate becomes a ``plate`` credential of that identity; bound to a household
    only, it has no credential but passes all the same."""
    from linli.access import service as access
    from linli.access.schemas import CredentialIn

    ctx.require(Perm.VEHICLES_MANAGE)
    mctx = _manager_ctx(ctx)
    identity_id, household_id = data.identity_id, data.household_id
    if data.resident_id is not None:
        from linli.people import service as people

        r = people.get_resident(s, ctx, data.resident_id)
        identity_id = access.identity_for_resident(s, mctx, r.id).id
        household_id = household_id or r.household_id
    elif identity_id is not None:
        access.get_identity(s, mctx, identity_id)
    if household_id is not None:
        _check_household(s, ctx, household_id)
    if identity_id is None and household_id is None:
        raise ValidationFailed(
            "Give the resident, person or household the vehicle belongs to.",
            field="resident_id",
            code="owner_required",
        )
    dup = select(Vehicle.id).where(
        Vehicle.community_id == ctx.community_id, Vehicle.plate == data.plate
    )
    if vehicle_id is not None:
        dup = dup.where(Vehicle.id != vehicle_id)
    if s.scalar(dup) is not None:
        raise Conflict("A vehicle with this plate is already registered.", field="plate")
    v = (
        Vehicle(community_id=ctx.community_id)
        if vehicle_id is None
        else get_vehicle(s, ctx, vehicle_id)
    )
    old = (v.identity_id, v.plate, v.active, v.credential_id)
    v.plate, v.identity_id, v.household_id = data.plate, identity_id, household_id
    v.color, v.description, v.note, v.active = (
        data.color or None,
        data.description or None,
        data.note or None,
        data.active,
    )
    v.updated_at = utcnow()
    s.add(v)
    s.flush()
    want_credential = v.active and v.identity_id is not None
    if old[3] is not None and (
        old[:3] != (v.identity_id, v.plate, v.active) or not want_credential
    ):
        if old[0] is not None:
            with contextlib.suppress(NotFound):
                access.remove_credential(s, mctx, old[0], old[3])
        v.credential_id = None
    if want_credential and v.credential_id is None:
        assert v.identity_id is not None
        try:
            c = access.add_credential(
                s, mctx, v.identity_id, CredentialIn(kind="plate", value=v.plate), settings
            )
        except Conflict as exc:
            raise Conflict(
                "This plate is already a credential of another person.",
                field="plate",
                code="plate_in_use",
            ) from exc
        v.credential_id = c.id
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.vehicle.saved",
        "vehicle",
        v.id,
        community_id=ctx.community_id,
        details={"plate": v.plate, "identity_id": v.identity_id, "active": v.active},
    )
    return v


def delete_vehicle(s: Session, ctx: Ctx, vehicle_id: int) -> None:
    from linli.access import service as access

    ctx.require(Perm.VEHICLES_MANAGE)
    v = get_vehicle(s, ctx, vehicle_id)
    if v.credential_id is not None and v.identity_id is not None:
        with contextlib.suppress(NotFound):
            access.remove_credential(s, _manager_ctx(ctx), v.identity_id, v.credential_id)
    audit.record(
        s,
        ctx.actor,
        "vehicles.vehicle.deleted",
        "vehicle",
        v.id,
        community_id=ctx.community_id,
        details={"plate": v.plate},
    )
    s.delete(v)
    s.flush()


def my_vehicles(s: Session, ctx: Ctx) -> list[Vehicle]:
    """The caller's own vehicles: bound to their identity or to their household."""
    from linli.access.models import Identity
    from linli.people import service as people

    r = people.own_resident(s, ctx)
    if r is None:
        return []
    ids = select(Identity.id).where(
        Identity.community_id == ctx.community_id, Identity.resident_id == r.id
    )
    cond: Any = Vehicle.identity_id.in_(ids)
    if r.household_id is not None:
        cond = or_(cond, Vehicle.household_id == r.household_id)
    return list(s.scalars(_vehicle_query(ctx).where(cond).order_by(Vehicle.plate)))


# -- permits -----------------------------------------------------------------------------------


def list_permits(
    s: Session,
    ctx: Ctx,
    *,
    q: str | None = None,
    current_only: bool = False,
    now: datetime | None = None,
    limit: int = 300,
) -> list[Permit]:
    ctx.require(Perm.VEHICLES_READ)
    now = now or utcnow()
    query = select(Permit).where(Permit.community_id == ctx.community_id)
    if q:
        query = query.where(
            or_(Permit.plate.contains(normalise_plate(q)[:20]), Permit.holder.contains(q[:50]))
        )
    if current_only:
        query = query.where(
            Permit.revoked_at.is_(None),
            or_(Permit.valid_until.is_(None), Permit.valid_until > now),
        )
    return list(s.scalars(query.order_by(Permit.id.desc()).limit(limit)))


def get_permit(s: Session, ctx: Ctx, permit_id: int) -> Permit:
    ctx.require(Perm.VEHICLES_READ)
    p = s.get(Permit, permit_id)
    if p is None or p.community_id != ctx.community_id:
        raise NotFound("Permit not found.", code="permit_not_found")
    return p


def save_permit(
    s: Session,
    ctx: Ctx,
    data: PermitIn,
    permit_id: int | None = None,
    now: datetime | None = None,
) -> Permit:
    ctx.require(Perm.VEHICLES_MANAGE)
    now = now or utcnow()
    vf = _utc(data.valid_from, ctx.timezone) if data.valid_from else now
    vu = _utc(data.valid_until, ctx.timezone) if data.valid_until else None
    if data.kind == "temporary" and vu is None:
        raise ValidationFailed("A temporary permit needs an end.", field="valid_until")
    if vu is not None and vu <= vf:
        raise ValidationFailed("The end must be after the start.", field="valid_until")
    if data.car_park_id is not None:
        get_car_park(s, ctx, data.car_park_id)
    p = (
        Permit(community_id=ctx.community_id)
        if permit_id is None
        else get_permit(s, ctx, permit_id)
    )
    if permit_id is None:
        p.created_by = ctx.actor.name
    v = vehicle_by_plate(s, ctx.community_id, data.plate)
    p.plate, p.vehicle_id, p.kind = data.plate, v.id if v else None, data.kind
    p.holder, p.car_park_id = data.holder or None, data.car_park_id
    p.spot, p.fee_type, p.note = data.spot or None, data.fee_type or None, data.note or None
    p.valid_from, p.valid_until = vf, vu
    s.add(p)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.permit.saved",
        "vehicle_permit",
        p.id,
        community_id=ctx.community_id,
        details={"plate": p.plate, "kind": p.kind},
    )
    return p


def revoke_permit(s: Session, ctx: Ctx, permit_id: int) -> Permit:
    ctx.require(Perm.VEHICLES_MANAGE)
    p = get_permit(s, ctx, permit_id)
    if p.revoked_at is None:
        p.revoked_at = utcnow()
        audit.record(
            s,
            ctx.actor,
            "vehicles.permit.revoked",
            "vehicle_permit",
            p.id,
            community_id=ctx.community_id,
        )
    return p


def permit_status(p: Permit, now: datetime | None = None) -> str:
    now = now or utcnow()
    if p.revoked_at is not None:
        return "revoked"
    if now < p.valid_from:
        return "future"
    if p.valid_until is not None and now >= p.valid_until:
        return "expired"
    return "valid"


def valid_permit(
    s: Session, community_id: int, plate: str, now: datetime, car_park_id: int | None
) -> Permit | None:
    q = select(Permit).where(
        Permit.community_id == community_id,
        Permit.plate == plate,
        Permit.revoked_at.is_(None),
        Permit.valid_from <= now,
        or_(Permit.valid_until.is_(None), Permit.valid_until > now),
    )
    if car_park_id is not None:
        q = q.where(or_(Permit.car_park_id.is_(None), Permit.car_park_id == car_park_id))
    return s.scalar(q.order_by(Permit.id.desc()).limit(1))


# -- visitor vehicles --------------------------------------------------------------------------


def register_visitor_vehicle(
    s: Session, ctx: Ctx, data: VisitorVehicleIn, now: datetime | None = None
) -> VisitorVehicle:
    """A resident registers a visitor's car for a window (staff may name any host)."""
    ctx.require(Perm.VISITORS_MANAGE)
    from linli.people import service as people

    now = now or utcnow()
    host_id = data.host_resident_id
    if not (ctx.can(Perm.VEHICLES_MANAGE) or ctx.can(Perm.ACCESS_MANAGE)):
        own = people.own_resident(s, ctx)
        if own is None:
            raise Forbidden(
                "Only residents linked to the registry can register visitors.",
                code="no_resident_record",
            )
        host_id = own.id
    elif host_id is not None:
        people.get_resident(s, ctx, host_id)
    vf, vu = _utc(data.valid_from, ctx.timezone), _utc(data.valid_until, ctx.timezone)
    if vu <= vf:
        raise ValidationFailed("The end must be after the start.", field="valid_until")
    if vu - vf > MAX_VISITOR_WINDOW:
        raise ValidationFailed(
            "A visitor's car is registered for 7 days at most; longer stays need a permit.",
            field="valid_until",
        )
    if vu <= now:
        raise ValidationFailed("The end is in the past.", field="valid_until")
    v = VisitorVehicle(
        community_id=ctx.community_id,
        plate=data.plate,
        visitor_name=data.visitor_name or None,
        phone=data.phone or None,
        purpose=data.purpose or None,
        host_resident_id=host_id,
        created_by=ctx.user_id,
        valid_from=vf,
        valid_until=vu,
    )
    s.add(v)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.visitor.registered",
        "vehicle_visitor",
        v.id,
        community_id=ctx.community_id,
        details={"plate": v.plate, "host_resident_id": host_id},
    )
    events.emit(
        s,
        "vehicles.visitor.registered",
        {"visitor_id": v.id, "plate": v.plate, "host_resident_id": host_id},
        community_id=ctx.community_id,
    )
    return v


def list_visitor_vehicles(
    s: Session,
    ctx: Ctx,
    *,
    own_only: bool = False,
    current_on: datetime | None = None,
    limit: int = 200,
) -> list[VisitorVehicle]:
    if not ctx.can(Perm.VEHICLES_READ):
        ctx.require(Perm.VISITORS_MANAGE)
    q = select(VisitorVehicle).where(VisitorVehicle.community_id == ctx.community_id)
    if own_only or not ctx.can(Perm.VEHICLES_READ):
        from linli.people import service as people

        own = people.own_resident(s, ctx)
        q = q.where(
            or_(
                VisitorVehicle.created_by == (ctx.user_id or -1),
                VisitorVehicle.host_resident_id == (own.id if own else -1),
            )
        )
    if current_on is not None:
        q = q.where(
            VisitorVehicle.revoked_at.is_(None),
            VisitorVehicle.valid_until > current_on,
            VisitorVehicle.valid_from < current_on + timedelta(days=1),
        )
    return list(s.scalars(q.order_by(VisitorVehicle.valid_from.desc()).limit(limit)))


def get_visitor_vehicle(s: Session, ctx: Ctx, visitor_id: int) -> VisitorVehicle:
    v = s.get(VisitorVehicle, visitor_id)
    if v is None or v.community_id != ctx.community_id:
        raise NotFound("Visitor vehicle not found.", code="visitor_not_found")
    if not ctx.can(Perm.VEHICLES_MANAGE) and v not in list_visitor_vehicles(s, ctx, own_only=True):
        raise NotFound("Visitor vehicle not found.", code="visitor_not_found")
    return v


def revoke_visitor_vehicle(s: Session, ctx: Ctx, visitor_id: int) -> VisitorVehicle:
    v = get_visitor_vehicle(s, ctx, visitor_id)
    if v.revoked_at is None:
        v.revoked_at = utcnow()
        audit.record(
            s,
            ctx.actor,
            "vehicles.visitor.revoked",
            "vehicle_visitor",
            v.id,
            community_id=ctx.community_id,
        )
    return v


def visitor_in_window(
    s: Session, community_id: int, plate: str, now: datetime
) -> VisitorVehicle | None:
    return s.scalar(
        select(VisitorVehicle)
        .where(
            VisitorVehicle.community_id == community_id,
            VisitorVehicle.plate == plate,
            VisitorVehicle.revoked_at.is_(None),
            VisitorVehicle.valid_from <= now,
            VisitorVehicle.valid_until > now,
        )
        .order_by(VisitorVehicle.valid_until.desc())
        .limit(1)
    )


def _visitor_any(s: Session, community_id: int, plate: str) -> VisitorVehicle | None:
    return s.scalar(
        select(VisitorVehicle)
        .where(
            VisitorVehicle.community_id == community_id,
            VisitorVehicle.plate == plate,
            VisitorVehicle.revoked_at.is_(None),
        )
        .order_by(VisitorVehicle.valid_until.desc())
        .limit(1)
    )


def visitor_status(v: VisitorVehicle, now: datetime | None = None) -> str:
    now = now or utcnow()
    if v.revoked_at is not None:
        return "cancelled"
    if v.entered_at is not None and v.exited_at is None:
        return "overstaying" if now > v.valid_until else "inside"
    if v.exited_at is not None:
        return "left"
    if now >= v.valid_until:
        return "expired"
    return "expected"


# -- the plate watch list (audited) ------------------------------------------------------------


def add_watch(s: Session, ctx: Ctx, data: WatchIn, now: datetime | None = None) -> WatchEntry:
    ctx.require(Perm.WATCHLIST_MANAGE)
    now = now or utcnow()
    until = _utc(data.expires_at, ctx.timezone)
    if until <= now:
        raise ValidationFailed("The expiry is in the past.", field="expires_at")
    if until - now > MAX_WATCH:
        raise ValidationFailed(
            "A watch-list entry lasts one year at most; renew it if still needed.",
            field="expires_at",
        )
    w = WatchEntry(
        community_id=ctx.community_id,
        plate=data.plate,
        reason=data.reason,
        authorised_by=data.authorised_by,
        severity=data.severity,
        created_by=ctx.actor.name,
        expires_at=until,
        matches=0,
    )
    s.add(w)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "vehicles.watchlist.added",
        "vehicle_watch",
        w.id,
        community_id=ctx.community_id,
        details={
            "plate": w.plate,
            "reason": w.reason,
            "authorised_by": w.authorised_by,
            "expires_at": until.isoformat(),
        },
    )
    return w


def list_watch(
    s: Session, ctx: Ctx, *, include_ended: bool = False, now: datetime | None = None
) -> list[WatchEntry]:
    """The watch list. Every look-up is written to the audit log."""
    ctx.require(Perm.WATCHLIST_READ)
    now = now or utcnow()
    q = select(WatchEntry).where(WatchEntry.community_id == ctx.community_id)
    if not include_ended:
        q = q.where(WatchEntry.ended_at.is_(None), WatchEntry.expires_at > now)
    rows = list(s.scalars(q.order_by(WatchEntry.id.desc()).limit(500)))
    audit.record(
        s,
        ctx.actor,
        "vehicles.watchlist.viewed",
        "vehicle_watchlist",
        None,
        community_id=ctx.community_id,
        details={"rows": len(rows), "include_ended": include_ended},
    )
    return rows


def end_watch(s: Session, ctx: Ctx, watch_id: int) -> WatchEntry:
    ctx.require(Perm.WATCHLIST_MANAGE)
    w = s.get(WatchEntry, watch_id)
    if w is None or w.community_id != ctx.community_id:
        raise NotFound("Watch-list entry not found.", code="watch_not_found")
    if w.ended_at is None:
        w.ended_at, w.ended_by = utcnow(), ctx.actor.name
        audit.record(
            s,
            ctx.actor,
            "vehicles.watchlist.ended",
            "vehicle_watch",
            w.id,
            community_id=ctx.community_id,
            details={"plate": w.plate},
        )
    return w


def active_watch(s: Session, community_id: int, plate: str, now: datetime) -> WatchEntry | None:
    return s.scalar(
        select(WatchEntry)
        .where(
            WatchEntry.community_id == community_id,
            WatchEntry.plate == plate,
            WatchEntry.ended_at.is_(None),
            WatchEntry.expires_at > now,
        )
        .order_by(WatchEntry.id.desc())
        .limit(1)
    )


def _watch_match(
    s: Session, w: WatchEntry, ev: VehicleEvent, gate: VehicleGate, now: datetime
) -> None:
    """A watch-list plate at a gate: counted, audited, an alarm for the guards."""
    from linli.iot import service as iot

    w.matches = (w.matches or 0) + 1
    w.last_match_at = now
    audit.record(
        s,
        SYSTEM,
        "vehicles.watchlist.matched",
        "vehicle_watch",
        w.id,
        community_id=w.community_id,
        details={"plate": w.plate, "gate_id": gate.id, "vehicle_event_id": ev.id},
    )
    iot.raise_alarm(
        s,
        community_id=w.community_id,
        dedup_key=f"vehicles.watchlist.{w.id}",
        kind="vehicles.watchlist",
        severity=w.severity,
        message=N_("Watch-list plate %(plate)s at %(gate)s (vehicle log #%(event)s)"),
        params={"plate": display_plate(w.plate), "gate": gate.name, "event": ev.id},
        source="vehicles",
        at=now,
        details={
            "watch_id": w.id,
            "vehicle_event_id": ev.id,
            "gate_id": gate.id,
            "snapshot_sha256": ev.snapshot_sha256,
            "snapshot": f"/c/{w.community_id}/vehicles/log/{ev.id}/snapshot",
        },
    )


# -- identification and the barrier decision ---------------------------------------------------


@dataclass
class Identified:
    category: str
    reason: str
    vehicle: Vehicle | None = None
    identity_id: int | None = None
    permit: Permit | None = None
    visitor: VisitorVehicle | None = None

    @property
    def known(self) -> bool:
        return self.category in ("resident", "permit", "visitor")


def identify(s: Session, gate: VehicleGate, plate: str, now: datetime) -> Identified:
    """Who a plate belongs to, for this gate now (watch list apart)."""
    from linli.access import service as access

    cid = gate.community_id
    v = vehicle_by_plate(s, cid, plate)
    if v is not None:
        if not v.active:
            return Identified("unknown", "vehicle_inactive", vehicle=v)
        if v.identity_id is not None:
            from linli.access.models import Identity

            ident = s.get(Identity, v.identity_id)
            if ident is not None and not ident.active:
                return Identified("resident", "identity_inactive", vehicle=v, identity_id=ident.id)
        return Identified("resident", "resident", vehicle=v, identity_id=v.identity_id)
    ident = access.identity_for_plate(s, cid, plate)
    if ident is not None:
        if not ident.active:
            return Identified("resident", "identity_inactive", identity_id=ident.id)
        return Identified("resident", "resident", identity_id=ident.id)
    p = valid_permit(s, cid, plate, now, gate.car_park_id)
    if p is not None:
        return Identified("permit", "permit", permit=p)
    vv = visitor_in_window(s, cid, plate, now)
    if vv is not None:
        if not gate.visitors_allowed and gate.direction == "in":
            return Identified("visitor", "visitors_not_here", visitor=vv)
        return Identified("visitor", "visitor", visitor=vv)
    vv = _visitor_any(s, cid, plate)
    if vv is not None:
        return Identified("visitor", "visitor_outside_window", visitor=vv)
    return Identified("unknown", "unknown_vehicle")


def _open_barrier(s: Session, gate: VehicleGate, ev: VehicleEvent) -> None:
    """The barrier-open command over MQTT (acknowledgement and timeout tracked by iot)."""
    if gate.device_id is None:
        return
    from linli.iot import service as iot
    from linli.iot.models import Device

    d = s.get(Device, gate.device_id)
    if d is None or not d.enabled:
        return
    cmd = iot.issue_command(
        s,
        d,
        "open",
        {"direction": ev.direction, "vehicle_event_id": ev.id, "plate": ev.plate},
        SYSTEM,
        timeout_s=BARRIER_TIMEOUT_S,
    )
    ev.command_id = cmd.id


def _record_passage(
    s: Session, gate: VehicleGate, ev: VehicleEvent, who: Identified, now: datetime
) -> None:
    """An opened barrier: who is inside the car park now."""
    from linli.iot import service as iot

    assert ev.plate is not None
    open_rows = list(
        s.scalars(
            select(Presence).where(
                Presence.community_id == gate.community_id,
                Presence.plate == ev.plate,
                Presence.exited_at.is_(None),
            )
        )
    )
    for p in open_rows:  # an exit the cameras missed, or this exit
        p.exited_at = now
        p.exit_event_id = ev.id if ev.direction == "out" else None
        if p.visitor_id is not None:
            vv = s.get(VisitorVehicle, p.visitor_id)
            if vv is not None:
                vv.exited_at = now
            iot.clear_alarm_by_key(
                s, gate.community_id, f"vehicles.overstay.{p.id}", "vehicles", now
            )
    if ev.direction == "in":
        if who.visitor is not None:
            who.visitor.entered_at = now
            who.visitor.exited_at = None
        s.add(
            Presence(
                community_id=gate.community_id,
                car_park_id=gate.car_park_id,
                plate=ev.plate,
                category=ev.category if ev.category != "watchlist" else who.category,
                visitor_id=who.visitor.id if who.visitor is not None else None,
                entered_at=now,
                entry_event_id=ev.id,
                overstay_alarmed=False,
            )
        )
    s.flush()


def _emit(s: Session, ev: VehicleEvent) -> None:
    ev.event_id = events.emit(
        s,
        f"vehicles.passage.{ev.decision}",
        {
            "vehicle_event_id": ev.id,
            "gate_id": ev.gate_id,
            "direction": ev.direction,
            "plate": ev.plate,
            "read_plate": ev.read_plate,
            "category": ev.category,
            "reason": ev.reason,
            "review_status": ev.review_status,
        },
        community_id=ev.community_id,
    )


def decision_out(ev: VehicleEvent) -> Decision:
    return Decision(
        event_id=ev.id,
        gate_id=ev.gate_id or 0,
        direction=ev.direction,
        decision=ev.decision,
        category=ev.category,
        reason=ev.reason,
        message=reason_message(ev.reason),
        plate=ev.plate,
        read_plate=ev.read_plate,
        confidence=ev.confidence,
        color=ev.plate_color,
        read_status=ev.read_status,
        command_id=ev.command_id,
        elapsed_ms=round(ev.elapsed_ms or 0.0, 1),
    )


def decide(
    s: Session,
    ctx: Ctx,
    gate_id: int,
    image: bytes | None,
    files: FileStore | None,
    *,
    reject: str | None = None,
    now: datetime | None = None,
    reader: Any = None,
) -> tuple[Decision, VehicleEvent]:
    """A photo from the gate camera -> plate -> decision -> barrier command. Bad input (no
    plate, unreadable, not an image...) is an "unrecognised" event queued for a guard with
    the snapshot, never an exception and never an open barrier."""
    from linli.vision.plates import PlateModelMissing, get_reader

    t0 = time.perf_counter()
    now = now or utcnow()
    gate = get_gate(s, ctx, gate_id)
    status, best, decoded = reject or "no_plate", None, False
    if reject is None and image:
        try:
            result = (reader or get_reader()).read(image)
            status = result.status
            decoded = result.ok
            best = result.plates[0] if result.plates else None
        except PlateModelMissing:
            log.exception("plate models missing")
            status = "models_missing"
    elif reject is None:
        status = "empty_image"
    snap = files.put(image) if (files is not None and image and decoded) else None
    ev = VehicleEvent(
        community_id=gate.community_id,
        gate_id=gate.id,
        at=now,
        direction=gate.direction,
        read_status=status,
        read_plate=best.text if best else None,
        confidence=round(float(best.confidence), 4) if best else None,
        plate_color=best.color if best else None,
        snapshot_sha256=snap,
        actor=ctx.actor.name,
    )
    who = Identified("unrecognised", status if status in VEHICLE_REASONS else "unrecognised")
    watch: WatchEntry | None = None
    if not gate.enabled:
        ev.category, ev.decision, ev.reason = "unrecognised", "denied", "gate_disabled"
        if best is not None:
            ev.category = identify(s, gate, best.text, now).category
    elif best is None:
        # nothing to act on: the reader's own reason (no_plate, unrecognised, corrupt_image...)
        ev.category, ev.decision = "unrecognised", "queued"
        ev.reason = status
    else:
        plate = best.text
        who = identify(s, gate, plate, now)
        watch = active_watch(s, gate.community_id, plate, now)
        ev.category = who.category
        if float(best.confidence) < gate.auto_open_confidence:
            ev.decision, ev.reason = "queued", "low_confidence"
            ev.watch_id = watch.id if watch else None
            watch = None  # a doubtful read is not a match: the guard's confirmation may be
        else:
            ev.plate = plate
            if watch is not None:
                ev.category, ev.decision, ev.reason = "watchlist", "queued", "watchlist"
                ev.watch_id = watch.id
            elif gate.direction == "out":
                ev.decision, ev.reason = "open", "exit"
            elif who.known and who.reason in ("resident", "permit", "visitor"):
                ev.decision, ev.reason = "open", who.reason
            elif who.reason == "identity_inactive":
                ev.decision, ev.reason = "denied", who.reason
            elif gate.unknown_action == "open":
                ev.category = "unknown" if not who.known else who.category
                ev.decision, ev.reason = "open", "temporary_parking"
            else:
                ev.decision = "queued" if gate.unknown_action == "queue" else "denied"
                ev.reason = who.reason
    ev.vehicle_id = who.vehicle.id if who.vehicle else None
    ev.identity_id = who.identity_id
    ev.permit_id = who.permit.id if who.permit else None
    ev.visitor_id = who.visitor.id if who.visitor else None
    if ev.decision == "queued":
        ev.review_status = "pending"
        _supersede(s, gate, ev, now)
    s.add(ev)
    s.flush()
    if watch is not None:
        _watch_match(s, watch, ev, gate, now)
    if ev.decision == "open":
        _record_passage(s, gate, ev, who, now)
        _open_barrier(s, gate, ev)
    ev.elapsed_ms = (time.perf_counter() - t0) * 1000
    _emit(s, ev)
    return decision_out(ev), ev


def _supersede(s: Session, gate: VehicleGate, ev: VehicleEvent, now: datetime) -> None:
    """A camera sends several photos of a car waiting at the barrier: a newer photo with the
    same read plate replaces the one still waiting in the queue (the guard sees one entry)."""
    if not ev.read_plate:
        return
    for old in s.scalars(
        select(VehicleEvent).where(
            VehicleEvent.community_id == gate.community_id,
            VehicleEvent.gate_id == gate.id,
            VehicleEvent.review_status == "pending",
            VehicleEvent.read_plate == ev.read_plate,
            VehicleEvent.at >= now - SUPERSEDE_WITHIN,
            VehicleEvent.at <= now,
        )
    ):
        old.review_status, old.decision, old.reason = "superseded", "denied", "review_superseded"
        old.reviewed_at = now


# -- the guard confirmation queue --------------------------------------------------------------


def review_queue(s: Session, ctx: Ctx, limit: int = 50) -> list[VehicleEvent]:
    ctx.require(Perm.VEHICLES_READ)
    return list(
        s.scalars(
            select(VehicleEvent)
            .where(
                VehicleEvent.community_id == ctx.community_id,
                VehicleEvent.review_status == "pending",
            )
            .order_by(VehicleEvent.at.desc(), VehicleEvent.id.desc())
            .limit(limit)
        )
    )


def _pending(s: Session, ctx: Ctx, event_id: int) -> tuple[VehicleEvent, VehicleGate]:
    ctx.require(Perm.VEHICLES_CONFIRM)
    ev = s.get(VehicleEvent, event_id)
    if ev is None or ev.community_id != ctx.community_id:
        raise NotFound("Vehicle event not found.", code="event_not_found")
    if ev.review_status != "pending":
        raise Conflict("This vehicle was already handled.", code="already_reviewed")
    gate = s.get(VehicleGate, ev.gate_id) if ev.gate_id else None
    if gate is None:
        raise NotFound("Vehicle gate not found.", code="gate_not_found")
    return ev, gate


def confirm(
    s: Session,
    ctx: Ctx,
    event_id: int,
    plate: str,
    note: str | None = None,
    now: datetime | None = None,
) -> VehicleEvent:
    """A guard confirms the plate (corrected if need be) of a queued vehicle: the barrier
    opens, the passage is logged with the guard's name."""
    now = now or utcnow()
    ev, gate = _pending(s, ctx, event_id)
    counted = ev.reason == "watchlist"  # a confident watch-list read: already matched
    plate = normalise_plate(plate)
    who = identify(s, gate, plate, now)
    watch = active_watch(s, ev.community_id, plate, now)
    ev.plate = plate
    ev.category = "watchlist" if watch is not None else who.category
    ev.decision, ev.reason = "open", "confirmed_by_guard"
    ev.review_status, ev.reviewed_by, ev.reviewed_at = "confirmed", ctx.actor.name, now
    ev.vehicle_id = who.vehicle.id if who.vehicle else None
    ev.identity_id = who.identity_id
    ev.permit_id = who.permit.id if who.permit else None
    ev.visitor_id = who.visitor.id if who.visitor else None
    if note:
        ev.note = note
    s.flush()
    if watch is not None and not (counted and watch.id == ev.watch_id):
        _watch_match(s, watch, ev, gate, now)
    ev.watch_id = watch.id if watch else ev.watch_id
    audit.record(
        s,
        ctx.actor,
        "vehicles.review.confirmed",
        "vehicle_event",
        ev.id,
        community_id=ev.community_id,
        details={"read_plate": ev.read_plate, "plate": plate, "note": note},
    )
    _record_passage(s, gate, ev, who, now)
    _open_barrier(s, gate, ev)
    _emit(s, ev)
    return ev


def reject(
    s: Session, ctx: Ctx, event_id: int, note: str | None = None, now: datetime | None = None
) -> VehicleEvent:
    now = now or utcnow()
    ev, _gate = _pending(s, ctx, event_id)
    ev.decision, ev.reason = "denied", "rejected_by_guard"
    ev.review_status, ev.reviewed_by, ev.reviewed_at = "rejected", ctx.actor.name, now
    if note:
        ev.note = note
    audit.record(
        s,
        ctx.actor,
        "vehicles.review.rejected",
        "vehicle_event",
        ev.id,
        community_id=ev.community_id,
        details={"read_plate": ev.read_plate, "note": note},
    )
    _emit(s, ev)
    return ev


# -- log, snapshots, occupancy -----------------------------------------------------------------


def vehicle_log(
    s: Session,
    ctx: Ctx,
    *,
    gate_id: int | None = None,
    plate: str | None = None,
    decision: str | None = None,
    limit: int = 100,
    offset: int = 0,
    audited: bool = True,
) -> list[VehicleEvent]:
    """Which vehicle passed where (whereabouts: a look-up is written to the audit log)."""
    ctx.require(Perm.VEHICLES_READ)
    q = select(VehicleEvent).where(VehicleEvent.community_id == ctx.community_id)
    if gate_id is not None:
        q = q.where(VehicleEvent.gate_id == gate_id)
    if plate:
        needle = normalise_plate(plate)[:20]
        q = q.where(
            or_(VehicleEvent.plate.contains(needle), VehicleEvent.read_plate.contains(needle))
        )
    if decision:
        q = q.where(VehicleEvent.decision == decision)
    rows = list(
        s.scalars(
            q.order_by(VehicleEvent.at.desc(), VehicleEvent.id.desc()).offset(offset).limit(limit)
        )
    )
    if audited:
        audit.record(
            s,
            ctx.actor,
            "vehicles.log.viewed",
            "vehicle_log",
            None,
            community_id=ctx.community_id,
            details={"gate_id": gate_id, "plate": plate, "rows": len(rows)},
        )
    return rows


def command_states(s: Session, events_: list[VehicleEvent]) -> dict[int, str]:
    """command id -> pending | sent | acked | failed | timeout (the barrier's answer)."""
    from linli.iot.models import Command

    ids = {e.command_id for e in events_ if e.command_id}
    if not ids:
        return {}
    return {
        int(i): str(st)
        for i, st in s.execute(select(Command.id, Command.status).where(Command.id.in_(ids)))
    }


def snapshot(s: Session, ctx: Ctx, event_id: int, files: FileStore) -> bytes:
    ctx.require(Perm.VEHICLES_READ)
    ev = s.get(VehicleEvent, event_id)
    if ev is None or ev.community_id != ctx.community_id or not ev.snapshot_sha256:
        raise NotFound("Snapshot not found.", code="snapshot_not_found")
    try:
        data = files.get(ev.snapshot_sha256)
    except (FileNotFoundError, ValueError) as exc:
        raise NotFound("Snapshot not found.", code="snapshot_not_found") from exc
    audit.record(
        s,
        ctx.actor,
        "vehicles.snapshot.viewed",
        "vehicle_event",
        ev.id,
        community_id=ctx.community_id,
    )
    return data


def inside_now(s: Session, ctx: Ctx) -> list[Presence]:
    ctx.require(Perm.VEHICLES_READ)
    return list(
        s.scalars(
            select(Presence)
            .where(Presence.community_id == ctx.community_id, Presence.exited_at.is_(None))
            .order_by(Presence.entered_at.desc())
        )
    )


def occupancy(s: Session, ctx: Ctx) -> dict[str, Any]:
    """Vehicles inside now per car park and kind, against each car park's capacity."""
    ctx.require(Perm.VEHICLES_READ)
    parks = list_car_parks(s, ctx)
    counts: dict[int | None, dict[str, int]] = {}
    for cp_id, cat, n in s.execute(
        select(Presence.car_park_id, Presence.category, func.count(Presence.id))
        .where(Presence.community_id == ctx.community_id, Presence.exited_at.is_(None))
        .group_by(Presence.car_park_id, Presence.category)
    ):
        counts.setdefault(cp_id, {})[str(cat)] = int(n)
    out: list[dict[str, Any]] = []
    for cp in parks:
        by = counts.pop(cp.id, {})
        total = sum(by.values())
        out.append(
            {
                "id": cp.id,
                "name": cp.name,
                "capacity": cp.capacity,
                "inside": total,
                "free": max(cp.capacity - total, 0),
                "full": cp.capacity > 0 and total >= cp.capacity,
                "percent": round(100 * total / cp.capacity) if cp.capacity else None,
                "by_kind": by,
            }
        )
    rest: dict[str, int] = {}
    for by in counts.values():
        for k, n in by.items():
            rest[k] = rest.get(k, 0) + n
    if rest:
        out.append(
            {
                "id": None,
                "name": None,
                "capacity": 0,
                "inside": sum(rest.values()),
                "free": 0,
                "full": False,
                "percent": None,
                "by_kind": rest,
            }
        )
    by_kind: dict[str, int] = {}
    for row in out:
        for k, n in row["by_kind"].items():
            by_kind[k] = by_kind.get(k, 0) + n
    return {
        "car_parks": out,
        "inside": sum(by_kind.values()),
        "capacity": sum(cp.capacity for cp in parks),
        "by_kind": by_kind,
    }


# -- periodic jobs -----------------------------------------------------------------------------


def check_overstays(
    s: Session, community_id: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Visitor cars still inside after their window (plus a grace period): one alarm each."""
    from linli.iot import service as iot

    now = now or utcnow()
    rows = s.execute(
        select(Presence, VisitorVehicle)
        .join(VisitorVehicle, VisitorVehicle.id == Presence.visitor_id)
        .where(
            Presence.community_id == community_id,
            Presence.exited_at.is_(None),
            Presence.overstay_alarmed.is_(False),
            VisitorVehicle.valid_until < now - OVERSTAY_GRACE,
        )
    ).all()
    out = []
    for p, vv in rows:
        host = None
        if vv.host_resident_id is not None:
            from linli.people.models import Resident

            r = s.get(Resident, vv.host_resident_id)
            host = r.name if r is not None else None
        tz = _community_tz(s, community_id)
        until = vv.valid_until.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")
        iot.raise_alarm(
            s,
            community_id=community_id,
            dedup_key=f"vehicles.overstay.{p.id}",
            kind="vehicles.overstay",
            severity="warning",
            message=N_(
                "Visitor car %(plate)s still inside after its window ended at %(until)s "
                "(host: %(host)s)"
            ),
            params={"plate": display_plate(p.plate), "until": until, "host": host or "—"},
            source="vehicles",
            at=now,
            details={"presence_id": p.id, "visitor_id": vv.id, "plate": p.plate},
        )
        p.overstay_alarmed = True
        events.emit(
            s,
            "vehicles.visitor.overstayed",
            {"visitor_id": vv.id, "plate": p.plate, "valid_until": vv.valid_until.isoformat()},
            community_id=community_id,
        )
        out.append({"presence_id": p.id, "visitor_id": vv.id, "plate": p.plate})
    s.flush()
    return out


def _community_tz(s: Session, community_id: int) -> str:
    from linli.people.models import Community

    c = s.get(Community, community_id)
    return c.timezone if c is not None else "Asia/Shanghai"


def expire_reviews(s: Session, now: datetime | None = None) -> int:
    """Queued photos nobody handled for REVIEW_TTL leave the queue (the car has gone)."""
    now = now or utcnow()
    rows = list(
        s.scalars(
            select(VehicleEvent).where(
                VehicleEvent.review_status == "pending", VehicleEvent.at < now - REVIEW_TTL
            )
        )
    )
    for ev in rows:
        ev.review_status, ev.decision, ev.reason = "expired", "denied", "review_expired"
        ev.reviewed_at = now
    s.flush()
    return len(rows)


def purge_snapshots(
    s: Session, settings: Settings, files: FileStore, now: datetime | None = None
) -> int:
    """Delete vehicle snapshots older than ``settings.snapshot_retention_days``."""
    cutoff = (now or utcnow()) - timedelta(days=settings.snapshot_retention_days)
    n = expire_media(s, files, VehicleEvent, cutoff=cutoff)
    if n:
        audit.record(
            s,
            audit.Actor.system("retention"),
            "vehicles.snapshots.purged",
            "vehicle_event",
            None,
            details={"events": n, "before": cutoff.isoformat()},
        )
    return n


def housekeeping(
    s: Session, settings: Settings, files: FileStore, now: datetime | None = None
) -> dict[str, Any]:
    """The periodic jobs of the vehicles domain, safe to run often and from any replica:
    overstaying visitor cars (alarms de-duplicated), stale queue entries, old snapshots."""
    from linli.people.models import Community

    now = now or utcnow()
    overstays: dict[int, list[dict[str, Any]]] = {}
    for (cid,) in s.execute(select(Community.id)).all():
        found = check_overstays(s, int(cid), now)
        if found:
            overstays[int(cid)] = found
    expired = expire_reviews(s, now)
    purged = purge_snapshots(s, settings, files, now)
    return {"overstays": overstays, "expired_reviews": expired, "purged": purged}


def media_type(data: bytes) -> str:
    """The image type of a stored snapshot, from its first bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"BM"):
        return "image/bmp"
    return "application/octet-stream"


def watch_matches(s: Session, ctx: Ctx, limit: int = 50) -> list[VehicleEvent]:
    """The latest passages of watch-list plates (confident reads and guard confirmations)."""
    ctx.require(Perm.WATCHLIST_READ)
    return list(
        s.scalars(
            select(VehicleEvent)
            .where(
                VehicleEvent.community_id == ctx.community_id,
                VehicleEvent.category == "watchlist",
            )
            .order_by(VehicleEvent.at.desc(), VehicleEvent.id.desc())
            .limit(limit)
        )
    )
