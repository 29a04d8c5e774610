"""Demo data of vehicle access and a simulated vehicle gate.

The real plate photos of ``../shared/data/plates`` (CCPD, Hefei) are the cars of the demo:
some belong to demo residents, two hold parking permits, two are visitors registered by a
resident (one of them overstaying), one is on the plate watch list and the rest are strangers.
:class:`VehicleGateSimulator` plays them at the gates in a background thread: every photo goes
through the real plate reader and the real barrier decision, and the barrier devices (acked by
the IoT simulator) get their open commands over MQTT.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core.config import Settings
from linli.core.db import Database, utcnow
from linli.core.files import FileStore
from linli.core.web import system_ctx
from linli.vehicles import service
from linli.vehicles.models import VehicleGate
from linli.vehicles.schemas import (
    CarParkIn,
    GateIn,
    PermitIn,
    VehicleIn,
    VisitorVehicleIn,
    WatchIn,
)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent.parent
SHARED_PLATES = REPO.parent / "shared" / "data" / "plates"

#: the demo's cars (ground truth of the photos: CCPD file names and other/labels.csv)
RESIDENT_PLATES = ("皖AYL375", "皖A931Y9", "皖A158Y2", "皖AJ002E", "皖A195K9", "皖AB112D")
PERMITS = (
    ("皖APV930", "long_term", "物业维修车 Property maintenance", "月租 monthly", None),
    ("皖AUJ299", "temporary", "装修公司 Renovation contractor", "临时 per day", 3),
)
VISITOR_PLATE = "皖ALJ624"
OVERSTAY_PLATE = "皖A999J3"
WATCH_PLATE = "皖AT022C"


def plate_photos(folder: Path | None = None) -> list[Path]:
    """The plate photos of the shared data folder (top level and ``other/``)."""
    root = folder or SHARED_PLATES
    if not root.is_dir():
        return []
    return sorted(root.glob("*.jpg")) + sorted((root / "other").glob("*.jpg"))


def _resident_user_resident(s: Session, community_id: int) -> int | None:
    from linli.core.models import RoleGrant, User

    return s.scalar(
        select(User.resident_id)
        .join(RoleGrant, RoleGrant.user_id == User.id)
        .where(
            RoleGrant.community_id == community_id,
            RoleGrant.role == "resident",
            User.resident_id.is_not(None),
        )
        .limit(1)
    )


def seed_vehicles(
    s: Session,
    community_id: int,
    files: FileStore,
    settings: Settings,
    photos_dir: Path | None = None,
) -> list[Any]:
    """Seed the community's vehicle access (idempotent: nothing if vehicle gates exist).
    Returns the barrier devices as ``SimDevice``s for the IoT simulator (which acknowledges
    their commands)."""
    from linli.iot.simulator import SimDevice
    from linli.people import service as people
    from linli.people.models import Community

    if s.scalar(select(VehicleGate.id).where(VehicleGate.community_id == community_id)):
        return []
    c = s.get(Community, community_id)
    ctx = system_ctx(community_id, "demo", c.timezone if c else "Asia/Shanghai")
    now = utcnow()

    garage = service.save_car_park(s, ctx, CarParkIn(name="地下车库 Garage", capacity=40))
    service.save_car_park(s, ctx, CarParkIn(name="地面车位 Surface", capacity=20))
    fleet: list[Any] = []
    gates = []
    for name, direction in (("东门入口 East in", "in"), ("东门出口 East out", "out")):
        g = service.save_gate(s, ctx, GateIn(name=name, direction=direction, car_park_id=garage.id))
        d, secret = service.ensure_barrier_device(s, ctx, g)
        fleet.append(SimDevice(d.key, secret, service.BARRIER_PROFILE))
        gates.append(g)

    _n, residents = people.search_residents(s, ctx, limit=20)
    own = _resident_user_resident(s, community_id)
    owners = ([own] if own else []) + [r.id for r in residents if r.id != own]
    descriptions = (
        "大众 帕萨特",
        "丰田 卡罗拉",
        "比亚迪 秦",
        "本田 雅阁",
        "吉利 帝豪",
        "长安 CS75",
    )
    for plate, rid, desc in zip(RESIDENT_PLATES, owners, descriptions, strict=False):
        service.save_vehicle(
            s, ctx, VehicleIn(plate=plate, resident_id=rid, description=desc), settings
        )
    for plate, kind, holder, fee, days in PERMITS:
        service.save_permit(
            s,
            ctx,
            PermitIn(
                plate=plate,
                kind=kind,
                holder=holder,
                fee_type=fee,
                car_park_id=garage.id,
                valid_from=now - timedelta(days=1),
                valid_until=now + timedelta(days=days) if days else None,
            ),
        )
    host = own or (owners[0] if owners else None)
    service.register_visitor_vehicle(
        s,
        ctx,
        VisitorVehicleIn(
            plate=VISITOR_PLATE,
            visitor_name="李先生",
            purpose="探亲 family visit",
            valid_from=now - timedelta(minutes=10),
            valid_until=now + timedelta(hours=4),
            host_resident_id=host,
        ),
    )
    late = service.register_visitor_vehicle(
        s,
        ctx,
        VisitorVehicleIn(
            plate=OVERSTAY_PLATE,
            visitor_name="王女士",
            purpose="送货 delivery",
            valid_from=now - timedelta(hours=4),
            valid_until=now + timedelta(hours=1),
            host_resident_id=host,
        ),
        now=now,
    )
    service.add_watch(
        s,
        ctx,
        WatchIn(
            plate=WATCH_PLATE,
            reason="多次强行冲卡 drove through the barrier twice",
            authorised_by="张主任 (居委会)",
            expires_at=now + timedelta(days=90),
            severity="major",
        ),
    )
    # the overstaying visitor came in 3 hours ago; their window ended an hour ago
    photos = {p.name: p for p in plate_photos(photos_dir)}
    overstay_photo = next((p for n, p in photos.items() if n.startswith("0133812260536")), None)
    if overstay_photo is not None:
        service.decide(
            s, ctx, gates[0].id, overstay_photo.read_bytes(), files, now=now - timedelta(hours=3)
        )
    late.valid_until = now - timedelta(hours=1)
    s.flush()
    return fleet


class VehicleGateSimulator:
    """Plays the plate photos at the vehicle gates, like their cameras would: a car enters,
    later leaves through the exit lane, the next one comes... every ``interval`` seconds."""

    def __init__(
        self,
        db_url: str,
        files: FileStore,
        community_id: int,
        photos: list[Path],
        interval: float = 12.0,
    ) -> None:
        self.db_url = db_url
        self.files = files
        self.community_id = community_id
        self.photos = photos
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.decisions: list[dict[str, Any]] = []
        self._inside: list[Path] = []
        self._next = 0

    def step(self, db: Database, n: int) -> dict[str, Any] | None:
        """One car at a gate: the next photo at the entrance, or (every third move, or when
        four cars are in) the car that came in first at the exit."""
        with db.session() as s:
            gates = list(
                s.scalars(
                    select(VehicleGate)
                    .where(VehicleGate.community_id == self.community_id)
                    .order_by(VehicleGate.id)
                )
            )
            entry = next((g for g in gates if g.direction == "in" and g.enabled), None)
            exit_ = next((g for g in gates if g.direction == "out" and g.enabled), None)
            leaving = bool(self._inside) and (len(self._inside) >= 4 or n % 3 == 2)
            gate = exit_ if leaving else entry
            if gate is None or not self.photos:
                return None
            if leaving:
                photo = self._inside.pop(0)
            else:
                photo = self.photos[self._next % len(self.photos)]
                self._next += 1
            ctx = system_ctx(self.community_id, "gate-camera")
            decision, _ev = service.decide(s, ctx, gate.id, photo.read_bytes(), self.files)
            out = {"photo": photo.name, **decision.model_dump()}
        if not leaving and decision.decision == "open":
            self._inside.append(photo)
        self.decisions.append(out)
        return out

    def run(self) -> None:
        db = Database(self.db_url)
        n = 0
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.step(db, n)
                except Exception:
                    log.exception("vehicle gate simulator: step failed")
                n += 1
        finally:
            db.dispose()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="linli-vehicle-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start_demo_gate(settings: Settings, interval: float = 12.0) -> VehicleGateSimulator | None:
    """Start the simulated vehicle gate of ``linli demo`` (the first community with vehicle
    gates); None when there are no gates or no photos."""
    photos = plate_photos()
    if not photos:
        return None
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            cid = s.scalar(select(VehicleGate.community_id).order_by(VehicleGate.id).limit(1))
    finally:
        db.dispose()
    if cid is None:
        return None
    sim = VehicleGateSimulator(
        settings.resolved_database_url, FileStore(settings.files_dir), int(cid), photos, interval
    )
    sim.start()
    return sim
