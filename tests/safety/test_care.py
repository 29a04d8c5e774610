"""Care for elderly people living alone, on the real database with a controllable clock:
enrolment with consent, activity from access events and from real telemetry ingestion
(door contact, water meter), the no-activity, night-outing and water rules, the wellbeing
visit work order for the grid worker, the family SMS (logged edge), the visit outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from linli.core.errors import NotFound, ValidationFailed
from linli.core.web import system_ctx
from linli.iot.ingest import Ingestor, Message
from linli.iot.models import Alarm
from linli.safety import service
from linli.safety.models import CareActivity, CareVisit, Notification
from linli.safety.schemas import CarePersonIn, VisitIn
from linli.workorders.models import WorkOrder

# a Tuesday, 10:00 in Shanghai
T0 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


def _enrol(db: Any, world: Any, **kw: Any) -> int:
    data = {
        "resident_id": world.residents_a[0],  # lives in building 1, the grid worker's grid
        "consent_by": "family",
        "consent_name": "王女士",
        "family_name": "王女士",
        "family_phone": "13900001111",
        **kw,
    }
    with db.session() as s:
        p = service.enrol_care(s, system_ctx(world.a), CarePersonIn(**data), now=T0)
        return p.id


def _alarms(db: Any, kind: str) -> list[Alarm]:
    with db.session() as s:
        return list(s.scalars(select(Alarm).where(Alarm.kind == kind)))


def _grid_ctx(db: Any, world: Any) -> Any:
    """The grid worker's context, as a request of theirs would build it."""
    from linli.core.models import User
    from linli.core.roles import Role
    from linli.core.web import Principal, build_ctx

    with db.session() as s:
        u = s.get(User, world.users["grid"])
        assert u is not None
        s.expunge(u)
    p = Principal(user=u, token=None, grants={world.a: {Role.GRID_WORKER}})
    with db.session() as s:
        return build_ctx(s, p, world.a)


def test_no_activity_for_n_hours_opens_a_visit_for_the_grid_worker(db: Any, world: Any) -> None:
    pid = _enrol(db, world, inactive_hours=24)
    with db.session() as s:
        # 23 h after enrolment: nothing yet
        assert service.evaluate_care(s, T0 + timedelta(hours=23)) == []
    with db.session() as s:
        assert service.evaluate_care(s, T0 + timedelta(hours=24, minutes=1)) == [(pid, "inactive")]
    with db.session() as s:
        # the next rounds do not raise a second alarm, order or SMS
        assert service.evaluate_care(s, T0 + timedelta(hours=25)) == []
    (alarm,) = _alarms(db, "care_inactive")
    assert alarm.status == "active" and alarm.severity == "major"
    with db.session() as s:
        wo = s.get(WorkOrder, alarm.work_order_id)
        assert wo is not None and wo.category == "wellbeing"
        assert wo.grid_id == world.grid_a
        assert wo.assignee_user_id == world.users["grid"]  # routed by grid
        (sms,) = list(s.scalars(select(Notification)))
        assert sms.to == "13900001111" and sms.person_id == pid
        (visit,) = list(s.scalars(select(CareVisit)))
        assert visit.reason == "inactive" and visit.work_order_id == wo.id

    # the grid worker visits and records the outcome: alarm cleared, order resolved
    ctx = _grid_ctx(db, world)
    with db.session() as s:
        service.record_visit(
            s,
            ctx,
            visit.id,
            VisitIn(outcome="well", note="在家，身体好"),
            now=T0 + timedelta(hours=26),
        )
    with db.session() as s:
        a = s.get(Alarm, alarm.id)
        assert a is not None and a.status == "cleared"
        wo2 = s.get(WorkOrder, alarm.work_order_id)
        assert wo2 is not None and wo2.status == "resolved"
        v = s.get(CareVisit, visit.id)
        assert v is not None and v.outcome == "well" and v.visited_by == "grid"
        with pytest.raises(ValidationFailed):
            service.record_visit(s, ctx, visit.id, VisitIn(outcome="well"))
    # the visit counts as a sign of life: the clock restarts from there
    with db.session() as s:
        assert service.evaluate_care(s, T0 + timedelta(hours=49)) == []
        assert service.evaluate_care(s, T0 + timedelta(hours=50, minutes=1)) == [(pid, "inactive")]


def test_access_events_are_activity_and_night_outings_alarm(db: Any, world: Any) -> None:
    pid = _enrol(db, world, inactive_hours=12)
    with db.session() as s:
        # a gate passage at 18:00 local
        p = service.access_activity(
            s, world.a, world.residents_a[0], T0 + timedelta(hours=8), "in", "东门"
        )
        assert p is not None and p.id == pid
        # somebody not in care: nothing
        assert service.access_activity(s, world.a, world.residents_a[1], T0, "in") is None
    with db.session() as s:
        # 12 h after enrolment, but only 4 h after the passage: fine
        assert service.evaluate_care(s, T0 + timedelta(hours=12, minutes=5)) == []
        assert service.evaluate_care(s, T0 + timedelta(hours=20, minutes=5)) == [(pid, "inactive")]
    # coming back through the gate clears the inactivity alarm
    with db.session() as s:
        service.access_activity(s, world.a, world.residents_a[0], T0 + timedelta(hours=21), "in")
    assert [a.status for a in _alarms(db, "care_inactive")] == ["cleared"]
    # going out at 02:00 local (18:00 UTC) is unusual for her: night-outing alarm
    with db.session() as s:
        service.access_activity(
            s, world.a, world.residents_a[0], datetime(2026, 3, 3, 18, 0, tzinfo=UTC), "out"
        )
    (night,) = _alarms(db, "care_night_out")
    assert "02:00" in night.message
    with db.session() as s:
        acts = list(s.scalars(select(CareActivity).where(CareActivity.person_id == pid)))
        assert {a.source for a in acts} == {"access"}


def test_a_person_who_often_goes_out_at_night_raises_no_night_alarm(db: Any, world: Any) -> None:
    _enrol(db, world, night_from="22:00", night_to="04:00")
    rid = world.residents_a[0]
    with db.session() as s:
        # a night-shift pattern over the last two weeks: out at 23:00 local every night
        for d in range(14):
            at = datetime(2026, 2, 15, 15, 0, tzinfo=UTC) + timedelta(days=d)
            service.access_activity(s, world.a, rid, at, "out")
    with db.session() as s:
        service.evaluate_care(s, datetime(2026, 3, 1, 4, 0, tzinfo=UTC))
        (p,) = service.list_care(s, system_ctx(world.a))
        assert p.baseline["night_out_share"] == 1.0
        assert 23 in p.baseline["active_hours"]
    # before the baseline knew her habits, her first outings looked unusual (one alarm)
    (first,) = _alarms(db, "care_night_out")
    with db.session() as s:
        service.access_activity(s, world.a, rid, datetime(2026, 3, 1, 15, 30, tzinfo=UTC), "out")
    (again,) = _alarms(db, "care_night_out")
    assert again.id == first.id and again.occurrences == first.occurrences


def _device(db: Any, world: Any, key: str, profile: str) -> int:
    from linli.iot import service as iot

    with db.session() as s:
        ctx = system_ctx(world.a)
        d, _ = iot.create_device(
            s,
            ctx,
            name=key,
            profile_id=iot.profile_by_key(s, ctx, profile).id,
            key=key,
            building_id=world.buildings_a[0],
        )
        return d.id


def _tele(key: str, values: dict[str, float], ts: datetime) -> Message:
    body = json.dumps({"ts": ts.timestamp(), "values": values}).encode()
    return Message(f"linli/devices/{key}/telemetry", body, ts)


def test_door_contact_and_water_meter_through_real_ingestion(db: Any, world: Any) -> None:
    # recent times: raw telemetry is kept for a limited time
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = now - timedelta(hours=30)
    door = _device(db, world, "door-101", "door_contact")
    water = _device(db, world, "water-101", "water_meter")
    with db.session() as s:
        p = service.enrol_care(
            s,
            system_ctx(world.a),
            CarePersonIn(
                resident_id=world.residents_a[0],
                consent_by="person",
                consent_name="本人",
                device_ids=[door, water],
                inactive_hours=24,
                water_hours=3,
            ),
            now=start,
        )
        pid = p.id
    ing = Ingestor(db)
    # the door opens at start + 2 h, then nothing moves any more; water runs normally
    msgs = [
        _tele("door-101", {"open": 1}, start + timedelta(hours=2)),
        _tele("door-101", {"open": 0}, start + timedelta(hours=2, minutes=1)),
    ]
    for k in range(0, 20 * 12):  # every 5 min for 20 h: short uses, then off
        t = start + timedelta(minutes=5 * k)
        msgs.append(_tele("water-101", {"flow": 6.0 if k % 24 == 0 else 0.0, "total": 1.0 + k}, t))
    ing.process(msgs)
    with db.session() as s:
        assert service.evaluate_care(s, start + timedelta(hours=20)) == []
        (p,) = service.list_care(s, system_ctx(world.a))
        assert p.last_activity_source in ("door", "water")
    # then the tap is left open: flow never drops to zero for more than 3 hours
    msgs = [
        _tele(
            "water-101",
            {"flow": 4.0, "total": 300.0 + k},
            start + timedelta(hours=20, minutes=5 * k),
        )
        for k in range(1, 12 * 4)
    ]
    ing.process(msgs)
    with db.session() as s:
        raised = service.evaluate_care(s, start + timedelta(hours=24))
    assert (pid, "water") in raised
    (w,) = _alarms(db, "care_water")
    assert w.work_order_id is not None
    # water running is activity too: no inactivity alarm for this person
    assert _alarms(db, "care_inactive") == []


def test_activity_api_respects_the_grid(client: Any, db: Any, world: Any) -> None:
    from conftest import login

    pid = _enrol(db, world)
    with db.session() as s:
        service.access_activity(s, world.a, world.residents_a[0], T0 + timedelta(hours=1), "in")
    login(client, "grid")
    r = client.get(f"/api/v1/communities/{world.a}/safety/care/{pid}/activity")
    assert r.status_code == 200 and [a["source"] for a in r.json()] == ["access"]
    login(client, "guard")
    r = client.get(f"/api/v1/communities/{world.a}/safety/care/{pid}/activity")
    assert r.status_code in (403, 404)


def test_enrolment_needs_consent_and_respects_grids(db: Any, world: Any) -> None:
    with pytest.raises(ValidationError) as e1:
        CarePersonIn(
            resident_id=world.residents_a[0],
            consent_by="nobody",  # type: ignore[arg-type]
            consent_name="x",
        )
    assert "consent_by" in str(e1.value)
    with pytest.raises(ValidationError):
        CarePersonIn(resident_id=world.residents_a[0], consent_by="person", consent_name=" ")
    with db.session() as s, pytest.raises(ValidationFailed) as e2:
        service.enrol_care(
            s,
            system_ctx(world.a),
            CarePersonIn(
                resident_id=world.residents_a[0], consent_by="family", consent_name="儿子"
            ),
        )
    assert e2.value.field == "family_name"
    with db.session() as s, pytest.raises(NotFound):
        # a resident of another community
        service.enrol_care(
            s,
            system_ctx(world.a),
            CarePersonIn(resident_id=world.residents_b[0], consent_by="person", consent_name="x"),
        )
    _enrol(db, world)
    with db.session() as s, pytest.raises(ValidationFailed):
        service.enrol_care(
            s,
            system_ctx(world.a),
            CarePersonIn(resident_id=world.residents_a[0], consent_by="person", consent_name="x"),
        )
    # someone in building 2 (outside the grid worker's grid)
    with db.session() as s:
        service.enrol_care(
            s,
            system_ctx(world.a),
            CarePersonIn(
                resident_id=world.residents_a[1], consent_by="person", consent_name="本人"
            ),
            now=T0,
        )
    ctx = _grid_ctx(db, world)
    with db.session() as s:
        assert [p.resident_id for p in service.list_care(s, ctx)] == [world.residents_a[0]]
        assert len(service.list_care(s, system_ctx(world.a))) == 2


def test_a_failing_sms_gateway_never_stops_the_alarm_and_the_visit(db: Any, world: Any) -> None:
    from linli.safety import notify

    sent: list[tuple[str, str]] = []

    def broken(to: str, text: str) -> None:
        sent.append((to, text))
        raise ConnectionError("gateway down")

    pid = _enrol(db, world)
    notify.set_sender(broken)
    try:
        with db.session() as s:
            assert service.evaluate_care(s, T0 + timedelta(hours=25)) == [(pid, "inactive")]
    finally:
        notify.set_sender(None)
    assert [to for to, _ in sent] == ["13900001111"]
    with db.session() as s:
        (n,) = list(s.scalars(select(Notification)))
        assert n.status == "failed"
        (v,) = list(s.scalars(select(CareVisit)))
        assert v.work_order_id is not None
