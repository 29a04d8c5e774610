"""Telemetry ingestion on the real database (SQLite, or PostgreSQL with
LINLI_TEST_DATABASE_URL): validation and dead letters, exactly-once storage, roll-ups,
latest values, alarms and work orders, heartbeats, device status and command acks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from linli.core.models import OutboxEvent
from linli.core.web import system_ctx
from linli.iot import service
from linli.iot.ingest import MAX_PAYLOAD, Ingestor, Message
from linli.iot.models import (
    Alarm,
    Command,
    DeadLetter,
    Device,
    LatestValue,
    Telemetry,
    TelemetryRollup,
)
from linli.workorders.models import WorkOrder

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def topic(key, kind="telemetry"):
    return f"linli/devices/{key}/{kind}"


def msg(key, body, *, kind="telemetry", at=NOW):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Message(topic(key, kind), payload, at)


def tele(key, values, ts, at=None):
    """A telemetry message with epoch seconds ``ts`` (received at ``at``, default ``ts``)."""
    at = at or ts
    return msg(key, {"ts": ts.timestamp(), "values": values}, at=at)


@pytest.fixture
def fleet(db, world):
    """A fire hydrant, a bin sensor and a manhole cover in community A; one gate sensor in B."""
    out = {}
    with db.session() as s:
        for cid, key, profile, name in (
            (world.a, "hydrant-1", "fire_hydrant", "East hydrant"),
            (world.a, "bin-1", "bin_level", "Bin 1"),
            (world.a, "cover-1", "manhole_cover", "Cover 1"),
            (world.b, "door-b", "door_contact", "Door B"),
        ):
            ctx = system_ctx(cid)
            p = service.profile_by_key(s, ctx, profile)
            d, _secret = service.create_device(
                s,
                ctx,
                name=name,
                profile_id=p.id,
                key=key,
                building_id=world.buildings_a[0] if cid == world.a else None,
                location="east gate",
            )
            out[key] = d.id
    return out


def rows(db, model, *where):
    with db.session() as s:
        q = select(model)
        for w in where:
            q = q.where(w)
        return list(s.scalars(q))


def count(db, model, *where):
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for w in where:
            q = q.where(w)
        return s.scalar(q)


def device(db, dev_id):
    with db.session() as s:
        return s.get(Device, dev_id)


def event_names(db):
    with db.session() as s:
        return [e.name for e in s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


# -- validation and dead letters ----------------------------------------------------------------


def test_bad_messages_become_dead_letters_with_reasons_and_counts(db, fleet, world):
    ing = Ingestor(db)
    ts = NOW
    epoch = ts.timestamp()
    batch = [
        msg("hydrant-1", b"{not json"),
        msg("hydrant-1", b"[1, 2, 3]"),
        msg("hydrant-1", b'{"ts": ' + str(epoch).encode() + b', "values": {"pressure": NaN}}'),
        msg("hydrant-1", b"\xff\xfe"),
        msg("hydrant-1", b'{"pad": "' + b"x" * MAX_PAYLOAD + b'"}'),
        msg("ghost-9", {"ts": epoch, "values": {"pressure": 0.3}}),
        Message("somewhere/else", b"{}", ts),
        msg("hydrant-1", {"x": 1}, kind="debug"),
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": "high"}}),
        msg("hydrant-1", {"ts": epoch, "values": {"leak": 2}}),
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": True}}),
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": 9.9}}),
        msg("hydrant-1", b'{"values": {"pressure": 1' + b"0" * 400 + b"}}"),
        msg("hydrant-1", {"ts": epoch + 3600, "values": {"pressure": 0.3}}),
        msg("hydrant-1", {"ts": (ts + timedelta(hours=1)).isoformat(), "values": {"leak": 0}}),
        msg("hydrant-1", {"ts": epoch - 31 * 86400, "values": {"pressure": 0.3}}),
        msg("hydrant-1", {"ts": "yesterday", "values": {"pressure": 0.3}}),
        msg("hydrant-1", {"ts": 1e30, "values": {"pressure": 0.3}}),
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": 0.3, "colour": "red"}}),
        msg("hydrant-1", {"ts": epoch, "values": {}}),
        msg("hydrant-1", {"ts": epoch, "values": [0.3]}),
        msg("hydrant-1", {"online": "yes"}, kind="status"),
        # one bad value refuses the whole message: the good pressure is not stored either
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": 0.3, "leak": "maybe"}}),
        # and good messages in the same batch go through
        msg("hydrant-1", {"ts": epoch, "values": {"pressure": 0.31, "leak": False}}),
        msg("bin-1", {"ts": epoch, "values": {"fill": 42.5}}),
        msg("bin-1", {"ts": epoch, "values": {"fill": -1}}),
    ]
    stats = ing.process(batch)
    reasons = [r for _t, r, _d in stats.rejections]
    assert reasons == [
        "malformed",
        "malformed",
        "wrong_type",
        "malformed",
        "too_large",
        "unknown_device",
        "bad_topic",
        "bad_topic",
        "wrong_type",
        "wrong_type",
        "wrong_type",
        "out_of_range",
        "out_of_range",
        "future_timestamp",
        "future_timestamp",
        "too_old",
        "bad_timestamp",
        "bad_timestamp",
        "unknown_metric",
        "malformed",
        "malformed",
        "malformed",
        "wrong_type",
        "out_of_range",
    ]
    assert (stats.messages, stats.accepted, stats.rejected) == (26, 2, 24)
    assert stats.samples == 3  # pressure + leak, fill

    dead = rows(db, DeadLetter)
    assert [d.reason for d in sorted(dead, key=lambda d: d.id)] == reasons
    by_reason = {d.reason: d for d in dead}
    ghost = by_reason["unknown_device"]
    assert ghost.device_id is None and ghost.community_id is None and ghost.detail == "ghost-9"
    oor = next(d for d in dead if d.reason == "out_of_range" and d.device_id == fleet["bin-1"])
    assert oor.community_id == world.a and "fill" in oor.detail and "[0, 100]" in oor.detail
    assert next(d for d in dead if d.reason == "unknown_metric").detail == "colour"
    assert len(by_reason["too_large"].payload) <= 2000  # the payload is kept, truncated
    assert all(d.received_at is not None for d in dead)

    hydrant, bin_ = device(db, fleet["hydrant-1"]), device(db, fleet["bin-1"])
    assert (hydrant.rejected_count, hydrant.accepted_count) == (21, 1)
    assert (bin_.rejected_count, bin_.accepted_count) == (1, 1)
    assert count(db, Telemetry) == 3
    stored = {(t.metric, t.value) for t in rows(db, Telemetry)}
    assert stored == {("pressure", 0.31), ("leak", 0.0), ("fill", 42.5)}


def test_disabled_device_is_refused(db, fleet):
    with db.session() as s:
        s.get(Device, fleet["bin-1"]).enabled = False
    stats = Ingestor(db).process([tele("bin-1", {"fill": 10}, NOW)])
    assert stats.rejections[0][1] == "device_disabled"
    assert count(db, Telemetry) == 0 and device(db, fleet["bin-1"]).rejected_count == 1


def test_timestamps_in_seconds_milliseconds_iso_or_absent(db, fleet):
    ing = Ingestor(db)
    base = NOW.replace(microsecond=0)
    ing.process(
        [
            msg("bin-1", {"ts": base.timestamp(), "values": {"fill": 1}}),
            msg("bin-1", {"ts": int(base.timestamp() * 1000) + 1500, "values": {"fill": 2}}),
            msg("bin-1", {"ts": (base + timedelta(seconds=3)).isoformat(), "values": {"fill": 3}}),
            msg("bin-1", {"ts": "2000-01-01T00:00:00", "values": {"fill": 9}}),  # too old
            msg("bin-1", {"fill": 4}, at=base + timedelta(seconds=4)),  # flat form, no ts
        ]
    )
    got = sorted((t.ts, t.value) for t in rows(db, Telemetry))
    assert got == [
        (base, 1.0),
        (base + timedelta(seconds=1.5), 2.0),
        (base + timedelta(seconds=3), 3.0),
        (base + timedelta(seconds=4), 4.0),
    ]
    assert all(t.tzinfo is not None for t, _ in got)


def test_a_device_registered_after_the_cache_was_loaded_is_known(db, fleet, world):
    ing = Ingestor(db)
    ing.process([tele("bin-1", {"fill": 5}, NOW)])
    with db.session() as s:
        ctx = system_ctx(world.a)
        p = service.profile_by_key(s, ctx, "bin_level")
        service.create_device(s, ctx, name="Bin 2", profile_id=p.id, key="bin-2")
    ing._loaded_at -= 2  # the cache is two seconds old
    stats = ing.process([tele("bin-2", {"fill": 6}, NOW)])
    assert stats.accepted == 1 and stats.rejected == 0


# -- exactly once --------------------------------------------------------------------------------


def test_redelivered_messages_are_stored_once(db, fleet):
    ing = Ingestor(db)
    m1 = tele("bin-1", {"fill": 10, "distance": 100}, NOW)
    m2 = tele("bin-1", {"fill": 20}, NOW + timedelta(seconds=30))
    first = ing.process([m1, m1, m2])  # twice in the same batch
    assert (first.samples, first.duplicates) == (3, 0)
    again = ing.process([m2, m1, tele("bin-1", {"fill": 30}, NOW + timedelta(seconds=40))])
    assert (again.samples, again.duplicates, again.accepted) == (1, 3, 3)
    # a fresh ingester (a restarted process) sees them as duplicates too
    third = Ingestor(db).process([m1, m2])
    assert (third.samples, third.duplicates) == (0, 3)
    # new samples first, then a duplicate: the new ones are stored and rolled up once
    fourth = ing.process(
        [tele("bin-1", {"fill": 40 + i}, NOW + timedelta(seconds=50 + i)) for i in range(5)] + [m2]
    )
    assert (fourth.samples, fourth.duplicates) == (5, 1)
    assert count(db, Telemetry) == 9
    # roll-ups were counted from the new rows only
    fill_m = rows(
        db,
        TelemetryRollup,
        TelemetryRollup.metric == "fill",
        TelemetryRollup.period == "h",
    )
    assert sum(r.count for r in fill_m) == 8
    assert sum(r.vsum for r in fill_m) == 60.0 + sum(40 + i for i in range(5))


# -- roll-ups and latest values ------------------------------------------------------------------


def test_rollups_per_minute_and_hour(db, fleet, world):
    ing = Ingestor(db)
    h0 = NOW.replace(minute=58, second=0)
    samples = [  # (seconds after h0, value): two minutes before the hour, one after
        (5, 10.0),
        (20, 30.0),
        (50, 20.0),
        (65, 50.0),
        (70, 40.0),
        (125, 5.0),
        (130, 7.0),
    ]
    # in two batches, out of order: the aggregates must not care
    msgs = [tele("bin-1", {"fill": v}, h0 + timedelta(seconds=s)) for s, v in samples]
    ing.process(msgs[3:])
    ing.process(msgs[:3])
    got = {
        (r.period, r.bucket): (r.vmin, r.vmax, r.vsum, r.count)
        for r in rows(db, TelemetryRollup, TelemetryRollup.metric == "fill")
    }
    m0, m1, m2 = (h0 + timedelta(minutes=i) for i in range(3))
    assert got == {
        ("m", m0): (10.0, 30.0, 60.0, 3),
        ("m", m1): (40.0, 50.0, 90.0, 2),
        ("m", m2): (5.0, 7.0, 12.0, 2),
        ("h", h0.replace(minute=0)): (10.0, 50.0, 150.0, 5),
        ("h", m2.replace(minute=0)): (5.0, 7.0, 12.0, 2),
    }
    # the chart reads them: averages per bucket
    with db.session() as s:
        ctx = system_ctx(world.a)
        chart = service.series(
            s, ctx, fleet["bin-1"], "fill", h0 - timedelta(hours=12), h0 + timedelta(hours=1)
        )
    assert chart["resolution"] == "1m"
    assert [p[1:] for p in chart["points"]] == [
        [20.0, 10.0, 30.0],
        [45.0, 40.0, 50.0],
        [6.0, 5.0, 7.0],
    ]


def test_latest_value_is_the_newest_sample_even_out_of_order(db, fleet, world):
    ing = Ingestor(db)
    ing.process([tele("bin-1", {"fill": 50}, NOW + timedelta(seconds=60))])
    ing.process([tele("bin-1", {"fill": 10, "distance": 90}, NOW)])  # an older reading, late
    ing.process(
        [
            tele("bin-1", {"distance": 80}, NOW + timedelta(seconds=90)),
            tele("bin-1", {"distance": 70}, NOW + timedelta(seconds=80)),
        ]
    )
    with db.session() as s:
        latest = service.latest(s, system_ctx(world.a), fleet["bin-1"])
    assert latest == {
        "fill": (NOW + timedelta(seconds=60), 50.0),
        "distance": (NOW + timedelta(seconds=90), 80.0),
    }
    assert count(db, LatestValue) == 2


# -- alarms and work orders ----------------------------------------------------------------------


def open_alarms(db, **where):
    return rows(
        db,
        Alarm,
        Alarm.status.in_(("active", "acknowledged")),
        *[getattr(Alarm, k) == v for k, v in where.items()],
    )


def test_alarm_raised_once_per_dedup_key_with_a_work_order_then_cleared(db, fleet, world):
    ing = Ingestor(db)
    leak = [tele("hydrant-1", {"leak": True}, NOW + timedelta(seconds=i)) for i in range(3)]
    s1 = ing.process(leak[:2])
    s2 = ing.process(leak[2:])
    assert (s1.alarms_raised, s2.alarms_raised) == (1, 0)
    [alarm] = open_alarms(db, device_id=fleet["hydrant-1"])
    assert alarm.kind == "Hydrant leaking" and alarm.severity == "major"
    assert alarm.dedup_key == f"rule:{alarm.rule_id}:device:{fleet['hydrant-1']}"
    assert alarm.started_at == NOW and alarm.value == 1.0 and alarm.community_id == world.a
    [wo] = rows(db, WorkOrder)
    assert alarm.work_order_id == wo.id and wo.source_ref == f"alarm:{alarm.id}"
    assert wo.category == "water" and wo.building_id == world.buildings_a[0]
    assert wo.location == "east gate" and "East hydrant" in wo.title

    # a restarted ingester knows the alarm is open: no second alarm, no second order
    ing2 = Ingestor(db)
    again = ing2.process([tele("hydrant-1", {"leak": 1}, NOW + timedelta(seconds=5))])
    assert again.alarms_raised == 0
    assert count(db, Alarm) == 1 and count(db, WorkOrder) == 1

    done = ing2.process([tele("hydrant-1", {"leak": False}, NOW + timedelta(seconds=10))])
    assert done.alarms_cleared == 1
    cleared = rows(db, Alarm)[0]
    assert cleared.status == "cleared" and cleared.cleared_by == "rule"
    assert cleared.cleared_at == NOW + timedelta(seconds=10)
    names = event_names(db)
    assert names.count("iot.alarm.raised") == 1 and names.count("iot.alarm.cleared") == 1
    assert "workorder.order.created" in names or any(n.startswith("workorder") for n in names)

    # the next leak is a new alarm (the old one stays in the history)
    new = ing2.process([tele("hydrant-1", {"leak": 1}, NOW + timedelta(seconds=20))])
    assert new.alarms_raised == 1
    assert count(db, Alarm) == 2 and len(open_alarms(db)) == 1


def test_hysteresis_through_ingestion(db, fleet):
    ing = Ingestor(db)
    # "Battery low": < 15, clears above 25
    values = [30, 14, 16, 14, 20, 26, 10]
    raised = cleared = 0
    for i, v in enumerate(values):
        st = ing.process([tele("cover-1", {"battery": v}, NOW + timedelta(minutes=i))])
        raised += st.alarms_raised
        cleared += st.alarms_cleared
    assert (raised, cleared) == (2, 1)
    assert count(db, Alarm) == 2


def test_rule_without_work_order_and_device_override(db, fleet, world):
    with db.session() as s:
        ctx = system_ctx(world.a)
        # this hydrant's own "Hydrant leaking" rule overrides the profile's: critical, no order
        service.save_rule(
            s,
            ctx,
            name="Hydrant leaking",
            device_id=fleet["hydrant-1"],
            condition={"kind": "threshold", "metric": "leak", "op": "==", "value": 1},
            severity="critical",
            create_work_order=False,
            message="东门消防栓漏水",
        )
    Ingestor(db).process([tele("hydrant-1", {"leak": True}, NOW)])
    [alarm] = rows(db, Alarm)
    assert alarm.severity == "critical" and alarm.message == "东门消防栓漏水"
    assert alarm.work_order_id is None and count(db, WorkOrder) == 0


def test_alarm_cleared_by_hand_is_raised_again_while_the_condition_holds(db, fleet, world):
    ing = Ingestor(db)
    ing.process([tele("hydrant-1", {"leak": True}, NOW)])
    [alarm] = rows(db, Alarm)
    with db.session() as s:
        service.clear(s, system_ctx(world.a), alarm.id)
    ing.invalidate()  # (the cache reloads every few seconds anyway)
    st = ing.process([tele("hydrant-1", {"leak": True}, NOW + timedelta(seconds=30))])
    assert st.alarms_raised == 1 and len(open_alarms(db)) == 1


def test_duration_rule_through_ingestion(db, fleet):
    ing = Ingestor(db)
    # "Water pressure low": < 0.14 for 120 s
    raised = 0
    for i in range(0, 181, 30):
        st = ing.process([tele("hydrant-1", {"pressure": 0.1}, NOW + timedelta(seconds=i))])
        raised += st.alarms_raised
        if i < 120:
            assert raised == 0
    assert raised == 1
    [alarm] = open_alarms(db)
    assert alarm.started_at == NOW + timedelta(seconds=120)


# -- heartbeat, status, commands -----------------------------------------------------------------


def test_device_goes_offline_via_sweep_and_comes_back(db, fleet, world):
    ing = Ingestor(db)
    dev_id = fleet["hydrant-1"]  # report interval 300 s: "Device offline" after 900 s
    t0 = NOW
    ing.process([tele("hydrant-1", {"pressure": 0.3}, t0)])
    assert device(db, dev_id).online and device(db, dev_id).last_seen_at == t0
    assert "iot.device.online" in event_names(db)

    assert ing.sweep(t0 + timedelta(seconds=899)).alarms_raised == 0
    st = ing.sweep(t0 + timedelta(seconds=901))
    # the other devices were never heard from: offline since their registration too
    assert st.alarms_raised >= 1
    [alarm] = open_alarms(db, device_id=dev_id)
    assert alarm.kind == "Device offline" and alarm.severity == "minor"
    assert not device(db, dev_id).online
    assert "iot.device.offline" in event_names(db)
    # fire-safety devices get a work order for it
    assert alarm.work_order_id is not None
    assert ing.sweep(t0 + timedelta(seconds=1000)).alarms_raised == 0  # once

    back = t0 + timedelta(seconds=1200)
    ing.process([tele("hydrant-1", {"pressure": 0.3}, back)])
    assert device(db, dev_id).online
    assert ing.sweep(back + timedelta(seconds=5)).alarms_cleared >= 1
    assert open_alarms(db, device_id=dev_id) == []


def test_status_messages_and_last_will(db, fleet):
    ing = Ingestor(db)
    dev_id = fleet["cover-1"]
    ing.process([msg("cover-1", {"online": True}, kind="status")])
    assert device(db, dev_id).online and device(db, dev_id).last_seen_at == NOW
    ing.process([msg("cover-1", {"online": False}, kind="status", at=NOW + timedelta(seconds=9))])
    d = device(db, dev_id)
    assert not d.online and d.last_seen_at == NOW  # a last will is not a sign of life
    names = event_names(db)
    assert names.count("iot.device.online") == 1 and names.count("iot.device.offline") == 1


def test_command_acknowledged_over_ingestion_and_time_out(db, fleet, world):
    from linli.core import audit

    with db.session() as s:
        d = s.get(Device, fleet["cover-1"])
        cmd = service.issue_command(s, d, "reboot", {"delay": 1}, audit.Actor.system("test"))
        other = service.issue_command(s, d, "ping", {}, audit.Actor.system("test"), timeout_s=5)
        cmd_id, other_id = cmd.id, other.id
    ing = Ingestor(db)
    ing.process(
        [
            msg(
                "cover-1",
                {"id": cmd_id, "ok": True, "result": {"done": "reboot"}},
                kind="commands/ack",
            ),
            msg("bin-1", {"id": other_id, "ok": True}, kind="commands/ack"),  # not its command
        ]
    )
    with db.session() as s:
        acked, pending = s.get(Command, cmd_id), s.get(Command, other_id)
        assert acked.status == "acked" and acked.result == {"done": "reboot"}
        assert pending.status == "pending"
    ing.sweep(datetime.now(UTC) + timedelta(seconds=60))
    with db.session() as s:
        assert s.get(Command, other_id).status == "timeout"
        assert s.get(Command, cmd_id).status == "acked"
    assert "iot.command.acked" in event_names(db) and "iot.command.timeout" in event_names(db)


def test_raw_batches_and_large_volumes(db, fleet):
    """process_raw (the MQTT path): many messages in one transaction."""
    ing = Ingestor(db)
    base = NOW.replace(second=0).timestamp()
    items = [
        (topic("bin-1"), json.dumps({"ts": base + i * 0.5, "values": {"fill": i % 100}}).encode())
        for i in range(3000)
    ]
    st = ing.process_raw(items, NOW + timedelta(minutes=30))
    assert (st.accepted, st.samples, st.rejected) == (3000, 3000, 0)
    hours = rows(db, TelemetryRollup, TelemetryRollup.period == "h")
    assert sum(r.count for r in hours) == 3000
    minutes = rows(db, TelemetryRollup, TelemetryRollup.period == "m")
    assert sum(r.count for r in minutes) == 3000 and len(minutes) == 25
    assert device(db, fleet["bin-1"]).accepted_count == 3000


def test_retention_purges_raw_then_minutes_and_charts_fall_back_to_roll_ups(db, fleet, world):
    """Raw samples go after ``raw_days``, 1-minute roll-ups after ``minute_days``; a chart of
    a range whose raw samples are gone is drawn from the roll-ups that remain."""
    ing = Ingestor(db)
    old = (NOW - timedelta(days=5)).replace(second=0)
    recent = NOW - timedelta(minutes=30)
    ing.process(
        [
            tele("bin-1", {"fill": 10}, old, at=NOW),
            tele("bin-1", {"fill": 30}, old + timedelta(seconds=20), at=NOW),
            tele("bin-1", {"fill": 50}, recent, at=NOW),
            tele("hydrant-1", {"pressure": 0.3}, old, at=NOW),
        ]
    )
    bad = msg("bin-1", b"{oops", at=NOW - timedelta(days=40))
    ing.process([bad])
    assert count(db, Telemetry) == 4
    with db.session() as s:
        purged = service.purge_telemetry(
            s, raw_days=2, minute_days=10, hour_days=0, dead_letter_days=30, now=NOW
        )
    assert (purged.raw, purged.minute, purged.hour, purged.dead_letters) == (3, 0, 0, 1)
    assert [r.value for r in rows(db, Telemetry)] == [50.0]  # the recent one stays
    # a 2-hour chart around the old samples: no raw rows left, the minute roll-up answers
    with db.session() as s:
        chart = service.series(
            s,
            system_ctx(world.a),
            fleet["bin-1"],
            "fill",
            old - timedelta(hours=1),
            old + timedelta(hours=1),
        )
    assert chart["resolution"] == "1m"
    assert [p[1:] for p in chart["points"]] == [[20.0, 10.0, 30.0]]
    # later the minute roll-ups go too (hours are kept for ever with hour_days=0)
    with db.session() as s:
        purged = service.purge_telemetry(s, raw_days=2, minute_days=3, hour_days=0, now=NOW)
    assert purged.minute == 2 and purged.hour == 0
    with db.session() as s:
        chart = service.series(
            s,
            system_ctx(world.a),
            fleet["bin-1"],
            "fill",
            old - timedelta(hours=1),
            old + timedelta(hours=1),
        )
    assert chart["resolution"] == "1h"
    assert [p[1:] for p in chart["points"]] == [[20.0, 10.0, 30.0]]
    assert count(db, TelemetryRollup, TelemetryRollup.period == "h") == 3


def test_the_database_keeps_one_open_alarm_per_key(db, world):
    """raise_alarm checks for an open alarm first; the partial unique index makes that safe
    between processes (several ingesters), and a cleared alarm does not block a new one."""
    from sqlalchemy.exc import IntegrityError

    def alarm(status):
        return Alarm(
            community_id=world.a,
            dedup_key="camera:9:offline",
            source="test",
            kind="camera_offline",
            severity="major",
            message="x",
            status=status,
            started_at=NOW,
            last_seen_at=NOW,
            details={},
        )

    with db.session() as s:
        s.add(alarm("cleared"))
        s.add(alarm("active"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(alarm("acknowledged"))
    with db.session() as s:
        first, created = service.raise_alarm(
            s,
            community_id=world.a,
            dedup_key="camera:9:offline",
            kind="camera_offline",
            severity="major",
            message="x",
        )
        assert not created and first.occurrences == 2
    assert count(db, Alarm) == 2
