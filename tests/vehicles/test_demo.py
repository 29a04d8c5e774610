"""The demo: seeded cars from the real plate photos and the simulated vehicle gate, whose
decisions come from the real plate reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from linli.core.web import system_ctx
from linli.iot.models import Alarm
from linli.vehicles import service
from linli.vehicles.demo import VehicleGateSimulator, plate_photos, seed_vehicles


def test_seed_and_simulated_gate(db: Any, world: Any, app: Any, shared_data: Path) -> None:
    settings, files = app.state.settings, app.state.files
    photos = plate_photos(shared_data / "plates")
    assert len(photos) == 13
    with db.session() as s:
        fleet = seed_vehicles(s, world.a, files, settings, shared_data / "plates")
        assert [d.profile for d in fleet] == [service.BARRIER_PROFILE] * 2
        assert seed_vehicles(s, world.a, files, settings) == []  # idempotent
    with db.session() as s:
        ctx = system_ctx(world.a)
        assert len(service.list_vehicles(s, ctx)) == 2  # the world has two residents in A
        assert len(service.my_vehicles(s, _resident(s, world))) == 1
        # the overstaying visitor is inside; the periodic job raises its alarm once
        out = service.housekeeping(s, settings, files)
        assert [o["plate"] for o in out["overstays"][world.a]] == ["皖A999J3"]
        assert s.scalar(select(Alarm.kind).where(Alarm.kind == "vehicles.overstay"))
    sim = VehicleGateSimulator(settings.resolved_database_url, files, world.a, photos)
    decisions = [sim.step(db, n) for n in range(8)]
    assert all(d is not None for d in decisions)
    by_plate = {d["read_plate"]: d for d in decisions if d and d["read_plate"]}
    assert by_plate["皖AYL375"]["category"] == "resident"
    for d in decisions:  # never a doubtful read through the barrier
        assert d is not None
        if d["decision"] == "open":
            assert d["confidence"] >= 0.8 and d["plate"] == d["read_plate"]
    assert {d["decision"] for d in decisions if d} >= {"open", "queued"}
    assert any(d["direction"] == "out" for d in decisions if d)
    with db.session() as s:
        assert service.review_queue(s, system_ctx(world.a))


def _resident(s: Any, world: Any) -> Any:
    from ._helpers import user_ctx

    return user_ctx(s, "resident", world.a)
