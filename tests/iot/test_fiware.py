"""FIWARE Smart Data Models: WasteContainer and Device entities imported and exported in
key-value, NGSI-LD normalized and NGSI v2 normalized form; round trips on the shared examples;
malformed entities are refused whole with every problem listed."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import func, select

from linli.core.db import utcnow

PROBLEM = "application/problem+json"


@pytest.fixture
def examples(shared_data):
    folder = shared_data / "fiware"
    return {
        "keyvalues": json.loads((folder / "WasteContainer.example.json").read_text()),
        "normalized": json.loads((folder / "WasteContainer.example-normalized.jsonld").read_text()),
        "ngsiv2": json.loads((folder / "WasteContainer.example-normalized.json").read_text()),
    }


@pytest.fixture
def pm(client, world):
    return {"X-CSRF-Token": login(client, "property")}


def _devices(db):
    from linli.iot.models import Device

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Device))


def _import(client, world, headers, doc, cid=None, **params):
    return client.post(
        f"/api/v1/communities/{cid or world.a}/fiware/entities",
        headers=headers,
        json=doc,
        params=params,
    )


def _export(client, world, etype, form, cid=None):
    r = client.get(
        f"/api/v1/communities/{cid or world.a}/fiware/entities",
        params={"type": etype, "format": form},
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("form", ["keyvalues", "normalized", "ngsiv2"])
def test_waste_container_round_trip_on_the_shared_examples(client, world, db, pm, examples, form):
    original = examples[form]
    r = _import(client, world, pm, original)
    assert r.status_code == 200, r.text
    report = r.json()
    assert len(report["created"]) == 1 and report["updated"] == []
    created = report["created"][0]
    assert created["entity"] == "urn:ngsi-ld:wastecontainer:1021:AAWD"
    assert len(created["secret"]) >= 16
    device = client.get(f"/api/v1/communities/{world.a}/devices/{created['id']}").json()
    assert device["profile"] == "bin_level"
    assert device["attributes"]["location"] == {
        "type": "Point",
        "coordinates": [-8.768460000000001, 42.60214472222222],
    }
    assert device["attributes"]["binCapacity"] == 43 and device["attributes"]["RFID"] == "67855734"

    # the same form comes back exactly
    exported = _export(client, world, "WasteContainer", form)
    assert exported == [original]
    # and the key-value form of a normalized example is the key-value example (same values)
    if form == "ngsiv2":
        assert _export(client, world, "WasteContainer", "keyvalues") == [examples["keyvalues"]]
    if form == "keyvalues":
        ld = _export(client, world, "WasteContainer", "normalized")[0]
        expected = copy.deepcopy(examples["normalized"])
        expected["binLoggedTime"]["value"]["@value"] = original[
            "binLoggedTime"
        ]  # the examples differ
        assert ld == expected
        v2 = _export(client, world, "WasteContainer", "ngsiv2")[0]
        assert v2 == examples["ngsiv2"]

    # importing it again updates the same device
    r = _import(client, world, pm, original)
    assert r.status_code == 200 and len(r.json()["updated"]) == 1 and r.json()["created"] == []
    assert _devices(db) == 1


def test_filling_level_becomes_a_fill_reading_and_raises_the_alarm(client, world, db, pm):
    observed = (utcnow() - timedelta(minutes=3)).replace(microsecond=0)
    entity = {
        "id": "urn:ngsi-ld:WasteContainer:wc-42",
        "type": "WasteContainer",
        "name": "北门厨余桶",
        "fillingLevel": 0.95,
        "dateObserved": observed.isoformat().replace("+00:00", "Z"),
        "location": {"type": "Point", "coordinates": [121.47, 31.23]},
        "refWasteContainerModel": "urn:ngsi-ld:WasteContainerModel:240L",
        "status": "ok",
    }
    r = _import(client, world, pm, entity)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["readings"]["accepted"] == 1 and body["readings"]["alarms_raised"] == 1
    dev_id = body["created"][0]["id"]
    device = client.get(f"/api/v1/communities/{world.a}/devices/{dev_id}").json()
    assert device["name"] == "北门厨余桶" and device["status"] == "alarm"
    latest = client.get(f"/api/v1/communities/{world.a}/devices/{dev_id}/latest").json()
    assert latest == [{"metric": "fill", "ts": latest[0]["ts"], "value": 95.0, "unit": "%"}]
    alarms = client.get(f"/api/v1/communities/{world.a}/alarms").json()
    assert alarms[0]["kind"] == "Bin nearly full" and alarms[0]["device_id"] == dev_id

    assert _export(client, world, "WasteContainer", "keyvalues") == [entity]
    ld = _export(client, world, "WasteContainer", "normalized")[0]
    assert ld["refWasteContainerModel"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:WasteContainerModel:240L",
    }
    assert ld["fillingLevel"] == {"type": "Property", "value": 0.95}
    assert ld["dateObserved"]["value"]["@type"] == "DateTime"
    assert ld["location"]["type"] == "GeoProperty"

    # newer telemetry replaces the snapshot on export
    from linli.iot.api import ingest_items

    later = utcnow().replace(microsecond=0)
    result = ingest_items(
        client.app,
        world.a,
        [{"device": body["created"][0]["key"], "ts": later.isoformat(), "values": {"fill": 40}}],
    )
    assert result.accepted == 1, result
    kv = _export(client, world, "WasteContainer", "keyvalues")[0]
    assert kv["fillingLevel"] == 0.4 and kv["dateObserved"] == later.isoformat().replace(
        "+00:00", "Z"
    )


def test_device_entities_both_ways(client, world, db, pm):
    a = world.a
    # our own device, with data, exported as a dataModel.Device entity
    r = client.post(
        f"/api/v1/communities/{a}/devices",
        headers=pm,
        json={"name": "东门消防栓", "profile": "fire_hydrant", "key": "hydrant-east-01"},
    )
    secret = r.json()["secret"]
    import base64

    auth = base64.b64encode(f"hydrant-east-01:{secret}".encode()).decode()
    ts = (utcnow() - timedelta(seconds=10)).replace(microsecond=0)
    r = client.post(
        "/api/v1/ingest/telemetry",
        json={"ts": ts.isoformat(), "values": {"pressure": 0.3, "leak": False}},
        headers={"Authorization": f"Basic {auth}"},
    )
    assert r.status_code == 200, r.text
    [kv] = _export(client, world, "Device", "keyvalues")
    assert kv["id"] == "urn:ngsi-ld:Device:hydrant-east-01" and kv["type"] == "Device"
    assert kv["name"] == "东门消防栓" and kv["category"] == ["sensor"]
    assert kv["controlledProperty"] == ["pressure", "leak"]
    assert kv["refDeviceModel"] == "urn:ngsi-ld:DeviceModel:linli:fire_hydrant"
    assert kv["deviceState"] == "ok"
    assert kv["value"] == "leak%3D0%3Bpressure%3D0.3"
    assert kv["dateLastValueReported"] == ts.isoformat().replace("+00:00", "Z")
    [ld] = _export(client, world, "Device", "normalized")
    assert ld["refDeviceModel"] == {"type": "Relationship", "object": kv["refDeviceModel"]}
    assert ld["dateLastValueReported"]["value"] == {
        "@type": "DateTime",
        "@value": kv["dateLastValueReported"],
    }
    assert "@context" in ld

    # …imported into community B: a device of the same profile with its reading
    admin = {"X-CSRF-Token": login(client, "admin")}
    r = _import(client, world, admin, ld, cid=world.b)
    assert r.status_code == 200, r.text
    created = r.json()["created"][0]
    assert (
        created["key"] == "hydrant-east-01-" + created["key"].rsplit("-", 1)[1]
    )  # the key was taken
    b_dev = client.get(f"/api/v1/communities/{world.b}/devices/{created['id']}").json()
    assert b_dev["profile"] == "fire_hydrant"
    latest = {
        v["metric"]: v["value"]
        for v in client.get(f"/api/v1/communities/{world.b}/devices/{created['id']}/latest").json()
    }
    assert latest == {"pressure": 0.3, "leak": 0.0}
    # and exported from B exactly as it came
    assert _export(client, world, "Device", "normalized", cid=world.b) == [ld]

    # a third-party Device entity (NGSI-LD normalized) with an explicit profile
    foreign = {
        "id": "urn:ngsi-ld:Device:gw-77",
        "type": "Device",
        "category": {"type": "Property", "value": ["sensor"]},
        "controlledProperty": {"type": "Property", "value": ["fillingLevel", "depth"]},
        "batteryLevel": {"type": "Property", "value": 0.5},
        "serialNumber": {"type": "Property", "value": "GW77"},
        "value": {"type": "Property", "value": "l%3D0.22%3Bt%3D21.2"},
        "deviceState": {"type": "Property", "value": "ok"},
        "dateFirstUsed": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2024-09-11T11:00:00Z"},
        },
        "controlledAsset": {"type": "Relationship", "object": ["urn:ngsi-ld:WasteContainer:wc-42"]},
        "@context": ["https://smartdatamodels.org/context.jsonld"],
    }
    r = _import(client, world, admin, foreign)
    assert r.status_code == 200, r.text  # controlledProperty fits one profile: bin_level
    dev = r.json()["created"][0]
    assert (
        dev["name"] == "GW77" and "readings" not in r.json()
    )  # a vendor value encoding: kept as text
    got = [e for e in _export(client, world, "Device", "normalized") if e["id"] == foreign["id"]]
    assert got == [foreign]


def test_malformed_entities_are_refused_whole(client, world, db, pm, examples):
    before = _devices(db)
    good = examples["keyvalues"]
    bad_batch = [
        good,
        {"type": "WasteContainer"},
        {"id": "urn:x:1", "type": "Toaster"},
        {
            "id": "urn:x:2",
            "type": "WasteContainer",
            "fillingLevel": 1.7,
            "location": {"type": "Point", "coordinates": [500, 1]},
        },
        {
            "id": "urn:x:3",
            "type": "WasteContainer",
            "binColor": {"type": "Property", "value": "red"},
            "binId": "7",
        },
        {"id": "urn:x:4", "type": "WasteContainer", "dateObserved": "last tuesday", "name": 5},
        {"id": "urn:x:5", "type": "Device", "controlledProperty": ["noiseLevel", "smellLevel"]},
        {
            "id": "urn:x:6",
            "type": "Device",
            "batteryLevel": 7,
            "value": 3,
            "refDeviceModel": "urn:ngsi-ld:DeviceModel:linli:bin_level",
        },
        "not an entity",
        good,
    ]
    r = _import(client, world, pm, bad_batch)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == "invalid_entities"
    fields = {e["field"] for e in body["errors"]}
    for expected in (
        "[1].id",
        "[2].type",
        "[3].fillingLevel",
        "[3].location",
        "[4].binId",
        "[5].dateObserved",
        "[5].name",
        "[6]",
        "[7].batteryLevel",
        "[7].value",
        "[8]",
        "[9].id",
    ):
        assert expected in fields, (expected, fields)
    assert all(e["message"] for e in body["errors"])
    assert _devices(db) == before  # nothing half-saved

    client.cookies.set("lang", "zh_CN")
    r = _import(
        client, world, pm, [{"id": "urn:x:9", "type": "WasteContainer", "fillingLevel": "full"}]
    )
    assert r.status_code == 422 and "0 到 1" in r.json()["errors"][0]["message"]
    client.cookies.set("lang", "en")
    for doc in ([], "text", 5):
        assert _import(client, world, pm, doc).status_code == 422
    r = client.post(
        f"/api/v1/communities/{world.a}/fiware/entities",
        headers={**pm, "content-type": "application/json"},
        content=b'{"id": ',
    )
    assert r.status_code == 400 and r.json()["code"] == "malformed_json"
    r = _import(client, world, pm, {"id": "urn:x:10", "type": "Device"}, profile="toaster")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "profile"


def test_fiware_permissions_and_tenancy(client, world, pm, examples):
    a, b = world.a, world.b
    assert _import(client, world, pm, examples["keyvalues"]).status_code == 200
    r = client.get(f"/api/v1/communities/{a}/fiware/entities", params={"type": "Car"})
    assert r.status_code == 422
    r = client.get(f"/api/v1/communities/{a}/fiware/entities", params={"format": "xml"})
    assert r.status_code == 422
    r = client.get(f"/api/v1/communities/{a}/fiware/entities", params={"format": "normalized"})
    assert r.headers["content-type"].startswith("application/ld+json")
    assert client.get(f"/api/v1/communities/{b}/fiware/entities").status_code == 404
    csrf = login(client, "guard")  # reads, does not import
    assert client.get(f"/api/v1/communities/{a}/fiware/entities").status_code == 200
    r = _import(client, world, {"X-CSRF-Token": csrf}, examples["keyvalues"])
    assert r.status_code == 403
    login(client, "staff_b")
    assert client.get(f"/api/v1/communities/{a}/fiware/entities").status_code == 404
    assert client.get(f"/api/v1/communities/{b}/fiware/entities").json() == []
