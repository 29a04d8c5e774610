"""A resident's own PIN (a way in without a face, always), the visitor log, and the gate-open
command reaching the gate device through the machine's Mosquitto."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from conftest import login
from sqlalchemy import select

from linli.access import service
from linli.access.models import Credential, Gate
from linli.access.schemas import GateIn, VisitorIn
from linli.core.db import utcnow
from linli.core.models import AuditEntry
from linli.core.web import system_ctx


def _token(db: Any, cid: int, perms: list[str]) -> str:
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=cid,
                name="terminal",
                prefix=prefix,
                token_hash=hashed,
                permissions=perms,
            )
        )
    return raw


def test_resident_gets_own_pin_and_it_opens_the_gate(client: Any, db: Any, world: Any) -> None:
    with db.session() as s:
        gate = service.save_gate(s, system_ctx(world.a), GateIn(name="东门")).id
    term = {"Authorization": f"Bearer {_token(db, world.a, ['access.decide'])}"}
    url = f"/api/v1/communities/{world.a}/gates/{gate}/decide"
    tok = login(client, "resident")
    base = f"/c/{world.a}/access"
    me = client.get(base + "/me")
    assert me.status_code == 200
    m = re.search(r'action="/c/\d+/access/people/(\d+)/pin"', me.text)
    assert m, "the resident's own page offers a PIN"
    iid = int(m.group(1))
    r = client.post(
        f"{base}/people/{iid}/pin",
        data={"csrf_token": tok, "own": "1"},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 200
    pin1 = re.search(r'<strong class="mono"[^>]*>(\d{6})</strong>', r.text)
    assert pin1 and "shown only once" in r.text
    d = client.post(url, json={"pin": pin1.group(1)}, headers=term).json()
    assert d["granted"] is True and d["person"]["id"] == iid
    # a new PIN replaces the old one; the PIN itself is never stored
    r = client.post(f"{base}/people/{iid}/pin", data={"csrf_token": tok, "own": "1"})
    pin2 = re.search(r'<strong class="mono"[^>]*>(\d{6})</strong>', r.text)
    assert pin2
    if pin2.group(1) != pin1.group(1):
        d = client.post(url, json={"pin": pin1.group(1)}, headers=term).json()
        assert d["granted"] is False and d["reason"] == "unknown_pin"
    assert client.post(url, json={"pin": pin2.group(1)}, headers=term).json()["granted"]
    with db.session() as s:
        creds = list(s.scalars(select(Credential).where(Credential.identity_id == iid)))
        assert [c.kind for c in creds] == ["pin"]
        assert pin2.group(1) not in creds[0].lookup and creds[0].label == "••••"
        assert s.scalar(
            select(AuditEntry).where(AuditEntry.action == "access.credential.pin_issued")
        )
    # not for someone else's identity
    with db.session() as s:
        other = service.identity_for_resident(s, system_ctx(world.a), world.residents_a[1]).id
    r = client.post(f"{base}/people/{other}/pin", data={"csrf_token": tok})
    assert r.status_code in (403, 404)
    api = client.post(f"/api/v1/communities/{world.a}/access/identities/{other}/pin")
    assert api.status_code in (401, 403, 404)


def test_visitor_log_lists_visitors_and_admissions_only(db: Any, world: Any, app: Any) -> None:
    from linli.access.schemas import CredentialIn, IdentityIn

    settings = app.state.settings
    now = utcnow()
    with db.session() as s:
        ctx = system_ctx(world.a)
        gate = service.save_gate(s, ctx, GateIn(name="西门")).id
        resident = service.create_identity(s, ctx, IdentityIn(kind="resident", name="住户"))
        service.add_credential(s, ctx, resident.id, CredentialIn(kind="card", value="R7"), settings)
        _p, _v, qr = service.create_visitor(
            s,
            ctx,
            VisitorIn(
                name="访客甲",
                valid_from=now - timedelta(minutes=1),
                valid_until=now + timedelta(hours=1),
            ),
            settings,
        )
    with db.session() as s:
        ctx = system_ctx(world.a, "guard")
        assert service.decide(s, ctx, gate, service.Presented(card="R7"), settings)[0].granted
        assert service.decide(s, ctx, gate, service.Presented(qr=qr), settings)[0].granted
        service.admit(s, ctx, gate, "维修工", name="李师傅")
    with db.session() as s:
        ctx = system_ctx(world.a, "guard")
        everything = service.access_log(s, ctx)
        log = service.access_log(s, ctx, visitors=True)
        assert len(everything) == 3
        assert sorted(e.method for e in log) == ["manual", "qr"]
        audited = list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == "access.log.viewed"))
        )
        assert len(audited) == 2


def test_gate_open_command_reaches_the_device_over_mosquitto(db: Any, world: Any, app: Any) -> None:
    from iot._mqtt import SYSTEM_BROKER, forget_session, require_system_broker, wait_until
    from iot._mqtt import Device as DeviceClient

    from linli.access.schemas import CredentialIn, IdentityIn
    from linli.iot.models import Command
    from linli.iot.mqtt import BrokerAddress, MqttIngest

    require_system_broker()
    settings = app.state.settings
    with db.session() as s:
        ctx = system_ctx(world.a)
        g = service.save_gate(s, ctx, GateIn(name="北门", direction="in"))
        key = service.ensure_gate_device(s, ctx, g).key
        gate = g.id
        i = service.create_identity(s, ctx, IdentityIn(kind="resident", name="住户"))
        service.add_credential(s, ctx, i.id, CredentialIn(kind="card", value="C42"), settings)
    tag = uuid.uuid4().hex[:8]
    ing = MqttIngest(
        db, BrokerAddress(*SYSTEM_BROKER), client_id=f"linli-acc-{tag}", sweep_every=3600
    )
    ing.start(sweeper=False)
    dev = None
    try:
        assert ing.wait_connected(15)

        def answer(d: DeviceClient, cmd: dict[str, Any]) -> None:
            d.publish("commands/ack", {"id": cmd["id"], "ok": True}, wait=False)

        dev = DeviceClient(SYSTEM_BROKER[1], key, client_id=f"gate-{tag}", on_command=answer)
        assert dev.connect()
        assert not dev.subscribe_commands().is_failure
        with db.session() as s:
            d, ev = service.decide(
                s, system_ctx(world.a, "terminal"), gate, service.Presented(card="C42"), settings
            )
            assert d.granted
            event_id = ev.id
        wait_until(lambda: dev.commands, 20, "the open command at the gate")  # type: ignore[union-attr]
        cmd = dev.commands[0]
        assert cmd["name"] == "open"
        assert cmd["params"] == {"direction": "in", "access_event_id": event_id}

        def status() -> str:
            with db.session() as s:
                return str(s.scalar(select(Command.status).where(Command.id == cmd["id"])))

        wait_until(lambda: status() == "acked", 20, "the gate's acknowledgement")
        # a denial sends nothing
        with db.session() as s:
            d, _ = service.decide(
                s, system_ctx(world.a, "terminal"), gate, service.Presented(card="NOPE"), settings
            )
            assert not d.granted
            assert s.scalar(select(Gate.device_id).where(Gate.id == gate))
    finally:
        if dev is not None:
            dev.close()
        ing.stop()
        forget_session(f"linli-acc-{tag}")
    assert len(dev.commands) == 1


def test_live_log_redraws_rows_and_each_look_up_is_audited(
    client: Any, db: Any, world: Any
) -> None:
    login(client, "guard")
    url = f"/c/{world.a}/access/log"
    page = client.get(url)
    assert page.status_code == 200
    assert 'data-live-events="access.entry.granted access.entry.denied"' in page.text
    rows = client.get(url + "?visitors=1&fragment=rows")
    assert rows.status_code == 200 and "<html" not in rows.text and "<tr>" in rows.text
    with db.session() as s:
        n = len(list(s.scalars(select(AuditEntry).where(AuditEntry.action == "access.log.viewed"))))
        assert n == 2


def test_pin_guessing_locks_pin_entry_and_raises_an_alarm(db: Any, world: Any, app: Any) -> None:
    from linli.access.schemas import CredentialIn, IdentityIn
    from linli.iot.models import Alarm

    settings = app.state.settings
    now = utcnow()
    with db.session() as s:
        ctx = system_ctx(world.a)
        gate = service.save_gate(s, ctx, GateIn(name="南门")).id
        other = service.save_gate(s, ctx, GateIn(name="北门")).id
        i = service.create_identity(s, ctx, IdentityIn(kind="resident", name="住户"))
        service.add_credential(s, ctx, i.id, CredentialIn(kind="pin", value="135790"), settings)
    reasons = []
    with db.session() as s:
        ctx = system_ctx(world.a, "keypad")
        for k in range(service.PIN_MAX_FAILURES):
            d, _ = service.decide(
                s,
                ctx,
                gate,
                service.Presented(pin=f"{k:06d}"),
                settings,
                now=now + timedelta(seconds=k),
            )
            reasons.append(d.reason)
        later = now + timedelta(seconds=20)
        # the right PIN is refused at this gate now, card and other gates are not affected
        d, _ = service.decide(s, ctx, gate, service.Presented(pin="135790"), settings, now=later)
        assert not d.granted and d.reason == "pin_locked"
        d, _ = service.decide(s, ctx, other, service.Presented(pin="135790"), settings, now=later)
        assert d.granted
        # the lock ends when the wrong PINs leave the window
        after = now + service.PIN_WINDOW + timedelta(seconds=service.PIN_MAX_FAILURES + 1)
        d, _ = service.decide(s, ctx, gate, service.Presented(pin="135790"), settings, now=after)
        assert d.granted
    assert reasons == ["unknown_pin"] * service.PIN_MAX_FAILURES
    with db.session() as s:
        alarms = list(s.scalars(select(Alarm).where(Alarm.kind == "access_pin_guessing")))
        assert len(alarms) == 1 and alarms[0].community_id == world.a
