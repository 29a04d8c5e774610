"""The gate camera's API (multipart and raw JPEG bodies, bad input, permissions) and the
barrier-open command reaching a barrier device through the machine's Mosquitto, acknowledged."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from linli.core.web import system_ctx
from linli.iot.models import Command, Device
from linli.vehicles import service
from linli.vehicles.schemas import VehicleIn

from ._helpers import make_lanes, photos_by_plate


def _token(db: Any, cid: int, perms: list[str]) -> str:
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=cid,
                name="camera",
                prefix=prefix,
                token_hash=hashed,
                permissions=perms,
            )
        )
    return raw


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> dict[str, bytes]:
    return photos_by_plate(shared_data)


def test_camera_api_reads_decides_and_refuses_bad_input(
    client: Any, db: Any, world: Any, app: Any, photos: dict[str, bytes]
) -> None:
    lanes = make_lanes(db, world.a)
    with db.session() as s:
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate="皖A158Y2", resident_id=world.residents_a[0]),
            app.state.settings,
        )
    tok = _token(db, world.a, ["access.decide"])
    h = {"Authorization": f"Bearer {tok}"}
    url = f"/api/v1/communities/{world.a}/vehicle-gates/{lanes.entry}/read"
    r = client.post(
        url,
        files={"image": ("car.jpg", photos["皖A158Y2"], "image/jpeg")},
        headers={**h, "Accept-Language": "en"},
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["decision"], d["category"], d["plate"]) == ("open", "resident", "皖A158Y2")
    assert d["command_id"] and d["message"] == "Resident vehicle"
    # a raw JPEG body, in Chinese
    r = client.post(
        url,
        content=photos["皖AMK620"],
        headers={**h, "Content-Type": "image/jpeg", "Accept-Language": "zh-CN"},
    )
    assert r.status_code == 200 and r.json()["decision"] == "queued"
    assert r.json()["message"] == "未登记车辆"
    # bad input: queued, never a 500, never open
    for body, ctype in ((b"%PDF-1.4 not a photo", "application/pdf"), (b"", "image/jpeg")):
        r = client.post(url, content=body, headers={**h, "Content-Type": ctype})
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "queued" and r.json()["plate"] is None
    r = client.post(url, files={"other": ("x.txt", b"hello", "text/plain")}, headers=h)
    assert r.status_code == 200 and r.json()["read_status"] == "empty_image"
    big = b"\xff\xd8\xff" + b"0" * (app.state.settings.max_upload_bytes + 10)
    r = client.post(url, content=big, headers={**h, "Content-Type": "image/jpeg"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem")
    # other communities' gates are not found; tokens without the permission are refused
    r = client.post(
        f"/api/v1/communities/{world.a}/vehicle-gates/99999/read",
        content=b"x",
        headers={**h, "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 404
    weak = _token(db, world.a, ["vehicles.read"])
    r = client.post(
        url,
        content=photos["皖AMK620"],
        headers={"Authorization": f"Bearer {weak}", "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 403
    # the queue and the log over the API, then a confirmation by a guard token
    staff = _token(db, world.a, ["vehicles.read", "vehicles.confirm", "vehicles.manage"])
    hs = {"Authorization": f"Bearer {staff}"}
    queue = client.get(f"/api/v1/communities/{world.a}/vehicle-queue", headers=hs).json()
    assert len(queue) == 4
    ev = queue[-1]
    assert ev["read_plate"] == "皖AMK620" and ev["has_snapshot"]
    r = client.post(
        f"/api/v1/communities/{world.a}/vehicle-queue/{ev['id']}/confirm",
        json={"plate": "not a plate"},
        headers=hs,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "plate"
    r = client.post(
        f"/api/v1/communities/{world.a}/vehicle-queue/{ev['id']}/confirm",
        json={"plate": "皖A MK620"},
        headers=hs,
    )
    assert r.status_code == 200 and r.json()["decision"] == "open"
    assert r.json()["plate"] == "皖AMK620"
    snap = client.get(
        f"/api/v1/communities/{world.a}/vehicle-events/{ev['id']}/snapshot", headers=hs
    )
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    occ = client.get(f"/api/v1/communities/{world.a}/parking/occupancy", headers=hs).json()
    assert occ["inside"] == 2 and occ["by_kind"] == {"resident": 1, "unknown": 1}
    log = client.get(f"/api/v1/communities/{world.a}/vehicle-events?plate=皖A158", headers=hs)
    assert [e["plate"] for e in log.json()] == ["皖A158Y2"]
    # vehicles, permits, watch list over the API with clear errors
    r = client.post(f"/api/v1/communities/{world.a}/vehicles", json={"plate": "ABC"}, headers=hs)
    assert r.status_code == 422
    r = client.post(
        f"/api/v1/communities/{world.a}/vehicles", json={"plate": "皖A12345"}, headers=hs
    )
    assert r.status_code == 422 and r.json()["code"] == "owner_required"
    r = client.get(f"/api/v1/communities/{world.a}/vehicle-watchlist", headers=hs)
    assert r.status_code == 403


def test_barrier_command_reaches_the_device_over_mosquitto_and_is_acknowledged(
    db: Any, world: Any, app: Any, photos: dict[str, bytes]
) -> None:
    from iot._mqtt import SYSTEM_BROKER, forget_session, require_system_broker, wait_until
    from iot._mqtt import Device as DeviceClient

    from linli.iot.mqtt import BrokerAddress, MqttIngest

    require_system_broker()
    lanes = make_lanes(db, world.a)
    with db.session() as s:
        key = s.get(Device, lanes.entry_device).key  # type: ignore[union-attr]
        service.save_vehicle(
            s,
            system_ctx(world.a),
            VehicleIn(plate="皖AJ002E", resident_id=world.residents_a[0]),
            app.state.settings,
        )
    tag = uuid.uuid4().hex[:8]
    ing = MqttIngest(
        db,
        BrokerAddress(*SYSTEM_BROKER),
        client_id=f"linli-veh-{tag}",
        max_wait=0.02,
        sweep_every=3600,
    )
    ing.start(sweeper=False)
    barrier = None
    try:
        assert ing.wait_connected(15)

        def answer(dev: DeviceClient, cmd: dict[str, Any]) -> None:
            dev.publish(
                "commands/ack", {"id": cmd["id"], "ok": True, "result": {"open": True}}, wait=False
            )

        barrier = DeviceClient(SYSTEM_BROKER[1], key, client_id=f"barrier-{tag}", on_command=answer)
        assert barrier.connect()
        assert not barrier.subscribe_commands().is_failure
        with db.session() as s:
            d, _ev = service.decide(
                s, system_ctx(world.a, "camera"), lanes.entry, photos["皖AJ002E"], app.state.files
            )
            assert d.decision == "open" and d.command_id
            cid = d.command_id
        wait_until(lambda: barrier.commands, 20, "the open command at the barrier")
        cmd = barrier.commands[0]
        assert cmd["name"] == "open" and cmd["id"] == cid
        assert cmd["params"]["plate"] == "皖AJ002E" and cmd["params"]["direction"] == "in"

        def status() -> str:
            with db.session() as s:
                return str(s.scalar(select(Command.status).where(Command.id == cid)))

        wait_until(lambda: status() == "acked", 20, "the barrier's acknowledgement")
        # a queued vehicle sends nothing
        with db.session() as s:
            d2, _ = service.decide(
                s, system_ctx(world.a, "camera"), lanes.entry, photos["皖AMK620"], app.state.files
            )
            assert d2.decision == "queued" and d2.command_id is None
    finally:
        if barrier is not None:
            barrier.close()
        ing.stop()
        forget_session(f"linli-veh-{tag}")
    assert len(barrier.commands) == 1
