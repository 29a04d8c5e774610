"""Vehicle pages in English and Chinese: vehicles and permits, my vehicles / visitor cars, the
live log, the guard queue (confirm by page), parking, the restricted watch list, the gates
(with a photo sent as the camera would) — forms answer bad input with messages, not 500s."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import login
from sqlalchemy import select

from linli.core.models import AuditEntry
from linli.vehicles.models import Permit, Vehicle, VehicleEvent, VisitorVehicle

from ._helpers import make_lanes, photos_by_plate

PAGES = ("", "/permits", "/mine", "/log", "/queue", "/parking", "/watchlist", "/gates")


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> dict[str, bytes]:
    return photos_by_plate(shared_data)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ("Vehicles", "Parking permits", "Guard queue", "Plate watch list")),
        ("zh_CN", ("车辆通行记录", "停车许可", "保安确认队列", "车牌布控名单")),
    ],
)
def test_every_page_in_both_languages(
    client: Any, world: Any, db: Any, lang: str, words: tuple[str, ...]
) -> None:
    make_lanes(db, world.a)
    login(client, "staff")
    client.cookies.set("lang", lang)
    base = f"/c/{world.a}/vehicles"
    seen = ""
    for path in PAGES:
        r = client.get(base + path)
        assert r.status_code == 200, (path, r.text[:300])
        seen += r.text
    for w in words:
        assert w in seen, w
    frag = client.get(base + "/log?fragment=rows")
    assert frag.status_code == 200 and "<html" not in frag.text


def test_staff_registers_vehicles_and_permits_with_form_errors(
    client: Any, world: Any, db: Any
) -> None:
    login(client, "staff")
    client.cookies.set("lang", "en")
    base = f"/c/{world.a}/vehicles"
    tok = _csrf(client.get(base).text)
    r = client.post(
        base,
        data={
            "csrf_token": tok,
            "plate": "皖A·12345",
            "resident_id": str(world.residents_a[0]),
            "description": "大众 帕萨特",
            "active": "on",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:400]
    r = client.post(base, data={"csrf_token": tok, "plate": "XYZ", "active": "on"})
    assert r.status_code == 422 and "is not a valid licence plate" in r.text
    r = client.post(
        base,
        data={"csrf_token": tok, "plate": "皖A12345", "resident_id": str(world.residents_a[1])},
    )
    assert r.status_code == 422 and "already registered" in r.text
    client.cookies.set("lang", "zh_CN")
    r = client.post(base, data={"csrf_token": tok, "plate": "皖B99999", "active": "on"})
    assert r.status_code == 422 and "请填写车辆所属的居民" in r.text
    with db.session() as s:
        v = s.scalar(select(Vehicle))
        assert v is not None and v.plate == "皖A12345" and v.credential_id is not None
        vid = v.id
    assert "皖A·12345" in client.get(base + "?q=12345").text
    assert "皖A·12345" in client.get(base + f"?edit={vid}").text
    # permits: a temporary one needs an end; then saved and cancelled
    r = client.post(
        base + "/permits", data={"csrf_token": tok, "plate": "皖A12345", "kind": "temporary"}
    )
    assert r.status_code == 422 and "临时停车许可必须填写结束时间" in r.text
    r = client.post(
        base + "/permits",
        data={
            "csrf_token": tok,
            "plate": "皖A12345",
            "kind": "temporary",
            "valid_until": "2099-01-01T10:00",
            "fee_type": "20元/天",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        p = s.scalar(select(Permit))
        assert p is not None and p.vehicle_id == vid and p.fee_type == "20元/天"
        pid = p.id
    r = client.post(
        base + "/permits", data={"csrf_token": tok, "revoke": str(pid)}, follow_redirects=False
    )
    assert r.status_code == 303
    with db.session() as s:
        assert s.get(Permit, pid).revoked_at is not None  # type: ignore[union-attr]
    r = client.post(
        base,
        data={"csrf_token": tok, "vehicle_id": str(vid), "action": "delete"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        assert s.scalar(select(Vehicle)) is None


def test_resident_registers_a_visitor_car_from_the_phone_page(
    client: Any, world: Any, db: Any
) -> None:
    login(client, "resident")
    client.cookies.set("lang", "zh_CN")
    base = f"/c/{world.a}/vehicles"
    page = client.get(base + "/mine")
    assert page.status_code == 200 and "登记访客车辆" in page.text
    assert 'name="viewport"' in page.text
    tok = _csrf(page.text)
    r = client.post(
        base + "/mine",
        data={"csrf_token": tok, "plate": "苏E·12345", "hours": "3", "visitor_name": "李先生"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    r = client.post(base + "/mine", data={"csrf_token": tok, "plate": "苏E12345", "hours": "500"})
    assert r.status_code == 422 and "访客车辆最多登记 7 天" in r.text
    r = client.post(
        base + "/mine", data={"csrf_token": tok, "plate": "苏E12345", "valid_from": "yesterday"}
    )
    assert r.status_code == 422
    with db.session() as s:
        v = s.scalar(select(VisitorVehicle))
        assert v is not None and v.host_resident_id == world.residents_a[0]
        vid = v.id
    page = client.get(base + "/mine")
    assert "苏E·12345" in page.text and "待到达" in page.text
    r = client.post(
        base + "/mine", data={"csrf_token": tok, "cancel": str(vid)}, follow_redirects=False
    )
    assert r.status_code == 303
    # residents see none of the staff pages
    for path in ("", "/log", "/queue", "/watchlist", "/gates"):
        assert client.get(base + path).status_code in (403, 404), path


def test_guard_confirms_from_the_queue_page_and_the_log_is_audited(
    client: Any, world: Any, db: Any, app: Any, photos: dict[str, bytes]
) -> None:
    from linli.core.web import system_ctx
    from linli.vehicles import service

    lanes = make_lanes(db, world.a)
    with db.session() as s:
        d, _ = service.decide(
            s, system_ctx(world.a), lanes.entry, photos["皖A256R2"], app.state.files
        )
        other, _ = service.decide(
            s, system_ctx(world.a), lanes.entry, b"not an image", app.state.files
        )
    login(client, "guard")
    client.cookies.set("lang", "en")
    base = f"/c/{world.a}/vehicles"
    page = client.get(base + "/queue")
    assert page.status_code == 200
    assert "皖A·256R2" in page.text and f"/vehicles/log/{d.event_id}/snapshot" in page.text
    assert client.get(base + f"/log/{d.event_id}/snapshot").headers["content-type"] == "image/jpeg"
    frag = client.get(base + f"/queue?fragment=new&after={other.event_id}")
    assert frag.status_code == 200 and 'hx-swap-oob="true"' in frag.text and "皖A" not in frag.text
    tok = _csrf(page.text)
    r = client.post(
        base + f"/queue/{d.event_id}", data={"csrf_token": tok, "plate": "??", "action": "confirm"}
    )
    assert r.status_code == 422 and "is not a valid licence plate" in r.text
    r = client.post(
        base + f"/queue/{d.event_id}",
        data={"csrf_token": tok, "plate": "皖A256R2", "action": "confirm"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        base + f"/queue/{d.event_id}",
        data={"csrf_token": tok, "plate": "皖A256R2", "action": "confirm"},
    )
    assert r.status_code == 409 and "already handled" in r.text
    r = client.post(
        base + f"/queue/{other.event_id}",
        data={"csrf_token": tok, "action": "reject"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        ev = s.get(VehicleEvent, d.event_id)
        assert ev is not None and ev.reviewed_by == "guard" and ev.command_id is not None
    log = client.get(base + "/log")
    assert "Confirmed by a guard" in log.text and "guard" in log.text
    with db.session() as s:
        actions = set(s.scalars(select(AuditEntry.action)))
        assert {
            "vehicles.log.viewed",
            "vehicles.snapshot.viewed",
            "vehicles.review.confirmed",
            "vehicles.review.rejected",
        } <= actions
    # the guard reads the watch list but may not change it; the property manager cannot see it
    wl = client.get(base + "/watchlist")
    assert wl.status_code == 200 and "Add a plate" not in wl.text
    r = client.post(base + "/watchlist", data={"csrf_token": _csrf(wl.text), "plate": "皖A256R2"})
    assert r.status_code == 403
    client.post("/logout", data={"csrf_token": _csrf(wl.text)})
    login(client, "property")
    assert client.get(base + "/watchlist").status_code == 403
    assert client.get(base + "/gates").status_code == 200


def test_watchlist_page_and_gate_form_with_a_photo(
    client: Any, world: Any, db: Any, photos: dict[str, bytes]
) -> None:
    login(client, "staff")
    client.cookies.set("lang", "en")
    base = f"/c/{world.a}/vehicles"
    tok = _csrf(client.get(base + "/watchlist").text)
    r = client.post(
        base + "/watchlist",
        data={"csrf_token": tok, "plate": "皖AT022C", "reason": "x", "authorised_by": ""},
    )
    assert r.status_code == 422
    r = client.post(
        base + "/watchlist",
        data={
            "csrf_token": tok,
            "plate": "皖AT022C",
            "reason": "drove through the barrier",
            "authorised_by": "张主任",
            "expires_at": "2099-01-01",
        },
    )
    assert r.status_code == 422 and "one year at most" in r.text
    from datetime import date, timedelta

    until = (date.today() + timedelta(days=30)).isoformat()
    r = client.post(
        base + "/watchlist",
        data={
            "csrf_token": tok,
            "plate": "皖AT022C",
            "reason": "drove through the barrier",
            "authorised_by": "张主任",
            "expires_at": until,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "皖A·T022C" in client.get(base + "/watchlist").text
    # a car park and a gate with its barrier device, then a photo sent as the camera would
    r = client.post(base + "/parking", data={"csrf_token": tok, "name": "Garage", "capacity": "-1"})
    assert r.status_code == 422
    r = client.post(
        base + "/parking",
        data={"csrf_token": tok, "name": "Garage", "capacity": "30"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        base + "/gates",
        data={
            "csrf_token": tok,
            "name": "East in",
            "direction": "in",
            "auto_open_confidence": "2",
            "enabled": "on",
        },
    )
    assert r.status_code == 422
    r = client.post(
        base + "/gates",
        data={
            "csrf_token": tok,
            "name": "East in",
            "direction": "in",
            "auto_open_confidence": "0.85",
            "enabled": "on",
            "visitors_allowed": "on",
            "with_device": "on",
        },
    )
    assert r.status_code == 200 and "shown only once" in r.text
    from linli.vehicles.models import VehicleGate

    with db.session() as s:
        g = s.scalar(select(VehicleGate))
        assert g is not None and g.device_id and g.auto_open_confidence == 0.85
        gid = g.id
    r = client.post(
        base + f"/gates/{gid}/try",
        data={"csrf_token": tok},
        files={"image": ("car.jpg", photos["皖AT022C"], "image/jpeg")},
    )
    assert r.status_code == 200 and "waiting for a guard" in r.text
    r = client.post(
        base + f"/gates/{gid}/try",
        data={"csrf_token": tok},
        files={"image": ("x.txt", b"hello", "text/plain")},
    )
    assert r.status_code == 200 and "waiting for a guard" in r.text
    park = client.get(base + "/parking")
    assert "Garage" in park.text and "30" in park.text
