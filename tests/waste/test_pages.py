"""The staff forms: create a station (bad hours refused), inspect from the photo page, edit a
voice prompt (bad template refused), mark a supervision record handled."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from linli.waste.demo import seed_waste
from linli.waste.models import Deposit, PromptText, Station, Supervision


def test_staff_forms(client: Any, db: Any, world: Any, app: Any) -> None:
    from conftest import login

    csrf = login(client, "staff")
    client.cookies.set("lang", "en")
    c = f"/c/{world.a}/waste"
    r = client.post(
        f"{c}/stations",
        data={"csrf_token": csrf, "name": "南门投放点", "hours": "7:00-9:00, 25:00-26:00"},
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(f"{c}/stations", data={"csrf_token": csrf, "name": "", "hours": "07:00-09:00"})
    assert r.status_code == 422
    with db.session() as s:
        assert not list(s.scalars(select(Station)))  # nothing half-saved
    r = client.post(
        f"{c}/stations",
        data={
            "csrf_token": csrf,
            "name": "南门投放点",
            "hours": "7:00-9:00，18:00-20:00",
            "overflow_lead_min": "45",
        },
    )
    assert r.status_code == 200 and "Device credentials" in r.text, re.findall(
        r"error[^<]*<", r.text
    )
    with db.session() as s:
        st = s.scalar(select(Station))
        assert st is not None and st.hours == [
            {"start": "07:00", "end": "09:00"},
            {"start": "18:00", "end": "20:00"},
        ]
        assert st.overflow_lead_min == 45 and st.terminal_device_id
    r = client.post(f"{c}/stations", data={"csrf_token": csrf, "name": "南门投放点", "hours": ""})
    assert r.status_code == 422  # duplicate name
    # inspection from the deposits page
    with db.session() as s:
        seed_waste(s, world.a, app.state.files, app.state.settings)
    with db.session() as s:
        dep = s.scalar(
            select(Deposit).where(Deposit.inspection == "pending", Deposit.status == "valid")
        )
        assert dep is not None
        did = dep.id
    r = client.post(
        f"{c}/deposits/{did}/inspection",
        data={"csrf_token": csrf, "result": "contaminated", "note": "塑料袋", "back": "pending"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?inspection=pending")
    with db.session() as s:
        d = s.get(Deposit, did)
        assert d is not None and d.inspection == "contaminated" and d.inspection_note == "塑料袋"
    r = client.post(
        f"{c}/deposits/{did}/inspection",
        data={"csrf_token": csrf, "result": "whatever"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "Unknown inspection result" in r.text
    # prompts: a bad template is refused with the form error, a good one saved
    r = client.post(
        f"{c}/prompts",
        data={"csrf_token": csrf, "key": "outside_hours", "lang": "zh", "text": "现在关门了"},
    )
    assert r.status_code == 422 and "{next_open}" in r.text
    r = client.post(
        f"{c}/prompts",
        data={
            "csrf_token": csrf,
            "key": "break_bag",
            "lang": "zh",
            "text": "请把湿垃圾倒出，袋子投入干垃圾桶。",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        assert s.scalar(select(PromptText.text)) == "请把湿垃圾倒出，袋子投入干垃圾桶。"
    r = client.get(f"{c}/prompts")
    assert "请把湿垃圾倒出" in r.text and "edited" in r.text
    # supervision handled
    with db.session() as s:
        rec = s.scalar(select(Supervision))
        assert rec is not None
        rid = rec.id
    r = client.post(
        f"{c}/supervision/{rid}/handled",
        data={"csrf_token": csrf, "note": "已清理"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        rec2 = s.get(Supervision, rid)
        assert rec2 is not None and rec2.status == "handled" and rec2.note == "已清理"
    # the resident may not use the staff forms
    client.cookies.clear()
    csrf_r = login(client, "resident")
    r = client.post(
        f"{c}/deposits/{did}/inspection", data={"csrf_token": csrf_r, "result": "correct"}
    )
    assert r.status_code in (403, 404)


def test_station_api(client: Any, db: Any, world: Any) -> None:
    from conftest import login

    client.headers["x-csrf-token"] = login(client, "property")
    base = f"/api/v1/communities/{world.a}/waste"
    r = client.post(
        f"{base}/stations",
        json={
            "name": "北门",
            "building_id": world.buildings_a[1],
            "hours": [{"start": "07:00", "end": "09:00"}],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    sid = body["station"]["id"]
    assert {d["role"] for d in body["devices"]} == {"terminal", "camera", "speaker"}
    assert all(d["secret"] for d in body["devices"])
    r = client.post(f"{base}/stations/{sid}/bins", json={"category": "kitchen", "capacity_l": 240})
    assert r.status_code == 201
    b = r.json()
    assert {d["role"] for d in b["devices"]} == {"fill", "lid", "scale"}
    assert b["bin"]["fiware_id"].startswith("urn:ngsi-ld:WasteContainer:")
    r = client.post(f"{base}/stations/{sid}/bins", json={"category": "bulky"})
    assert {d["role"] for d in r.json()["devices"]} == {"fill", "scale"}  # no lid
    # the fill sensor is exported as a FIWARE WasteContainer with the bin's waste kind
    r = client.get(
        f"/api/v1/communities/{world.a}/fiware/entities",
        params={"type": "WasteContainer", "format": "keyvalues"},
    )
    assert r.status_code == 200, r.text
    ents = {e["id"]: e for e in r.json()}
    assert b["bin"]["fiware_id"] in ents
    assert ents[b["bin"]["fiware_id"]]["storedWasteKind"] == ["organic"]
    st = client.get(f"{base}/stations/{sid}").json()
    assert [x["category"] for x in st["bins"]] == ["kitchen", "bulky"]
    r = client.put(f"{base}/stations/{sid}/hours", json=[{"start": "18:00", "end": "20:00"}])
    assert r.status_code == 200 and r.json()["hours"] == [{"start": "18:00", "end": "20:00"}]
    for body, status in (
        ({"name": "x", "hours": [{"start": "09:00", "end": "07:00"}]}, 422),
        ({"name": "x", "hours": [{"start": "7am", "end": "09:00"}]}, 422),
        ({"name": "x", "building_id": 99999}, 404),
        ({"name": "北门"}, 409),
        ({"name": "  "}, 422),
        ({"name": "x", "overflow_lead_min": 0}, 422),
    ):
        r = client.post(f"{base}/stations", json=body)
        assert r.status_code == status, (body, r.text)
    assert client.post(f"{base}/stations/{sid}/bins", json={"category": "glass"}).status_code == 422
    assert client.get(f"/api/v1/communities/{world.b}/waste/stations").status_code == 404
    assert client.get(f"{base}/stations/99999").status_code == 404


def test_bin_linked_to_an_imported_fiware_wastecontainer(
    db: Any, world: Any, shared_data: Any
) -> None:
    import json

    from linli.core.web import system_ctx
    from linli.iot import fiware
    from linli.waste import service
    from linli.waste.schemas import BinIn, StationIn

    doc = json.loads((shared_data / "fiware" / "WasteContainer.example.json").read_text())
    with db.session() as s:
        ctx = system_ctx(world.a)
        plan = fiware.import_entities(s, ctx, doc)
        dev, _secret, eid = plan.created[0]
        st, _ = service.create_station(s, ctx, StationIn(name="FIWARE", with_devices=False))
        b, secrets = service.add_bin(
            s, ctx, st.id, BinIn(category="recyclable", fill_device_id=dev.id)
        )
        assert b.fill_device_id == dev.id and b.fiware_id == eid
        assert {d["role"] for d in secrets} == {"lid", "scale"}
        lid_id = b.lid_device_id
        try:
            service.add_bin(s, ctx, st.id, BinIn(category="kitchen", fill_device_id=lid_id))
        except service.AppError as exc:
            assert exc.field == "fill_device_id"
        else:
            raise AssertionError("a lid was accepted as a fill-level sensor")
