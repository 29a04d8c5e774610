"""Shared helpers of the vehicle tests: the real plate photos by plate, gates, contexts."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linli.core.web import Ctx, system_ctx


def photos_by_plate(shared_data: Path) -> dict[str, bytes]:
    """plate -> JPEG bytes, for every photo of ../shared/data/plates (ground truth from the
    CCPD file names and other/labels.csv)."""
    from linli.vision.plates import parse_ccpd_filename

    root = shared_data / "plates"
    out: dict[str, bytes] = {}
    for p in sorted(root.glob("*.jpg")):
        gt = parse_ccpd_filename(p.name)
        if gt:
            out[gt[0]] = p.read_bytes()
    labels = root / "other" / "labels.csv"
    if labels.exists():
        with labels.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out[row["plate"]] = (root / "other" / row["file"]).read_bytes()
    return out


@dataclass
class Lanes:
    car_park: int
    entry: int
    exit: int
    entry_device: int
    exit_device: int


def make_lanes(db: Any, cid: int, capacity: int = 10, **entry: Any) -> Lanes:
    from linli.vehicles import service
    from linli.vehicles.schemas import CarParkIn, GateIn

    with db.session() as s:
        ctx = system_ctx(cid)
        cp = service.save_car_park(s, ctx, CarParkIn(name="Garage", capacity=capacity))
        gi = service.save_gate(
            s, ctx, GateIn(name="In", direction="in", car_park_id=cp.id, **entry)
        )
        go = service.save_gate(s, ctx, GateIn(name="Out", direction="out", car_park_id=cp.id))
        di, _ = service.ensure_barrier_device(s, ctx, gi)
        do, _ = service.ensure_barrier_device(s, ctx, go)
        return Lanes(cp.id, gi.id, go.id, di.id, do.id)


def user_ctx(s: Any, username: str, cid: int) -> Ctx:
    """The real context of a user of the test world (their roles in community ``cid``)."""
    from sqlalchemy import select

    from linli.core.models import User
    from linli.core.web import _load_user_principal, build_ctx

    user = s.scalar(select(User).where(User.username == username))
    return build_ctx(s, _load_user_principal(s, user, None), cid)
