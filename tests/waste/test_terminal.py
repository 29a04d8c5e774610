"""The terminal flow over HTTP and MQTT: identify, open the lid (device command with ack and
timeout), weight and photo → deposit; points; bad input refused with nothing stored."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from linli.core.web import system_ctx
from linli.iot.models import Command, Device
from linli.waste import service, terminal
from linli.waste.models import Deposit, PointEntry

from ._helpers import b64, make_site, photo, resident_card, token


def _url(cid: int, sid: int) -> str:
    return f"/api/v1/communities/{cid}/waste/stations/{sid}/terminal"


def _deposits(db: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count(Deposit.id))) or 0)


def _ack(db: Any, command_id: int, ok: bool = True) -> None:
    """What the ingester does with a lid's ``commands/ack`` message."""
    from linli.iot import service as iot

    with db.session() as s:
        cmd = s.get(Command, command_id)
        assert cmd is not None
        iot.ack_command(s, s.get(Device, cmd.device_id), command_id, ok, {"open": ok})


def test_http_flow_points_and_bad_input(
    client: Any, db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    site = make_site(db, world.a)
    resident_card(db, app.state.settings, world.a, world.residents_a[0], "CARD0001")
    h = {"Authorization": f"Bearer {token(db, world.a, ['waste.deposit'])}"}
    url = _url(world.a, site.station)
    # unknown card: 404, in the caller's language
    r = client.post(
        url,
        json={"op": "identify", "method": "card", "value": "NOPE"},
        headers={**h, "Accept-Language": "zh-CN"},
    )
    assert r.status_code == 404 and r.json()["code"] == "unknown_credential"
    assert "未知" in r.json()["detail"] or "卡" in r.json()["detail"]
    r = client.post(url, json={"op": "identify", "method": "card"}, headers=h)
    assert r.status_code == 422
    r = client.post(url, content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = client.post(url, json={"op": "explode"}, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    # identify with the card
    r = client.post(url, json={"op": "identify", "method": "card", "value": "card0001"}, headers=h)
    assert r.status_code == 200, r.text
    sess = r.json()
    assert sess["status"] == "identified" and sess["points"] == 0
    assert {p["lang"] for p in sess["prompts"]} == {"zh", "en"}
    # open the kitchen bin: a lid command is issued
    r = client.post(
        url, json={"op": "open", "session_id": sess["session_id"], "category": "kitchen"}, headers=h
    )
    assert r.status_code == 200, r.text
    opened = r.json()
    assert opened["lid"] == "pending" and opened["command_id"]
    keys = [p["key"] for p in opened["prompts"]]
    assert "bin.kitchen" in keys and "break_bag" in keys
    with db.session() as s:
        cmd = s.get(Command, opened["command_id"])
        assert cmd is not None and cmd.name == "open_lid"
        lid = s.get(Device, cmd.device_id)
        assert lid is not None and lid.id == site.devices["kitchen.lid"]["device_id"]
    deposit = {
        "op": "deposit",
        "session_id": sess["session_id"],
        "weight_kg": 1.25,
        "photo_b64": b64(photo(shared_data)),
    }
    # the lid has not confirmed yet: refused, nothing stored
    r = client.post(url, json=deposit, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "lid_pending"
    _ack(db, opened["command_id"])
    # bad weights and photos: refused, nothing stored, the session stays usable
    for w, code in ((-0.4, "negative_weight"), (5000, "absurd_weight"), (0, "empty_deposit")):
        r = client.post(url, json={**deposit, "weight_kg": w}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == code, r.text
    r = client.post(url, json={**deposit, "weight_kg": "heavy"}, headers=h)
    assert r.status_code == 422
    r = client.post(url, json={**deposit, "photo_b64": b64(b"%PDF-1.4 not a photo")}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "bad_photo"
    r = client.post(url, json={**deposit, "photo_b64": "***"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "bad_base64"
    assert _deposits(db) == 0
    r = client.post(url, json=deposit, headers=h)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "valid" and d["points_awarded"] == 1 and d["points"] == 1
    with db.session() as s:
        dep = s.get(Deposit, d["deposit_id"])
        assert dep is not None and dep.weight_kg == 1.25 and dep.category == "kitchen"
        assert dep.building_id == world.buildings_a[0] and not dep.outside_hours
        assert app.state.files.get(dep.photo_sha256) == photo(shared_data)
    # the session is finished
    r = client.post(url, json=deposit, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "session_done"
    # another community's token cannot use this station
    hb = {"Authorization": f"Bearer {token(db, world.b, ['waste.deposit'])}"}
    r = client.post(_url(world.b, site.station), json={"op": "guide", "item": "电池"}, headers=hb)
    assert r.status_code == 404
    # a token without waste.deposit
    hr = {"Authorization": f"Bearer {token(db, world.a, ['waste.read'])}"}
    assert client.post(url, json={"op": "guide", "item": "电池"}, headers=hr).status_code == 403
    # guidance at the terminal
    r = client.post(url, json={"op": "guide", "item": "电池"}, headers=h)
    assert r.status_code == 200 and r.json()["category"] == "hazardous"
    said = {p["lang"]: p for p in r.json()["prompts"] if p["key"] == "which_bin"}
    assert said["zh"]["text"] == "电池属于有害垃圾，请投入红色有害垃圾桶。"
    assert client.get(said["zh"]["url"]).status_code == 200
    # an unknown English word: residual with the ask-staff hint, spoken too
    r = client.post(url, json={"op": "guide", "item": "zorblax"}, headers=h)
    assert r.status_code == 200 and r.json()["ask_staff"] is True
    assert "ask_staff" in {p["key"] for p in r.json()["prompts"]}
    for bad, code in (("", "empty_query"), ("x" * 10_000, "query_too_long")):
        r = client.post(url, json={"op": "guide", "item": bad}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == code


def test_lid_that_does_not_confirm_gives_no_valid_deposit(
    db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    site = make_site(db, world.a)
    resident_card(db, app.state.settings, world.a, world.residents_a[0], "C2")
    st, files = app.state.settings, app.state.files
    t0 = datetime(2026, 11, 20, 2, 0, tzinfo=ZoneInfo("UTC"))
    a = terminal.handle(
        db, st, files, site.station, {"op": "identify", "method": "card", "value": "C2"}, now=t0
    )
    assert a["ok"], a
    sid = a["session_id"]
    b = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": sid, "category": "recyclable"},
        now=t0,
    )
    assert b["ok"] and b["lid"] == "pending"
    dep = {
        "op": "deposit",
        "session_id": sid,
        "weight_kg": 0.8,
        "photo_b64": b64(photo(shared_data)),
    }
    c = terminal.handle(db, st, files, site.station, dep, now=t0 + timedelta(seconds=3))
    assert not c["ok"] and c["error"]["code"] == "lid_pending"
    assert _deposits(db) == 0
    # past the lid's timeout: recorded for the record as lid_failed, answered as an error
    late = t0 + timedelta(seconds=service.LID_TIMEOUT_S + 1)
    c = terminal.handle(db, st, files, site.station, {**dep, "lang": "zh"}, now=late)
    assert not c["ok"] and c["status"] == 409
    assert c["error"]["code"] == "lid_not_confirmed" and "投放口" in c["error"]["message"]
    with db.session() as s:
        deps = list(s.scalars(select(Deposit)))
        assert [d.status for d in deps] == ["lid_failed"]
        assert s.scalar(select(func.count(PointEntry.id))) == 0
    # a lid that answers "failed" is the same
    a = terminal.handle(
        db, st, files, site.station, {"op": "identify", "method": "card", "value": "C2"}, now=late
    )
    b = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": a["session_id"], "category": "residual"},
        now=late,
    )
    _ack(db, b["command_id"], ok=False)
    c = terminal.handle(
        db, st, files, site.station, {**dep, "session_id": a["session_id"]}, now=late
    )
    assert c["error"]["code"] == "lid_not_confirmed"
    with db.session() as s:
        assert s.scalar(select(func.count(Deposit.id)).where(Deposit.status == "valid")) == 0
        # statistics never count them
        stats = service.statistics(s, system_ctx(world.a), late.date(), late.date())
        assert stats["total_kg"] == 0 and stats["lid_failed"] == 2
    # an expired session
    d = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": a["session_id"], "category": "kitchen"},
        now=late + timedelta(minutes=30),
    )
    assert not d["ok"] and d["error"]["code"] in ("session_expired", "session_done")


def test_outside_hours_recorded_and_spoken(
    db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    site = make_site(db, world.a, hours=[("07:00", "09:00"), ("18:00", "20:00")])
    resident_card(db, app.state.settings, world.a, world.residents_a[0], "C3")
    st, files = app.state.settings, app.state.files
    # 12:00 in Shanghai: outside; the next window opens at 18:00
    noon = datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    a = terminal.handle(
        db, st, files, site.station, {"op": "identify", "method": "card", "value": "C3"}, now=noon
    )
    b = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": a["session_id"], "category": "residual"},
        now=noon,
    )
    assert b["outside_hours"] is True
    assert b["next_open"].startswith("2026-11-20T18:00")
    texts = {p["lang"]: p["text"] for p in b["prompts"] if p["key"] == "outside_hours"}
    assert "6 p m" in texts["en"] and "晚上6点" in texts["zh"]
    _ack(db, b["command_id"])
    c = terminal.handle(
        db,
        st,
        files,
        site.station,
        {
            "op": "deposit",
            "session_id": a["session_id"],
            "weight_kg": 2,
            "photo_b64": b64(photo(shared_data)),
        },
        now=noon,
    )
    assert c["ok"] and c["points_awarded"] == 0  # no points outside the hours
    with db.session() as s:
        dep = s.get(Deposit, c["deposit_id"])
        assert dep is not None and dep.outside_hours and dep.status == "valid"
        stats = service.statistics(s, system_ctx(world.a), noon.date(), noon.date())
        assert stats["outside_hours_deposits"] == 1


def test_visitor_is_not_a_resident(client: Any, db: Any, world: Any, app: Any) -> None:
    from linli.access import service as access
    from linli.access.schemas import CredentialIn, IdentityIn

    site = make_site(db, world.a)
    with db.session() as s:
        ctx = system_ctx(world.a)
        i = access.create_identity(s, ctx, IdentityIn(kind="visitor", name="访客"))
        access.add_credential(
            s, ctx, i.id, CredentialIn(kind="card", value="V1"), app.state.settings
        )
    h = {"Authorization": f"Bearer {token(db, world.a, ['waste.deposit'])}"}
    r = client.post(
        _url(world.a, site.station),
        json={"op": "identify", "method": "card", "value": "V1"},
        headers=h,
    )
    assert r.status_code == 403 and r.json()["code"] == "not_a_resident"


def test_face_identification_through_the_access_gallery(
    client: Any, db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    from linli.access import service as access
    from linli.access.schemas import ConsentIn, IdentityIn

    faces = shared_data / "faces"
    with db.session() as s:
        ctx = system_ctx(world.a)
        i = access.create_identity(
            s, ctx, IdentityIn(kind="resident", name="Obama", resident_id=world.residents_a[1])
        )
        access.record_consent(s, ctx, i.id, ConsentIn(given_by="Obama"))
        for p in sorted((faces / "gallery" / "obama").glob("*.jpg")):
            assert access.enroll_face(s, ctx, i.id, p.read_bytes(), app.state.settings).ok
    site = make_site(db, world.a)
    h = {"Authorization": f"Bearer {token(db, world.a, ['waste.deposit'])}"}
    r = client.post(
        _url(world.a, site.station),
        json={
            "op": "identify",
            "method": "face",
            "image_b64": b64((faces / "probe" / "obama1.jpg").read_bytes()),
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "face"
    with db.session() as s:
        from linli.waste.models import TerminalSession

        ts = s.get(TerminalSession, r.json()["session_id"])
        assert ts is not None and ts.resident_id == world.residents_a[1]
    r = client.post(
        _url(world.a, site.station),
        json={
            "op": "identify",
            "method": "face",
            "image_b64": b64((faces / "probe" / "alex_lacamoire1.jpg").read_bytes()),
        },
        headers=h,
    )
    assert r.status_code == 404 and r.json()["code"] == "unknown_person"
    r = client.post(
        _url(world.a, site.station),
        json={"op": "identify", "method": "face", "image_b64": b64(b"garbage")},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_photo"


def test_mqtt_terminal_and_lid_through_mosquitto(
    db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    import paho.mqtt.client as mqtt
    from iot._mqtt import SYSTEM_BROKER, forget_session, require_system_broker, wait_until
    from iot._mqtt import Device as DeviceClient

    from linli.iot.mqtt import BrokerAddress, MqttIngest
    from linli.waste.mqtt import TerminalBridge

    require_system_broker()
    site = make_site(db, world.a)
    resident_card(db, app.state.settings, world.a, world.residents_a[0], "MQ1")
    tag = uuid.uuid4().hex[:8]
    ing = MqttIngest(
        db,
        BrokerAddress(*SYSTEM_BROKER),
        client_id=f"linli-wst-{tag}",
        max_wait=0.02,
        sweep_every=3600,
    )
    ing.start(sweeper=False)
    # this terminal only: another test process on the same broker answers its own terminals
    bridge = TerminalBridge(
        db, app.state.settings, app.state.files, *SYSTEM_BROKER, terminal=site.terminal_key
    )
    bridge.start()
    lid_key = site.devices["kitchen.lid"]["key"]
    replies: list[dict[str, Any]] = []
    got = threading.Event()
    term = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"term-{tag}", protocol=mqtt.MQTTv311
    )

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        replies.append(json.loads(msg.payload))
        got.set()

    term.on_message = on_message
    lid = None
    try:
        assert ing.wait_connected(15) and bridge.wait_connected(15)

        def answer(dev: DeviceClient, cmd: dict[str, Any]) -> None:
            dev.publish("commands/ack", {"id": cmd["id"], "ok": True}, wait=False)

        lid = DeviceClient(SYSTEM_BROKER[1], lid_key, client_id=f"lid-{tag}", on_command=answer)
        assert lid.connect() and not lid.subscribe_commands().is_failure
        term.connect(*SYSTEM_BROKER)
        term.loop_start()
        base = f"linli/devices/{site.terminal_key}/waste"
        term.subscribe(f"{base}/reply", qos=1)

        def ask(req: dict[str, Any]) -> dict[str, Any]:
            got.clear()
            n = len(replies)
            term.publish(f"{base}/request", json.dumps(req), qos=1)
            wait_until(lambda: len(replies) > n, 30, f"the reply to {req['op']}")
            return replies[-1]

        # retry until the subscription is in place
        wait_until(lambda: ask({"id": 0, "op": "guide", "item": "电池"}).get("ok"), 30, "guide")
        a = ask({"id": 1, "op": "identify", "method": "card", "value": "MQ1", "lang": "zh"})
        assert a["id"] == 1 and a["ok"], a
        b = ask(
            {
                "id": 2,
                "op": "open",
                "session_id": a["session_id"],
                "category": "kitchen",
                "wait_s": 10,
            }
        )
        assert b["ok"] and b["lid"] == "open", b
        assert lid.commands and lid.commands[0]["name"] == "open_lid"
        assert any(p["url"].startswith("/waste/audio/") for p in b["prompts"])
        c = ask(
            {
                "id": 3,
                "op": "deposit",
                "session_id": a["session_id"],
                "weight_kg": 0.9,
                "photo_b64": b64(photo(shared_data)),
            }
        )
        assert c["ok"] and c["status"] == "valid" and c["points"] == 1, c
        bad = ask({"id": 4, "op": "identify", "method": "card", "value": "NOBODY", "lang": "en"})
        assert not bad["ok"] and bad["error"]["code"] == "unknown_credential"
        junk_n = len(replies)
        term.publish(f"{base}/request", b"\xff\xfe not json", qos=1)
        wait_until(lambda: len(replies) > junk_n, 30, "the reply to junk")
        assert replies[-1]["error"]["code"] == "malformed_json"
    finally:
        term.loop_stop()
        term.disconnect()
        if lid is not None:
            lid.close()
        bridge.stop()
        ing.stop()
        forget_session(f"linli-wst-{tag}")


def test_qr_codes_resident_and_visitor(client: Any, db: Any, world: Any, app: Any) -> None:
    from conftest import login

    from linli.access import service as access
    from linli.access.schemas import VisitorIn

    site = make_site(db, world.a)
    settings = app.state.settings
    with db.session() as s:
        tok = service.resident_qr_token(s, system_ctx(world.a), settings, world.residents_a[0])
        other = service.resident_qr_token(s, system_ctx(world.b), settings, world.residents_b[0])
        now = datetime.now(ZoneInfo("UTC"))
        _vp, _ident, visitor_tok = access.create_visitor(
            s,
            system_ctx(world.a),
            VisitorIn(
                name="访客",
                valid_from=now - timedelta(hours=1),
                valid_until=now + timedelta(hours=2),
                host_resident_id=world.residents_a[0],
            ),
            settings,
        )
    h = {"Authorization": f"Bearer {token(db, world.a, ['waste.deposit'])}"}
    url = _url(world.a, site.station)
    r = client.post(url, json={"op": "identify", "method": "qr", "value": tok}, headers=h)
    assert r.status_code == 200 and r.json()["method"] == "qr", r.text
    for bad in (tok[:-2] + "xx", other, "not a token"):
        r = client.post(url, json={"op": "identify", "method": "qr", "value": bad}, headers=h)
        assert r.status_code == 404 and r.json()["code"] == "unknown_credential"
    r = client.post(url, json={"op": "identify", "method": "qr", "value": visitor_tok}, headers=h)
    assert r.status_code == 403 and r.json()["code"] == "not_a_resident"
    # the resident finds the code on the guide page
    login(client, "resident")
    r = client.get(f"/c/{world.a}/waste/guide")
    assert r.status_code == 200 and 'id="waste-qr"' in r.text and "<svg" in r.text


def test_lid_out_of_service_and_double_deposit(
    db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    site = make_site(db, world.a)
    resident_card(db, app.state.settings, world.a, world.residents_a[0], "D1")
    st, files = app.state.settings, app.state.files
    with db.session() as s:
        lid = s.get(Device, site.devices["hazardous.lid"]["device_id"])
        assert lid is not None
        lid.enabled = False
    a = terminal.handle(
        db, st, files, site.station, {"op": "identify", "method": "card", "value": "D1"}
    )
    b = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": a["session_id"], "category": "hazardous"},
    )
    assert not b["ok"] and b["error"]["code"] == "lid_unavailable" and b["status"] == 409
    # a bin without a lid (bulky area): open at once, the deposit is valid
    b = terminal.handle(
        db,
        st,
        files,
        site.station,
        {"op": "open", "session_id": a["session_id"], "category": "bulky"},
    )
    assert b["ok"] and b["lid"] == "open" and b["command_id"] is None
    dep = {
        "op": "deposit",
        "session_id": a["session_id"],
        "weight_kg": 25.0,
        "photo_b64": b64(photo(shared_data)),
    }
    c = terminal.handle(db, st, files, site.station, dep)
    assert c["ok"] and c["status"] == "valid"
    c2 = terminal.handle(db, st, files, site.station, dep)
    assert not c2["ok"] and c2["error"]["code"] == "session_done"
