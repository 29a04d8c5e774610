"""Facility monitoring over HTTP: device registry, ingestion (device Basic auth and gateway
batches), rules, alarms, commands, charts, dead letters, the map and the pages."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import func, select

from linli.core.db import utcnow

PROBLEM = "application/problem+json"


def _problem(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status and body["detail"].strip()
    if code is not None:
        assert body["code"] == code, body
    return body


def _count(db, model, **where):
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def _basic(key, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


@pytest.fixture
def pm(client, world):
    """The property manager of community A (devices, rules, alarms, commands, tokens)."""
    return {"X-CSRF-Token": login(client, "property")}


@pytest.fixture
def devices(client, world, pm):
    base = f"/api/v1/communities/{world.a}/devices"
    made = {}
    for name, profile, extra in (
        (
            "1号楼垃圾桶",
            "bin_level",
            {"building_id": world.buildings_a[0], "map_x": 0.3, "map_y": 0.4},
        ),
        ("东门消防栓", "fire_hydrant", {"key": "hydrant-east-01"}),
    ):
        r = client.post(base, headers=pm, json={"name": name, "profile": profile, **extra})
        assert r.status_code == 201, r.text
        made[profile] = r.json()
    return made


def _ingest(client, device, body, **kw):
    headers = {**_basic(device["key"], device["secret"]), "content-type": "application/json"}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/v1/ingest/telemetry", content=raw, headers=headers, **kw)


# -- registry ----------------------------------------------------------------------------------


def test_register_device_secret_once_and_registry(client, world, db, pm, devices):
    from linli.iot.models import Device, Rule

    a = world.a
    bin_ = devices["bin_level"]
    assert len(bin_["secret"]) >= 16 and bin_["profile"] == "bin_level"
    assert devices["fire_hydrant"]["key"] == "hydrant-east-01"
    r = client.get(f"/api/v1/communities/{a}/devices/{bin_['id']}")
    assert r.status_code == 200 and "secret" not in r.json()
    assert r.json()["status"] == "offline"  # never heard from
    assert r.json()["map_x"] == 0.3
    listed = client.get(f"/api/v1/communities/{a}/devices").json()
    assert {d["key"] for d in listed} == {bin_["key"], "hydrant-east-01"}
    only = client.get(f"/api/v1/communities/{a}/devices", params={"profile": "fire_hydrant"}).json()
    assert [d["key"] for d in only] == ["hydrant-east-01"]
    # the default rules of each profile came with its first device
    with db.session() as s:
        names = set(s.scalars(select(Rule.name).where(Rule.community_id == a)))
    assert {"Bin nearly full", "Water pressure low", "Device offline"} <= names
    profiles = client.get(f"/api/v1/communities/{a}/device-profiles").json()
    bin_profile = next(p for p in profiles if p["key"] == "bin_level")
    assert {"key": "fill", "unit": "%", "kind": "number", "min": 0, "max": 100} in bin_profile[
        "metrics"
    ]
    assert bin_profile["report_interval_s"] == 300

    # bad input: 4xx problems and nothing saved
    before = _count(db, Device)
    base = f"/api/v1/communities/{a}/devices"
    body = _problem(
        client.post(base, headers=pm, json={"name": "x", "profile": "bin_level", "map_x": 1.5}), 422
    )
    assert any(e["field"] == "map_x" for e in body["errors"])
    _problem(client.post(base, headers=pm, json={"name": "x"}), 422)
    _problem(client.post(base, headers=pm, json={"name": "x", "profile": "toaster"}), 404)
    _problem(
        client.post(
            base, headers=pm, json={"name": "x", "profile": "bin_level", "key": "hydrant-east-01"}
        ),
        409,
    )
    _problem(
        client.post(base, headers=pm, json={"name": "x", "profile": "bin_level", "key": "a/b#"}),
        422,
    )
    _problem(
        client.post(
            base, headers=pm, json={"name": "x", "profile": "bin_level", "building_id": 987654}
        ),
        404,
    )
    r = client.post(base, headers={**pm, "content-type": "application/json"}, content=b'{"name": ')
    _problem(r, 400, "malformed_json")
    assert _count(db, Device) == before

    # edit: place it on the site plan, disable it
    r = client.patch(f"{base}/{bin_['id']}", headers=pm, json={"map_x": 0.5, "location": "北门"})
    assert r.status_code == 200 and r.json()["map_x"] == 0.5 and r.json()["location"] == "北门"
    _problem(client.patch(f"{base}/{bin_['id']}", headers=pm, json={"name": None}), 422)
    _problem(client.patch(f"{base}/{bin_['id']}", headers=pm, json={"map_y": -1}), 422)


def test_custom_profile(client, world, pm):
    base = f"/api/v1/communities/{world.a}/device-profiles"
    good = {
        "key": "air_quality",
        "name": "Air quality",
        "name_zh": "空气质量",
        "category": "environment",
        "report_interval_s": 120,
        "metrics": [{"key": "pm25", "unit": "µg/m³", "min": 0, "max": 1000}],
    }
    r = client.post(base, headers=pm, json=good)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    _problem(client.post(base, headers=pm, json=good), 409)
    _problem(client.post(base, headers=pm, json={**good, "key": "bin_level"}), 409)
    bad = {**good, "key": "x2", "metrics": [{"key": "a", "min": 5, "max": 1}]}
    _problem(client.post(base, headers=pm, json=bad), 422)
    dup = {**good, "key": "x3", "metrics": [{"key": "a"}, {"key": "a"}]}
    _problem(client.post(base, headers=pm, json=dup), 422)
    _problem(
        client.post(base, headers=pm, json={**good, "key": "x4", "category": "spaceship"}), 422
    )
    # a device of the new profile
    r = client.post(
        f"/api/v1/communities/{world.a}/devices",
        headers=pm,
        json={"name": "空气站", "profile_id": pid},
    )
    assert r.status_code == 201 and r.json()["profile"] == "air_quality"
    # built-in profiles are read-only
    builtin = next(p for p in client.get(base).json() if p["key"] == "bin_level")
    _problem(
        client.put(f"{base}/{builtin['id']}", headers=pm, json={**good, "key": "bin_level"}), 403
    )


# -- HTTP ingestion by one device --------------------------------------------------------------


def test_device_posts_telemetry_with_basic_auth(client, world, db, devices):
    from linli.iot.models import DeadLetter, Telemetry

    dev = devices["fire_hydrant"]
    now = utcnow()
    r = _ingest(
        client,
        dev,
        {
            "ts": (now - timedelta(seconds=30)).isoformat(),
            "values": {"pressure": 0.32, "leak": False},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["samples"] == 2 and body["rejections"] == []
    # the same message again: accepted, stored once
    r = _ingest(
        client,
        dev,
        {
            "ts": (now - timedelta(seconds=30)).isoformat(),
            "values": {"pressure": 0.32, "leak": False},
        },
    )
    assert r.json()["duplicates"] == 2 and r.json()["samples"] == 0
    assert _count(db, Telemetry, device_id=dev["id"]) == 2

    # refused messages: 422 naming the reason, and a dead letter for staff
    body = _problem(_ingest(client, dev, {"values": {"pressure": 9.9}}), 422, "out_of_range")
    assert "pressure" in body["detail"]
    _problem(_ingest(client, dev, {"values": {"voltage": 3}}), 422, "unknown_metric")
    _problem(_ingest(client, dev, {"values": {"pressure": "high"}}), 422, "wrong_type")
    _problem(
        _ingest(client, dev, {"ts": "yesterday", "values": {"pressure": 0.3}}), 422, "bad_timestamp"
    )
    _problem(
        _ingest(
            client, dev, {"ts": (now + timedelta(hours=2)).isoformat(), "values": {"pressure": 0.3}}
        ),
        422,
        "future_timestamp",
    )
    _problem(_ingest(client, dev, {"values": {}}), 422, "malformed")
    assert _count(db, DeadLetter, device_id=dev["id"]) == 6
    _problem(_ingest(client, dev, b'{"values": {"pressure": 0.3'), 400, "malformed_json")
    _problem(_ingest(client, dev, [1, 2]), 422, "malformed")
    assert _count(db, Telemetry, device_id=dev["id"]) == 2

    # credentials
    _problem(
        client.post("/api/v1/ingest/telemetry", json={"values": {"pressure": 0.3}}),
        401,
        "device_auth_required",
    )
    wrong = {**dev, "secret": "not-the-secret-at-all"}
    _problem(
        _ingest(client, wrong, {"values": {"pressure": 0.3}}), 401, "invalid_device_credentials"
    )
    _problem(_ingest(client, {**dev, "key": "nobody"}, {"values": {"pressure": 0.3}}), 401)
    r = client.post(
        "/api/v1/ingest/telemetry",
        content=b"x",
        headers={"Authorization": "Basic !!!", "content-type": "application/json"},
    )
    _problem(r, 401)
    r = client.post(
        "/api/v1/ingest/telemetry",
        content=b"pressure=1",
        headers={**_basic(dev["key"], dev["secret"]), "content-type": "text/plain"},
    )
    _problem(r, 415)

    # latest values and the device is online now
    a = world.a
    login(client, "guard")
    latest = client.get(f"/api/v1/communities/{a}/devices/{dev['id']}/latest").json()
    assert {v["metric"]: v["value"] for v in latest} == {"pressure": 0.32, "leak": 0.0}
    assert next(v for v in latest if v["metric"] == "pressure")["unit"] == "MPa"
    d = client.get(f"/api/v1/communities/{a}/devices/{dev['id']}").json()
    assert d["status"] == "ok" and d["online"] and d["accepted_count"] == 2
    assert d["rejected_count"] == 6


def test_disabled_device_is_refused(client, world, pm, devices):
    dev = devices["fire_hydrant"]
    r = client.patch(
        f"/api/v1/communities/{world.a}/devices/{dev['id']}", headers=pm, json={"enabled": False}
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    _problem(_ingest(client, dev, {"values": {"pressure": 0.3}}), 403, "device_disabled")


# -- gateway batches ---------------------------------------------------------------------------


def _token(client, world, headers, perms):
    r = client.post(
        f"/api/v1/communities/{world.a}/tokens",
        headers=headers,
        json={"name": f"gateway-{'-'.join(perms)}", "permissions": perms},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_gateway_batch_with_token(client, world, db, pm, devices):
    from linli.iot.models import DeadLetter, Device

    # a device of community B: its key must not be usable from A's gateway
    login(client, "admin")
    r = client.post(
        f"/api/v1/communities/{world.b}/devices",
        headers={"X-CSRF-Token": login(client, "admin")},
        json={"name": "B bin", "profile": "bin_level", "key": "b-bin-1"},
    )
    assert r.status_code == 201
    pm = {"X-CSRF-Token": login(client, "property")}
    gateway = _token(client, world, pm, ["devices.ingest"])
    client.cookies.clear()

    now = utcnow()
    ts = [(now - timedelta(seconds=60 - i)).isoformat() for i in range(4)]
    bin_key, hyd = devices["bin_level"]["key"], "hydrant-east-01"
    batch = [
        {"device": bin_key, "ts": ts[0], "values": {"fill": 40, "distance": 120}},
        {"device": hyd, "ts": ts[0], "values": {"pressure": 0.3}},
        {"device": bin_key, "ts": ts[1], "values": {"fill": 140}},  # out of range
        {"device": "b-bin-1", "ts": ts[1], "values": {"fill": 10}},  # other community
        "not an object",
        {"ts": ts[2], "values": {"fill": 1}},  # no device
        {"device": bin_key, "ts": ts[2], "values": {"fill": 45}},
        {"device": hyd, "ts": ts[3], "values": {"pressure": "low"}},
    ]
    url = f"/api/v1/communities/{world.a}/ingest"
    r = client.post(url, headers=gateway, json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["messages"] == 8 and body["accepted"] == 3 and body["rejected"] == 5
    by_index = {x["index"]: x for x in body["rejections"]}
    assert set(by_index) == {2, 3, 4, 5, 7}
    assert by_index[2]["reason"] == "out_of_range" and by_index[2]["device"] == bin_key
    assert by_index[3]["reason"] == "unknown_device"
    assert by_index[4]["reason"] == "malformed" and by_index[5]["reason"] == "malformed"
    assert by_index[7]["reason"] == "wrong_type" and by_index[7]["device"] == hyd
    assert all(x["message"] for x in body["rejections"])
    with db.session() as s:
        b_dev = s.scalar(select(Device).where(Device.key == "b-bin-1"))
        assert b_dev.accepted_count == 0 and b_dev.last_seen_at is None
    assert _count(db, DeadLetter, community_id=world.a) == 5

    # shapes that are not a batch
    _problem(
        client.post(url, headers={**gateway, "content-type": "application/json"}, content=b"[{"),
        400,
        "malformed_json",
    )
    _problem(client.post(url, headers=gateway, json={"device": bin_key}), 422, "not_a_batch")
    _problem(client.post(url, headers=gateway, json=[]), 422, "empty_batch")
    # a token of another kind, another community
    reader = _token(client, world, {"X-CSRF-Token": login(client, "property")}, ["iot.read"])
    client.cookies.clear()
    _problem(client.post(url, headers=reader, json=batch[:1]), 403, "permission_denied")
    _problem(
        client.post(f"/api/v1/communities/{world.b}/ingest", headers=gateway, json=batch[:1]), 404
    )
    # the token reads nothing else
    _problem(client.get(f"/api/v1/communities/{world.a}/devices", headers=gateway), 403)


# -- rules, alarms, work orders ----------------------------------------------------------------


def test_rules_validation_and_alarm_lifecycle(client, world, db, pm, devices):
    from linli.iot.models import Alarm, Rule
    from linli.workorders.models import WorkOrder

    a = world.a
    base = f"/api/v1/communities/{a}/alarm-rules"
    rules = client.get(base).json()
    bin_profile = devices["bin_level"]["profile_id"]
    before = _count(db, Rule)
    cases = [
        (
            {
                "name": "x",
                "severity": "major",
                "profile_id": bin_profile,
                "condition": {"kind": "threshold", "metric": "voltage", "op": ">", "value": 1},
            },
            "condition",
        ),
        (
            {
                "name": "x",
                "severity": "major",
                "profile_id": bin_profile,
                "condition": {"kind": "sometimes"},
            },
            "condition",
        ),
        (
            {
                "name": "x",
                "severity": "major",
                "profile_id": bin_profile,
                "condition": {"kind": "threshold", "metric": "fill", "op": "~", "value": 1},
            },
            "condition",
        ),
        (
            {
                "name": "x",
                "severity": "apocalyptic",
                "profile_id": bin_profile,
                "condition": {"kind": "missing", "seconds": 60},
            },
            "severity",
        ),
        (
            {"name": "x", "severity": "major", "condition": {"kind": "missing", "seconds": 60}},
            "profile_id",
        ),
        (
            {
                "name": "x",
                "severity": "major",
                "profile_id": bin_profile,
                "category": "moon",
                "condition": {"kind": "missing", "seconds": 60},
            },
            "category",
        ),
    ]
    for body, field in cases:
        problem = _problem(client.post(base, headers=pm, json=body), 422)
        assert any(e["field"] == field for e in problem["errors"]), (field, problem)
    _problem(
        client.post(
            base, headers=pm, json={**cases[0][0], "device_id": 987654, "profile_id": None}
        ),
        404,
    )
    assert _count(db, Rule) == before

    # a stricter rule for the bin device only, overriding the profile rule of the same name
    r = client.post(
        base,
        headers=pm,
        json={
            "name": "Bin nearly full",
            "severity": "major",
            "device_id": devices["bin_level"]["id"],
            "category": "sanitation",
            "condition": {
                "kind": "threshold",
                "metric": "fill",
                "op": ">=",
                "value": 80,
                "clear": 50,
            },
        },
    )
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    r = client.put(f"{base}/{rule_id}", headers=pm, json={**r.json(), "severity": "critical"})
    assert r.status_code == 200 and r.json()["severity"] == "critical"
    assert len(client.get(base).json()) == len(rules) + 1
    # another community's rule id
    _problem(client.put(f"{base}/987654", headers=pm, json={**r.json()}), 404)

    dev = devices["bin_level"]
    now = utcnow()
    r = _ingest(
        client, dev, {"ts": (now - timedelta(seconds=20)).isoformat(), "values": {"fill": 85}}
    )
    assert r.status_code == 200 and r.json()["alarms_raised"] == 1
    alarms = client.get(f"/api/v1/communities/{a}/alarms", params={"open": True}).json()
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["severity"] == "critical" and alarm["kind"] == "Bin nearly full"
    assert alarm["status"] == "active" and alarm["device_id"] == dev["id"] and alarm["value"] == 85
    assert alarm["work_order_id"] is not None
    with db.session() as s:
        wo = s.get(WorkOrder, alarm["work_order_id"])
        assert (
            wo.source == "alarm"
            and wo.category == "sanitation"
            and wo.building_id == world.buildings_a[0]
        )
    # the map shows the device in alarm
    fm = client.get(f"/api/v1/communities/{a}/facility-map").json()
    states = {d["id"]: d["status"] for d in fm["devices"]}
    assert states[dev["id"]] == "alarm" and fm["counts"]["alarm"] == 1
    assert fm["buildings"][0]["name"] == "1号楼"

    # acknowledge, then clear; wrong transitions are conflicts
    url = f"/api/v1/communities/{a}/alarms/{alarm['id']}"
    r = client.post(f"{url}/acknowledge", headers=pm)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    _problem(client.post(f"{url}/acknowledge", headers=pm), 409, "bad_transition")
    r = client.post(f"{url}/clear", headers=pm)
    assert (
        r.status_code == 200
        and r.json()["status"] == "cleared"
        and r.json()["cleared_by"] == "property"
    )
    _problem(client.post(f"{url}/clear", headers=pm), 409)
    assert (
        client.get(f"/api/v1/communities/{a}/alarms", params={"status": "cleared"}).json()[0]["id"]
        == alarm["id"]
    )
    _problem(client.get(f"/api/v1/communities/{a}/alarms", params={"status": "bogus"}), 422)
    _problem(
        client.post(f"/api/v1/communities/{a}/alarms/987654/clear", headers=pm),
        404,
        "alarm_not_found",
    )
    assert _count(db, Alarm) == 1

    # a resident may not handle alarms; staff of community B cannot see A's alarm
    csrf = login(client, "resident")
    _problem(client.post(f"{url}/acknowledge", headers={"X-CSRF-Token": csrf}), 403)
    csrf = login(client, "staff_b")
    _problem(client.get(url), 404)
    _problem(client.get(f"/api/v1/communities/{world.b}/alarms/{alarm['id']}"), 404)


def test_series_for_charts(client, world, pm, devices):
    dev = devices["fire_hydrant"]
    now = utcnow()
    for i in range(5):
        r = _ingest(
            client,
            dev,
            {
                "ts": (now - timedelta(minutes=50 - i * 10)).isoformat(),
                "values": {"pressure": 0.3 + i / 100},
            },
        )
        assert r.status_code == 200
    url = f"/api/v1/communities/{world.a}/devices/{dev['id']}/series"
    r = client.get(url, params={"metric": "pressure", "range": "1h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolution"] == "raw" and body["unit"] == "MPa" and len(body["points"]) == 5
    assert body["points"][-1][1] == pytest.approx(0.34)
    for rng, resolution in (("24h", "1m"), ("7d", "1h"), ("30d", "1h")):
        body = client.get(url, params={"metric": "pressure", "range": rng}).json()
        assert body["resolution"] == resolution and body["points"], rng
        _t, avg, lo, hi = body["points"][-1]
        assert lo <= avg <= hi
    _problem(client.get(url, params={"metric": "voltage", "range": "1h"}), 422)
    _problem(client.get(url, params={"metric": "pressure", "range": "1y"}), 422)
    _problem(
        client.get(
            url,
            params={
                "metric": "pressure",
                "start": now.isoformat(),
                "end": (now - timedelta(hours=1)).isoformat(),
            },
        ),
        422,
    )
    _problem(client.get(url, params={"metric": "pressure", "start": "soon"}), 422)
    _problem(
        client.get(f"/api/v1/communities/{world.a}/devices/987654/series", params={"metric": "x"}),
        404,
    )


def test_commands(client, world, pm, devices):
    dev = devices["fire_hydrant"]
    url = f"/api/v1/communities/{world.a}/devices/{dev['id']}/commands"
    r = client.post(
        url, headers=pm, json={"name": "self_test", "params": {"level": 2}, "timeout_s": 30}
    )
    assert r.status_code == 201, r.text
    cmd = r.json()
    assert cmd["status"] in ("pending", "sent") and cmd["requested_by"] == "property"
    got = client.get(f"/api/v1/communities/{world.a}/commands/{cmd['id']}").json()
    assert got["name"] == "self_test" and got["params"] == {"level": 2}
    assert [c["id"] for c in client.get(url).json()] == [cmd["id"]]
    _problem(client.post(url, headers=pm, json={"name": ""}), 422)
    _problem(client.post(url, headers=pm, json={"name": "x", "timeout_s": 0}), 422)
    _problem(client.post(url, headers=pm, json={"name": "x", "params": "loud"}), 422)
    _problem(
        client.post(
            f"/api/v1/communities/{world.a}/devices/987654/commands", headers=pm, json={"name": "x"}
        ),
        404,
    )
    csrf = login(client, "guard")  # sees devices, may not command them
    _problem(client.post(url, headers={"X-CSRF-Token": csrf}, json={"name": "x"}), 403)
    login(client, "staff_b")
    _problem(client.get(f"/api/v1/communities/{world.a}/commands/{cmd['id']}"), 404)


def test_dead_letters_and_other_community(client, world, pm, devices):
    dev = devices["bin_level"]
    _ingest(client, dev, {"values": {"fill": -5}})
    rows = client.get(f"/api/v1/communities/{world.a}/dead-letters").json()
    assert rows and rows[0]["reason"] == "out_of_range" and rows[0]["device_id"] == dev["id"]
    assert '"fill": -5' in rows[0]["payload"]
    login(client, "staff_b")
    assert client.get(f"/api/v1/communities/{world.b}/dead-letters").json() == []
    for path in (
        f"/devices/{dev['id']}",
        f"/devices/{dev['id']}/latest",
        "/dead-letters",
        "/facility-map",
    ):
        _problem(client.get(f"/api/v1/communities/{world.a}{path}"), 404)


def test_alarm_events_reach_the_live_stream(client, world, db, app, devices):
    """The alarm console and the map follow iot.alarm.* and iot.device.* on the event stream:
    the dispatcher publishes them to the bus the SSE route reads."""
    bus = app.state.bus
    sub = bus.subscribe()
    dev = devices["bin_level"]
    _ingest(
        client, dev, {"ts": (utcnow() - timedelta(seconds=5)).isoformat(), "values": {"fill": 97}}
    )
    app.state.dispatcher.run_once()
    names = []
    while not sub.queue.empty():
        ev = sub.queue.get_nowait()
        names.append(ev.name)
        assert ev.community_id == world.a
    assert "iot.alarm.raised" in names and "iot.device.online" in names
    bus.unsubscribe(sub)


# -- pages -------------------------------------------------------------------------------------


def test_pages_in_english_and_chinese(client, world, pm, devices):
    a = world.a
    dev = devices["bin_level"]
    _ingest(
        client, dev, {"ts": (utcnow() - timedelta(seconds=5)).isoformat(), "values": {"fill": 95}}
    )
    for lang, words in (
        ("en", ("Devices", "Alarm console", "Bin nearly full", "Facility map")),
        ("zh_CN", ("设备", "告警台", "垃圾桶将满", "设施地图")),
    ):
        client.cookies.set("lang", lang)
        pages = {
            "devices": client.get(f"/c/{a}/iot/devices"),
            "device": client.get(f"/c/{a}/iot/devices/{dev['id']}"),
            "alarms": client.get(f"/c/{a}/iot/alarms"),
            "map": client.get(f"/c/{a}/iot/map"),
            "rules": client.get(f"/c/{a}/iot/rules"),
            "dead": client.get(f"/c/{a}/iot/dead-letters"),
            "new": client.get(f"/c/{a}/iot/devices/new"),
        }
        for name, r in pages.items():
            assert r.status_code == 200, (lang, name, r.text[:300])
        text = " ".join(r.text for r in pages.values())
        for w in words:
            assert w in text, (lang, w)
        if lang == "zh_CN":
            for english in ("Log out", "Latest values", "Acknowledge", "Dead letters<"):
                assert english not in text, english
    device_page = pages["device"].text
    assert 'id="device-chart"' in device_page and "/static/vendor/echarts.min.js" in device_page
    assert f'data-series-url="/api/v1/communities/{a}/devices/{dev["id"]}/series"' in device_page
    for r in ("1h", "24h", "7d", "30d"):
        assert f'data-chart-range="{r}"' in device_page
    assert "<script>" not in device_page  # CSP: no inline scripts
    alarms = pages["alarms"].text
    assert f"/api/v1/communities/{a}/events/stream?pattern=iot.alarm.*" in alarms
    assert 'data-alarm="' in alarms
    fragment = client.get(f"/c/{a}/iot/alarms", params={"fragment": "rows"})
    assert (
        fragment.status_code == 200
        and "<html" not in fragment.text
        and 'data-alarm="' in fragment.text
    )
    svg = pages["map"].text
    assert "<svg" in svg and f'data-device="{dev["id"]}"' in svg and "dev state-alarm" in svg
    assert "data-live-map" in svg


def test_register_device_page_shows_the_secret_once(client, world, db, pm):
    from linli.iot.models import Device
    from linli.iot.profiles import ensure_builtin_profiles

    with db.session() as s:
        pid = ensure_builtin_profiles(s)["smoke_detector"].id
    a = world.a
    r = client.post(
        f"/c/{a}/iot/devices/new",
        data={"csrf_token": pm["X-CSRF-Token"], "name": "", "profile_id": str(pid), "map_x": "3"},
    )
    assert r.status_code == 422
    assert 'class="field has-error"' in r.text
    assert _count(db, Device) == 0
    r = client.post(
        f"/c/{a}/iot/devices/new",
        data={
            "csrf_token": pm["X-CSRF-Token"],
            "name": "3号楼烟感",
            "profile_id": str(pid),
            "key": "smoke-b3-1",
            "building_id": str(world.buildings_a[1]),
        },
    )
    assert r.status_code == 200, r.text[:500]
    secret = re.search(r"<code class=\"secret\" data-secret>([^<]+)</code>", r.text).group(1)
    assert len(secret) >= 16
    dev = {"key": "smoke-b3-1", "secret": secret}
    assert _ingest(client, dev, {"values": {"smoke": False, "battery": 80}}).status_code == 200
    with db.session() as s:
        d = s.scalar(select(Device).where(Device.key == "smoke-b3-1"))
        page = client.get(f"/c/{a}/iot/devices/{d.id}").text
    assert secret not in page
    # the settings form: bad value is shown next to its field; a good one is saved
    r = client.post(
        f"/c/{a}/iot/devices/{d.id}",
        data={"csrf_token": pm["X-CSRF-Token"], "name": "3号楼烟感", "map_x": "2", "enabled": "on"},
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/iot/devices/{d.id}",
        data={
            "csrf_token": pm["X-CSRF-Token"],
            "name": "三号楼烟感",
            "map_x": "0.7",
            "map_y": "0.2",
            "enabled": "on",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    # a command from the page
    r = client.post(
        f"/c/{a}/iot/devices/{d.id}/commands",
        data={"csrf_token": pm["X-CSRF-Token"], "command": "silence", "params": "{oops"},
    )
    assert r.status_code == 422
    r = client.post(
        f"/c/{a}/iot/devices/{d.id}/commands",
        data={"csrf_token": pm["X-CSRF-Token"], "command": "silence", "params": '{"s": 60}'},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_alarm_console_actions_and_rule_form(client, world, db, pm, devices):
    a = world.a
    dev = devices["bin_level"]
    _ingest(
        client, dev, {"ts": (utcnow() - timedelta(seconds=5)).isoformat(), "values": {"fill": 99}}
    )
    alarm = client.get(f"/api/v1/communities/{a}/alarms").json()[0]
    r = client.post(
        f"/c/{a}/iot/alarms/{alarm['id']}/acknowledge",
        data={"csrf_token": pm["X-CSRF-Token"]},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and "<html" not in r.text and "status-acknowledged" in r.text
    r = client.post(
        f"/c/{a}/iot/alarms/{alarm['id']}/clear",
        data={"csrf_token": pm["X-CSRF-Token"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/c/{a}/iot/alarms/{alarm['id']}/clear", data={"csrf_token": pm["X-CSRF-Token"]}
    )
    assert r.status_code == 409
    r = client.post(
        f"/c/{a}/iot/alarms/{alarm['id']}/explode", data={"csrf_token": pm["X-CSRF-Token"]}
    )
    assert r.status_code == 404

    scope = f"profile:{devices['fire_hydrant']['profile_id']}"
    r = client.post(
        f"/c/{a}/iot/rules",
        data={
            "csrf_token": pm["X-CSRF-Token"],
            "name": "Pressure high",
            "scope": scope,
            "severity": "major",
            "category": "water",
            "condition": "{not json",
        },
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/iot/rules",
        data={
            "csrf_token": pm["X-CSRF-Token"],
            "name": "Pressure high",
            "scope": scope,
            "severity": "major",
            "category": "water",
            "condition": '{"kind": "threshold", "metric": "flow", "op": ">", "value": 1}',
        },
    )
    assert r.status_code == 422 and "flow" in r.text
    r = client.post(
        f"/c/{a}/iot/rules",
        data={
            "csrf_token": pm["X-CSRF-Token"],
            "name": "Pressure high",
            "scope": scope,
            "severity": "major",
            "category": "water",
            "enabled": "on",
            "create_work_order": "on",
            "condition": '{"kind": "threshold", "metric": "pressure", "op": ">", "value": 1.6}',
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Pressure high" in client.get(f"/c/{a}/iot/rules").text


ROLES_PAGES = {
    # role: (device pages, manage pages)
    "admin": (200, 200),
    "staff": (200, 403),
    "property": (200, 200),
    "guard": (200, 403),
    "grid": (403, 403),
    "resident": (403, 403),
    "pro": (403, 403),
}


@pytest.mark.parametrize("role", sorted(ROLES_PAGES))
def test_iot_pages_by_role(client, world, role):
    login(client, role)
    read, manage = ROLES_PAGES[role]
    a = world.a
    for path in ("/iot/devices", "/iot/alarms", "/iot/map", "/iot/rules", "/iot/dead-letters"):
        assert client.get(f"/c/{a}{path}").status_code == read, path
    assert client.get(f"/c/{a}/iot/devices/new").status_code == manage
    page = client.get(f"/c/{a}").text
    assert (f'href="/c/{a}/iot/devices"' in page) == (read == 200)


@pytest.mark.parametrize("huge", ["99999999999999999999", "9223372036854775808", "2147483648"])
def test_ids_and_values_beyond_the_database_range_are_4xx(client, world, pm, devices, huge):
    a = world.a
    for method, path, kwargs in (
        ("GET", f"/api/v1/communities/{a}/devices/{huge}", {}),
        ("PATCH", f"/api/v1/communities/{a}/devices/{huge}", {"json": {"name": "x"}}),
        ("GET", f"/api/v1/communities/{a}/devices/{huge}/series?metric=fill", {}),
        ("POST", f"/api/v1/communities/{a}/alarms/{huge}/acknowledge", {}),
        ("GET", f"/api/v1/communities/{a}/commands/{huge}", {}),
        (
            "PUT",
            f"/api/v1/communities/{a}/alarm-rules/{huge}",
            {
                "json": {
                    "name": "x",
                    "device_id": devices["bin_level"]["id"],
                    "condition": {"kind": "missing", "seconds": 60},
                }
            },
        ),
        (
            "POST",
            f"/api/v1/communities/{a}/devices",
            {"json": {"name": "x", "profile": "bin_level", "building_id": int(huge)}},
        ),
        ("GET", f"/c/{a}/iot/devices/{huge}", {}),
    ):
        r = client.request(method, path, headers=pm, **kwargs)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:300])


def test_nul_characters_are_refused_not_500(client, world, pm, devices):
    dev = devices["bin_level"]
    r = _ingest(client, dev, {"values": {"fi\u0000ll": 3}})
    _problem(r, 422, "malformed")
    r = _ingest(client, {**dev, "key": "a\u0000b"}, {"values": {"fill": 3}})
    assert r.status_code == 401
    gateway = _token(client, world, pm, ["devices.ingest"])
    r = client.post(
        f"/api/v1/communities/{world.a}/ingest",
        headers=gateway,
        json=[
            {"device": "x\u0000y", "values": {"fill": 1}},
            {"device": dev["key"], "values": {"f\u0000": 1}},
        ],
    )
    assert r.status_code == 200
    assert [x["reason"] for x in r.json()["rejections"]] == ["malformed", "malformed"]
    r = client.post(
        f"/api/v1/communities/{world.a}/devices",
        headers=pm,
        json={"name": "bad\u0000name", "profile": "bin_level"},
    )
    assert r.status_code in (201, 422), r.text[:300]
    r = client.post(
        f"/api/v1/communities/{world.a}/fiware/entities",
        headers=pm,
        json={"id": "urn:x:nul", "type": "WasteContainer", "binColor": "gr\u0000een"},
    )
    assert r.status_code in (200, 422), r.text[:300]
