"""Barrier decisions on the real plate photos: residents (a plate is a credential of the
person), permits and visitors in their windows, the guard confirmation queue, the watch list
(audited), occupancy, the overstay alarm and bad input — a guessed plate never opens."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, ValidationFailed
from linli.core.models import AuditEntry
from linli.core.web import system_ctx
from linli.iot.models import Alarm, Command
from linli.vehicles import service
from linli.vehicles.models import Presence, VehicleEvent, WatchEntry
from linli.vehicles.schemas import PermitIn, VehicleIn, VisitorVehicleIn, WatchIn

from ._helpers import Lanes, make_lanes, photos_by_plate, user_ctx

LOW = "皖A931Y9"  # read at ~0.93


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> dict[str, bytes]:
    out = photos_by_plate(shared_data)
    assert len(out) >= 13 and LOW in out
    return out


@pytest.fixture
def lanes(db: Any, world: Any) -> Lanes:
    return make_lanes(db, world.a, capacity=3)


def _decide(db: Any, cid: int, gate: int, data: bytes | None, app: Any, **kw: Any) -> Any:
    with db.session() as s:
        d, _ev = service.decide(s, system_ctx(cid, "camera"), gate, data, app.state.files, **kw)
        return d


def _count(db: Any, model: Any, *where: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_resident_vehicle_is_a_credential_and_opens_the_barrier(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    from linli.access import service as access

    settings = app.state.settings
    with db.session() as s:
        v = service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate="皖a·yl375", resident_id=world.residents_a[0]),
            settings,
        )
        assert v.plate == "皖AYL375" and v.credential_id is not None
        ident = access.identity_for_plate(s, world.a, "皖a·yl375")
        assert ident is not None and ident.resident_id == world.residents_a[0]
        out = access.identity_out(s, ident)
        assert [c.kind for c in out.credentials] == ["plate"]
        vid = v.id
        # the same plate cannot be registered twice
        with pytest.raises(Conflict):
            service.save_vehicle(
                s,
                system_ctx(world.a),
                VehicleIn(plate="皖AYL375", household_id=None, resident_id=world.residents_a[1]),
                settings,
            )
    d = _decide(db, world.a, lanes.entry, photos["皖AYL375"], app)
    assert (d.decision, d.category, d.reason, d.plate) == (
        "open",
        "resident",
        "resident",
        "皖AYL375",
    )
    assert d.confidence is not None and d.confidence >= 0.8 and d.command_id is not None
    with db.session() as s:
        cmd = s.get(Command, d.command_id)
        assert cmd is not None and cmd.name == "open" and cmd.device_id == lanes.entry_device
        assert cmd.params["plate"] == "皖AYL375" and cmd.params["direction"] == "in"
        occ = service.occupancy(s, system_ctx(world.a))
        assert occ["inside"] == 1 and occ["by_kind"] == {"resident": 1}
        ev = s.get(VehicleEvent, d.event_id)
        assert ev is not None and ev.snapshot_sha256 and ev.identity_id == ident.id
    # leaving: the exit lane opens, the car is no longer inside
    d = _decide(db, world.a, lanes.exit, photos["皖AYL375"], app)
    assert (d.decision, d.reason) == ("open", "exit")
    with db.session() as s:
        assert service.occupancy(s, system_ctx(world.a))["inside"] == 0
        # deactivated: the credential goes, the barrier no longer opens by itself
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate="皖AYL375", resident_id=world.residents_a[0], active=False),
            settings,
            vid,
        )
        assert access.identity_for_plate(s, world.a, "皖a·yl375") is None
    d = _decide(db, world.a, lanes.entry, photos["皖AYL375"], app)
    assert (d.decision, d.reason) == ("queued", "vehicle_inactive")
    assert d.command_id is None


def test_low_confidence_read_waits_for_a_guard_who_confirms_or_rejects(
    db: Any, world: Any, app: Any, photos: dict[str, bytes]
) -> None:
    # a lane that needs more confidence than the reader has for this (registered) plate
    lanes = make_lanes(db, world.a, auto_open_confidence=0.99)
    with db.session() as s:
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate=LOW, resident_id=world.residents_a[0]),
            app.state.settings,
        )
    d = _decide(db, world.a, lanes.entry, photos[LOW], app)
    # registered resident, but the reader is not sure enough: no guess opens the barrier
    assert d.read_plate == LOW and d.confidence is not None and d.confidence < 0.99
    assert (d.decision, d.reason, d.plate, d.command_id) == ("queued", "low_confidence", None, None)
    assert _count(db, Command) == 0 and _count(db, Presence) == 0
    with db.session() as s:
        guard = user_ctx(s, "guard", world.a)
        assert [e.id for e in service.review_queue(s, guard)] == [d.event_id]
        ev = service.confirm(s, guard, d.event_id, "皖A·931Y9", "checked the car")
        assert (ev.decision, ev.reason, ev.review_status) == (
            "open",
            "confirmed_by_guard",
            "confirmed",
        )
        assert ev.reviewed_by == "guard" and ev.category == "resident" and ev.command_id
        with pytest.raises(Conflict):
            service.confirm(s, guard, d.event_id, LOW)
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "vehicles.review.confirmed"))
        assert entry is not None and entry.details["read_plate"] == LOW
    assert _count(db, Presence, Presence.exited_at.is_(None)) == 1
    # another doubtful read, rejected: stays closed
    d = _decide(db, world.a, lanes.entry, photos[LOW], app)
    with db.session() as s:
        guard = user_ctx(s, "guard", world.a)
        resident = user_ctx(s, "resident", world.a)
        with pytest.raises(Forbidden):
            service.reject(s, resident, d.event_id)
        ev = service.reject(s, guard, d.event_id, "not the car on the photo")
        assert (ev.decision, ev.review_status, ev.command_id) == ("denied", "rejected", None)
        assert service.review_queue(s, guard) == []
        # a stale queue entry expires after REVIEW_TTL
    d = _decide(db, world.a, lanes.entry, photos[LOW], app, now=utcnow() - timedelta(hours=1))
    with db.session() as s:
        assert service.expire_reviews(s) == 1
        ev = s.get(VehicleEvent, d.event_id)
        assert ev is not None and ev.review_status == "expired"


def test_permit_windows_and_car_parks(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    now = utcnow()
    plate = "皖APV930"
    with db.session() as s:
        ctx = system_ctx(world.a)
        p = service.save_permit(
            s,
            ctx,
            PermitIn(
                plate=plate,
                kind="temporary",
                valid_from=now + timedelta(hours=1),
                valid_until=now + timedelta(days=1),
                fee_type="临时 20元/天",
            ),
            now=now,
        )
        pid = p.id
        with pytest.raises(ValidationFailed):  # temporary without an end
            service.save_permit(s, ctx, PermitIn(plate=plate, kind="temporary"), now=now)
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now)
    assert (d.decision, d.category, d.reason) == ("queued", "unknown", "unknown_vehicle")
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now + timedelta(hours=2))
    assert (d.decision, d.category, d.reason) == ("open", "permit", "permit")
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now + timedelta(days=2))
    assert d.decision == "queued"
    with db.session() as s:
        ctx = system_ctx(world.a)
        service.revoke_permit(s, ctx, pid)
        # a long-term permit for another car park does not open this one
        from linli.vehicles.schemas import CarParkIn

        other = service.save_car_park(s, ctx, CarParkIn(name="Surface", capacity=5))
        service.save_permit(s, ctx, PermitIn(plate=plate, car_park_id=other.id), now=now)
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now + timedelta(hours=2))
    assert d.reason == "unknown_vehicle"
    with db.session() as s:
        service.save_permit(s, system_ctx(world.a), PermitIn(plate=plate), now=now)
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now + timedelta(hours=2))
    assert (d.decision, d.category) == ("open", "permit")


def test_visitor_car_window_and_overstay_alarm(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    now = utcnow()
    plate = "皖ALJ624"
    with db.session() as s:
        resident = user_ctx(s, "resident", world.a)
        v = service.register_visitor_vehicle(
            s,
            resident,
            VisitorVehicleIn(
                plate="皖A LJ624",
                visitor_name="李先生",
                valid_from=now + timedelta(minutes=30),
                valid_until=now + timedelta(hours=3),
                host_resident_id=world.residents_a[1],  # ignored: a resident hosts themself
            ),
            now=now,
        )
        assert v.host_resident_id == world.residents_a[0] and v.plate == plate
        with pytest.raises(ValidationFailed):
            service.register_visitor_vehicle(
                s,
                resident,
                VisitorVehicleIn(plate=plate, valid_from=now, valid_until=now + timedelta(days=9)),
                now=now,
            )
        assert [x.id for x in service.list_visitor_vehicles(s, resident, own_only=True)] == [v.id]
    # too early: a guard decides; in the window: opens
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=now)
    assert (d.decision, d.reason) == ("queued", "visitor_outside_window")
    t_in = now + timedelta(hours=1)
    d = _decide(db, world.a, lanes.entry, photos[plate], app, now=t_in)
    assert (d.decision, d.category, d.reason) == ("open", "visitor", "visitor")
    end = now + timedelta(hours=3)
    with db.session() as s:
        assert service.check_overstays(s, world.a, now=end + timedelta(minutes=10)) == []
        found = service.check_overstays(s, world.a, now=end + timedelta(minutes=20))
        assert [f["plate"] for f in found] == [plate]
        # checked again: no second alarm
        assert service.check_overstays(s, world.a, now=end + timedelta(hours=1)) == []
    with db.session() as s:
        alarm = s.scalar(select(Alarm).where(Alarm.kind == "vehicles.overstay"))
        assert alarm is not None and alarm.status == "active" and alarm.source == "vehicles"
        assert alarm.details["msg"]["params"]["plate"] == "皖A·LJ624"
        from linli.core.i18n import render_in

        zh = render_in("zh_CN", alarm.details["msg"]["id"], alarm.details["msg"]["params"])
        assert (
            "皖A·LJ624" in zh and zh != alarm.details["msg"]["id"] % alarm.details["msg"]["params"]
        )
    # the car leaves late: the alarm clears
    d = _decide(db, world.a, lanes.exit, photos[plate], app, now=end + timedelta(hours=2))
    assert d.decision == "open"
    with db.session() as s:
        alarm = s.scalar(select(Alarm).where(Alarm.kind == "vehicles.overstay"))
        assert alarm is not None and alarm.status == "cleared"
        assert service.visitor_status(s.get(service.VisitorVehicle, v.id)) == "left"


def test_watchlist_is_restricted_audited_and_raises_an_alarm_with_the_snapshot(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    plate = "皖AT022C"
    now = utcnow()
    with db.session() as s:
        staff = user_ctx(s, "staff", world.a)
        guard = user_ctx(s, "guard", world.a)
        prop = user_ctx(s, "property", world.a)
        entry = WatchIn(
            plate=plate,
            reason="drove through the barrier",
            authorised_by="张主任",
            expires_at=now + timedelta(days=30),
        )
        with pytest.raises(Forbidden):
            service.add_watch(s, guard, entry)
        with pytest.raises(Forbidden):
            service.list_watch(s, prop)
        with pytest.raises(ValidationFailed):
            service.add_watch(
                s, staff, entry.model_copy(update={"expires_at": now + timedelta(days=400)})
            )
        w = service.add_watch(s, staff, entry)
        assert [x.plate for x in service.list_watch(s, guard)] == [plate]
        # an expired entry does not match
        service.add_watch(
            s,
            staff,
            entry.model_copy(update={"plate": "皖AMK620", "expires_at": now + timedelta(hours=1)}),
        )
        wid = w.id
    # the resident's registration does not matter: a watch-list plate waits for a guard
    with db.session() as s:
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate=plate, resident_id=world.residents_a[0]),
            app.state.settings,
        )
    d = _decide(db, world.a, lanes.entry, photos[plate], app)
    assert (d.decision, d.category, d.reason, d.command_id) == (
        "queued",
        "watchlist",
        "watchlist",
        None,
    )
    with db.session() as s:
        alarm = s.scalar(select(Alarm).where(Alarm.kind == "vehicles.watchlist"))
        assert alarm is not None and alarm.details["vehicle_event_id"] == d.event_id
        assert alarm.details["snapshot_sha256"] and app.state.files.exists(
            alarm.details["snapshot_sha256"]
        )
        w = s.get(WatchEntry, wid)
        assert w is not None and w.matches == 1
        actions = list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert "vehicles.watchlist.added" in actions
        assert "vehicles.watchlist.viewed" in actions
        assert "vehicles.watchlist.matched" in actions
    d = _decide(db, world.a, lanes.entry, photos["皖AMK620"], app, now=now + timedelta(hours=2))
    assert d.reason == "unknown_vehicle"
    with db.session() as s:
        service.end_watch(s, user_ctx(s, "staff", world.a), wid)
    d = _decide(db, world.a, lanes.entry, photos[plate], app)
    assert (d.decision, d.category) == ("open", "resident")


def test_unknown_vehicles_follow_the_gate_setting_and_exits_open(
    db: Any, world: Any, app: Any, photos: dict[str, bytes]
) -> None:
    lanes = make_lanes(db, world.a, unknown_action="deny")
    d = _decide(db, world.a, lanes.entry, photos["皖A256R2"], app)
    assert (d.decision, d.reason, d.command_id) == ("denied", "unknown_vehicle", None)
    with db.session() as s:
        from linli.vehicles.schemas import GateIn

        service.save_gate(
            s,
            system_ctx(world.a),
            GateIn(
                name="In",
                direction="in",
                unknown_action="open",
                car_park_id=lanes.car_park,
                device_id=lanes.entry_device,
            ),
            lanes.entry,
        )
    d = _decide(db, world.a, lanes.entry, photos["皖A256R2"], app)
    assert (d.decision, d.category, d.reason) == ("open", "unknown", "temporary_parking")
    d = _decide(db, world.a, lanes.exit, photos["皖AUJ299"], app)  # never seen: leaves anyway
    assert (d.decision, d.reason) == ("open", "exit")
    # capacity: counted per car park
    for p in ("皖A158Y2", "皖AJ002E", "皖A195K9"):
        assert _decide(db, world.a, lanes.entry, photos[p], app).decision == "open"
    with db.session() as s:
        occ = service.occupancy(s, system_ctx(world.a))
        park = occ["car_parks"][0]
        assert park["inside"] == 4 and park["capacity"] == 10 and park["by_kind"] == {"unknown": 4}


def _jpeg(w: int, h: int, color: tuple[int, int, int] = (120, 120, 120)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "JPEG")
    return buf.getvalue()


def test_bad_input_is_unrecognised_with_the_snapshot_and_never_opens(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes], shared_data: Path
) -> None:
    from PIL import Image

    good = photos["皖AYL375"]
    # half of the plate cut away (CCPD box of this photo: x 226-358, y 433-500)
    img = Image.open(io.BytesIO(good)).convert("RGB")
    img.paste((90, 90, 90), (292, 425, 370, 510))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    partial = buf.getvalue()
    face = next((shared_data / "faces" / "probe").glob("*.jpg")).read_bytes()
    with db.session() as s:
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate="皖AYL375", resident_id=world.residents_a[0]),
            app.state.settings,
        )
    cases: dict[str, tuple[bytes | None, bool]] = {
        "partial plate": (partial, True),
        "not a car": (face, True),
        "blank": (_jpeg(720, 1160), True),
        "huge": (_jpeg(9000, 9000, (30, 60, 90)), True),
        "not an image": (b"GET / HTTP/1.1\r\n" * 50, False),
        "truncated": (good[: len(good) // 3], False),
        "empty": (b"", False),
        "none": (None, False),
    }
    for name, (data, snapshot) in cases.items():
        d = _decide(db, world.a, lanes.entry, data, app)
        assert d.decision == "queued", name
        assert d.plate is None and d.command_id is None, name
        assert d.category == "unrecognised" or d.reason == "low_confidence", (name, d)
        with db.session() as s:
            ev = s.get(VehicleEvent, d.event_id)
            assert ev is not None and ev.review_status == "pending", name
            assert bool(ev.snapshot_sha256) == snapshot, name
    assert _count(db, Command) == 0
    with db.session() as s:
        queue = service.review_queue(s, system_ctx(world.a))
        assert len(queue) == len(cases)
        reasons = {e.reason for e in queue}
        assert "not_an_image" in reasons and "empty_image" in reasons
        assert all(service.reason_message(r) for r in reasons)
    # a reject code from the upload (too large before reading) is recorded as such
    d = _decide(db, world.a, lanes.entry, None, app, reject="image_too_large")
    assert (d.decision, d.read_status) == ("queued", "image_too_large")


def test_snapshots_are_purged_after_the_retention_period(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    settings = app.state.settings
    old = utcnow() - timedelta(days=settings.snapshot_retention_days + 1)
    d_old = _decide(db, world.a, lanes.entry, photos["皖A931Y9"], app, now=old)
    d_new = _decide(db, world.a, lanes.entry, photos["皖A999J3"], app)
    with db.session() as s:
        sha_old = s.get(VehicleEvent, d_old.event_id).snapshot_sha256  # type: ignore[union-attr]
        out = service.housekeeping(s, settings, app.state.files)
        assert out["purged"] == 1
        assert s.get(VehicleEvent, d_old.event_id).snapshot_sha256 is None  # type: ignore[union-attr]
        assert s.get(VehicleEvent, d_new.event_id).snapshot_sha256  # type: ignore[union-attr]
    assert sha_old and not app.state.files.exists(sha_old)


def test_a_newer_photo_of_the_same_waiting_car_replaces_the_queued_one(
    db: Any, world: Any, app: Any, lanes: Lanes, photos: dict[str, bytes]
) -> None:
    now = utcnow()
    first = _decide(db, world.a, lanes.entry, photos["皖AMK620"], app, now=now)
    other = _decide(db, world.a, lanes.entry, photos["皖A256R2"], app, now=now)
    again = _decide(
        db, world.a, lanes.entry, photos["皖AMK620"], app, now=now + timedelta(seconds=5)
    )
    late = _decide(
        db, world.a, lanes.entry, photos["皖A256R2"], app, now=now + timedelta(minutes=5)
    )
    with db.session() as s:
        queue = [e.id for e in service.review_queue(s, system_ctx(world.a))]
        assert sorted(queue) == sorted([again.event_id, other.event_id, late.event_id])
        old = s.get(VehicleEvent, first.event_id)
        assert old is not None and (old.review_status, old.reason) == (
            "superseded",
            "review_superseded",
        )
