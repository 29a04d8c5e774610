"""Access pages in both languages: people, enrollment, gates, log (audited), visitors, flow."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conftest import login
from sqlalchemy import select


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_staff_pages_and_gate_form(client: Any, world: Any, db: Any) -> None:
    from linli.access.models import Gate

    login(client, "staff")
    base = f"/c/{world.a}/access"
    for path in ("/people", "/gates", "/log", "/visitors", "/flow"):
        r = client.get(base + path)
        assert r.status_code == 200, (path, r.text[:300])
    tok = _csrf(client.get(base + "/gates").text)
    r = client.post(
        base + "/gates",
        data={
            "csrf_token": tok,
            "gate_id": "",
            "name": "东门",
            "direction": "both",
            "allow_resident": "on",
            "allow_delivery": "on",
            "from_delivery": "08:00",
            "to_delivery": "20:00",
            "enabled": "on",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    with db.session() as s:
        g = s.scalar(select(Gate))
        assert g is not None and g.policy == {
            "resident": {},
            "delivery": {"from": "08:00", "to": "20:00"},
        }
    r = client.post(
        base + "/gates",
        data={
            "csrf_token": tok,
            "gate_id": "",
            "name": "西门",
            "allow_delivery": "on",
            "from_delivery": "25:99",
        },
    )
    assert r.status_code == 422
    # the log view is audited
    from linli.core.models import AuditEntry

    client.get(base + "/log")
    with db.session() as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "access.log.viewed"))
    # Chinese
    client.cookies.set("lang", "zh_CN")
    r = client.get(base + "/flow", headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 200


def test_person_credentials_consent_and_enrollment(
    client: Any, world: Any, db: Any, shared_data: Path
) -> None:
    from linli.access.models import FaceTemplate, Identity

    login(client, "staff")
    base = f"/c/{world.a}/access"
    tok = _csrf(client.get(base + "/people").text)
    r = client.post(
        base + "/people",
        data={"csrf_token": tok, "resident_id": str(world.residents_a[1])},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    person = r.headers["location"]
    r = client.post(person + "/credentials", data={"csrf_token": tok, "kind": "pin", "value": "12"})
    assert r.status_code == 422
    r = client.post(
        person + "/credentials",
        data={"csrf_token": tok, "kind": "card", "value": "C123"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    photo = sorted((shared_data / "faces" / "gallery" / "obama").iterdir())[0].read_bytes()
    # no consent yet: refused, nothing stored
    r = client.post(
        person + "/face", data={"csrf_token": tok}, files={"photo": ("p.jpg", photo, "image/jpeg")}
    )
    assert r.status_code == 422
    r = client.post(
        person + "/consent", data={"csrf_token": tok, "given_by": "本人"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = client.post(
        person + "/face",
        data={"csrf_token": tok},
        files={"photo": ("p.txt", b"not a photo", "image/jpeg")},
    )
    assert r.status_code == 422
    r = client.post(
        person + "/face",
        data={"csrf_token": tok},
        files={"photo": ("p.jpg", photo, "image/jpeg")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    page = client.get(person).text
    assert "C123" in page
    with db.session() as s:
        assert s.scalar(select(FaceTemplate)) is not None
    r = client.post(
        person + "/consent", data={"csrf_token": tok, "action": "withdraw"}, follow_redirects=False
    )
    assert r.status_code == 303
    with db.session() as s:
        assert s.scalar(select(FaceTemplate)) is None
        assert s.scalar(select(Identity)) is not None


def test_resident_own_access_and_visitors(client: Any, world: Any, db: Any) -> None:
    from linli.access.models import VisitorPass

    tok = login(client, "resident")
    base = f"/c/{world.a}/access"
    assert client.get(base + "/me").status_code == 200
    assert client.get(base + "/people").status_code in (403, 404)
    assert client.get(base + "/log").status_code in (403, 404)
    r = client.post(
        base + "/visitors",
        data={"csrf_token": tok, "name": "王阿姨", "purpose": "探亲", "hours": "3"},
    )
    assert r.status_code == 200, r.text[:500]
    with db.session() as s:
        p = s.scalar(select(VisitorPass))
        assert p is not None and p.host_resident_id == world.residents_a[0]
    r = client.post(base + "/visitors", data={"csrf_token": tok, "name": "", "hours": "3"})
    assert r.status_code == 422


def test_guard_admits_by_hand(client: Any, world: Any, db: Any) -> None:
    from linli.access import service
    from linli.access.models import AccessEvent
    from linli.access.schemas import GateIn
    from linli.core.web import system_ctx

    with db.session() as s:
        gid = service.save_gate(s, system_ctx(world.a), GateIn(name="南门")).id
    tok = login(client, "guard")
    base = f"/c/{world.a}/access"
    assert client.get(base + "/visitors").status_code == 200
    r = client.post(base + "/admit", data={"csrf_token": tok, "gate_id": str(gid), "reason": "x"})
    assert r.status_code == 422
    r = client.post(
        base + "/admit",
        data={
            "csrf_token": tok,
            "gate_id": str(gid),
            "reason": "维修工, 物业确认",
            "name": "李师傅",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        ev = s.scalar(select(AccessEvent))
        assert ev is not None and ev.method == "manual" and ev.granted
