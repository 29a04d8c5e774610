"""Overflow early warning on simulated fill curves (controllable clock), supervision by the
station camera, voice prompts served and edited, statistics and CSV, pages, the demo."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from linli.core.web import system_ctx
from linli.iot.ingest import Ingestor, Message
from linli.iot.models import Alarm, Device
from linli.waste import service, terminal
from linli.waste.demo import scene, seed_waste
from linli.waste.models import Bin, Deposit, Supervision
from linli.workorders.models import WorkOrder

from ._helpers import b64, make_site, photo, resident_card
from .test_voice import read_wav, speech_stats

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _curve(
    start: float,
    rate_h: float,
    minutes: int,
    *,
    every: int = 5,
    noise: float = 1.0,
    seed: int = 0,
    end: datetime = NOW,
) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    return [
        (
            end - timedelta(minutes=minutes - m),
            max(0.0, min(100.0, start + rate_h * m / 60 + rng.gauss(0, noise))),
        )
        for m in range(0, minutes + 1, every)
    ]


def test_forecast_on_simulated_fill_curves() -> None:
    # 20 % → rising 10 %/h for 3 h (50 % now): full (95 %) in about 4.5 h
    pts = _curve(20, 10, 180)
    fc = service.forecast(pts, NOW)
    assert fc.rate_per_h is not None and abs(fc.rate_per_h - 10) < 1.0
    assert fc.full_at is not None
    assert abs((fc.full_at - NOW).total_seconds() / 3600 - 4.5) < 0.5
    # robust: a few wild readings (a bag over the sensor) barely move the prediction
    bad = list(pts)
    for k in (5, 17, 30):
        bad[k] = (bad[k][0], 99.0)
    fc2 = service.forecast(bad, NOW)
    assert fc2.full_at is not None and abs((fc2.full_at - fc.full_at).total_seconds()) < 1800
    # emptied an hour ago: only the new segment counts
    before = _curve(40, 15, 120, end=NOW - timedelta(minutes=60))
    after = _curve(5, 6, 55, end=NOW)
    fc3 = service.forecast(before + after, NOW)
    assert fc3.emptied_at is not None and fc3.emptied_at > NOW - timedelta(minutes=65)
    assert fc3.rate_per_h is not None and abs(fc3.rate_per_h - 6) < 1.5
    # flat: no prediction; too few readings: none either
    assert service.forecast(_curve(30, 0, 120, noise=0.3), NOW).full_at is None
    assert service.forecast(pts[-2:], NOW).full_at is None
    assert service.forecast([], NOW).level is None
    # already full
    assert service.forecast(_curve(90, 10, 60), NOW).full_at is not None


def _ingest(db: Any, key: str, pts: list[tuple[datetime, float]]) -> None:
    import json

    msgs = [
        Message(
            f"linli/devices/{key}/telemetry",
            json.dumps({"ts": t.isoformat(), "values": {"fill": round(v, 1)}}).encode(),
            t,
        )
        for t, v in pts
    ]
    stats = Ingestor(db).process(msgs)
    assert stats.rejected == 0, stats.rejections


def test_overflow_alarm_and_work_order_before_it_overflows(db: Any, world: Any) -> None:
    site = make_site(db, world.a, building_id=world.buildings_a[0])
    with db.session() as s:
        keys = {
            cat: s.get(Device, s.get(Bin, bid).fill_device_id).key  # type: ignore[union-attr]
            for cat, bid in site.bins.items()
        }
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    # kitchen: 50 % → 80 % in 3 h, 10 %/h: full in 1.5 h → inside the 60-minute lead? no.
    _ingest(db, keys["kitchen"], _curve(50, 10, 180, end=t0 + timedelta(hours=3)))
    _ingest(db, keys["residual"], _curve(10, 2, 180, end=t0 + timedelta(hours=3)))
    now = t0 + timedelta(hours=3)
    with db.session() as s:
        out = {r["bin_id"]: r for r in service.check_overflow(s, now, world.a)}
    assert out[site.bins["kitchen"]]["state"] == "ok"  # 1.5 h ahead, lead is 60 min
    with db.session() as s:
        b = s.get(Bin, site.bins["kitchen"])
        assert b is not None and b.predicted_full_at is not None
        eta = (b.predicted_full_at - now).total_seconds() / 3600
        assert 1.1 < eta < 1.9, eta
    # 40 more minutes of filling: now inside the lead time → alarm + cleaning work order
    later = now + timedelta(minutes=40)
    _ingest(
        db,
        keys["kitchen"],
        [(now + timedelta(minutes=m), 80 + 10 * m / 60) for m in range(5, 41, 5)],
    )
    with db.session() as s:
        out = {r["bin_id"]: r for r in service.check_overflow(s, later, world.a)}
        assert out[site.bins["kitchen"]]["state"] == "warning"
        assert out[site.bins["residual"]]["state"] == "ok"
        alarms = list(s.scalars(select(Alarm).where(Alarm.kind == "waste.bin.overflow")))
        assert len(alarms) == 1 and alarms[0].status == "active" and alarms[0].work_order_id
        wo = s.get(WorkOrder, alarms[0].work_order_id)
        assert wo is not None and wo.category == "sanitation"
        assert wo.building_id == world.buildings_a[0]
        assert alarms[0].details["msg"]["params"]["minutes"] <= 60
    # the same again: no second alarm, no second work order
    with db.session() as s:
        service.check_overflow(s, later + timedelta(minutes=1), world.a)
        assert len(list(s.scalars(select(Alarm).where(Alarm.kind == "waste.bin.overflow")))) == 1
        assert len(list(s.scalars(select(WorkOrder)))) == 1
    # emptied: the forecast resets, the alarm clears
    _ingest(
        db, keys["kitchen"], [(later + timedelta(minutes=m), 4 + m * 0.05) for m in range(5, 31, 5)]
    )
    with db.session() as s:
        out = {
            r["bin_id"]: r
            for r in service.check_overflow(s, later + timedelta(minutes=31), world.a)
        }
        assert out[site.bins["kitchen"]]["state"] == "cleared"
        b = s.get(Bin, site.bins["kitchen"])
        assert b is not None and b.last_emptied_at is not None and (b.fill_level or 100) < 10
        assert s.scalar(select(Alarm.status).where(Alarm.kind == "waste.bin.overflow")) == "cleared"


def test_camera_motion_outside_hours_and_pile_beside_bins(db: Any, world: Any, app: Any) -> None:
    site = make_site(db, world.a, hours=[("07:00", "09:00")])
    rng = np.random.default_rng(1)
    files = app.state.files
    night = datetime(2026, 11, 20, 23, 0, tzinfo=UTC).astimezone()  # 07:00 next day in Shanghai?
    night = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai: outside
    with db.session() as s:
        st = s.get(service.Station, site.station)
        assert st is not None
        for i in range(5):
            r = service.camera_frame(s, files, st, scene(rng), now=night + timedelta(seconds=i))
            assert r["supervision_id"] is None and r["motion"] < service.MOTION_FRACTION
        r = service.camera_frame(
            s, files, st, scene(rng, person=True), now=night + timedelta(seconds=6)
        )
        assert r["outside_hours"] and r["motion"] >= service.MOTION_FRACTION
        assert r["supervision_id"]
        rec = s.get(Supervision, r["supervision_id"])
        assert rec is not None and rec.kind == "outside_hours_drop" and rec.snapshot_sha256
        # during the delivery hours the same scene makes no record
        morning = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
        r2 = service.camera_frame(s, files, st, scene(rng, person=True), now=morning)
        assert r2["outside_hours"] is False and r2["supervision_id"] is None
        # piled garbage: reference of the clean scene, then bags that stay
        service.set_pile_reference(
            s,
            system_ctx(world.a),
            files,
            st.id,
            scene(rng),
            [[0.6, 0.6], [1.0, 0.6], [1.0, 1.0], [0.6, 1.0]],
        )
    with db.session() as s:
        st = s.get(service.Station, site.station)
        assert st is not None
        clean = service.camera_frame(s, files, st, scene(rng), now=night + timedelta(minutes=1))
        assert clean["pile"] is not None and clean["pile"] < service.PILE_FRACTION / 2
        first = service.camera_frame(
            s, files, st, scene(rng, pile=True), now=night + timedelta(minutes=2)
        )
        assert first["pile"] >= service.PILE_FRACTION and first["alarm_id"] is None
        for k in range(6):  # still there 7 minutes later; MOG has absorbed it by now
            service.camera_frame(
                s, files, st, scene(rng, pile=True), now=night + timedelta(minutes=3 + k)
            )
        last = service.camera_frame(
            s, files, st, scene(rng, pile=True), now=night + timedelta(minutes=9)
        )
        assert last["alarm_id"], last
        a = s.get(Alarm, last["alarm_id"])
        assert a is not None and a.kind == "waste.pile" and a.work_order_id
        # cleaned: the alarm clears
        for k in range(3):
            service.camera_frame(s, files, st, scene(rng), now=night + timedelta(minutes=10 + k))
        assert s.get(Alarm, last["alarm_id"]).status == "cleared"  # type: ignore[union-attr]
        # not an image
        try:
            service.camera_frame(s, files, st, b"not an image")
        except service.AppError as exc:
            assert exc.code == "bad_photo"
        else:
            raise AssertionError("a non-image frame was accepted")


def test_voice_prompts_real_speech_served_and_edited(
    client: Any, db: Any, world: Any, app: Any
) -> None:
    from conftest import login

    site = make_site(db, world.a, hours=[("18:00", "20:00")])
    settings = app.state.settings
    with db.session() as s:
        said = {
            lang: service.prompt(
                s,
                settings,
                world.a,
                site.station,
                "outside_hours",
                lang,
                next_open={"en": "6 p m", "zh": "晚上6点"},
            )
            for lang in ("zh", "en")
        }
    for p in said.values():
        r = client.get(p["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        samples, rate = read_wav(r.content)
        st = speech_stats(samples, rate)
        assert st["rms"] > 500 and st["runs"] >= 4 and st["periodic_fraction"] >= 0.5, st
        assert 1.5 < st["duration"] < 12, st
    assert said["zh"]["url"] != said["en"]["url"]
    assert client.get("/waste/audio/../../secret_key").status_code == 404
    assert client.get("/waste/audio/" + "0" * 64 + ".wav").status_code == 404
    # staff edit the welcome text of this station: new audio, old file gone
    with db.session() as s:
        old = service.prompt(s, settings, world.a, site.station, "welcome", "en")
    old_path = service.audio_dir(settings) / old["url"].rsplit("/", 1)[1]
    assert old_path.is_file()
    client.headers["x-csrf-token"] = login(client, "staff")
    r = client.put(
        f"/api/v1/communities/{world.a}/waste/prompts",
        json={
            "key": "welcome",
            "lang": "en",
            "station_id": site.station,
            "text": "Good evening. Please sort your rubbish.",
        },
    )
    assert r.status_code == 200, r.text
    assert not old_path.exists()
    new_url = r.json()["sample"]["url"]
    assert new_url != old["url"] and client.get(new_url).status_code == 200
    with db.session() as s:
        assert (
            service.prompt(s, settings, world.a, site.station, "welcome", "en")["text"]
            == "Good evening. Please sort your rubbish."
        )
        # other stations keep the default
        assert (
            service.prompt(s, settings, world.a, None, "welcome", "en")["text"]
            == "Welcome. Please sort your waste."
        )
    # placeholders must stay; unknown prompts and empty text are refused
    for body, code in (
        ({"key": "outside_hours", "lang": "en", "text": "Closed now."}, "bad_template"),
        ({"key": "nope", "lang": "en", "text": "x"}, "unknown_prompt"),
        ({"key": "welcome", "lang": "en", "text": "   "}, "validation_failed"),
        ({"key": "welcome", "lang": "en", "text": "{oops"}, "bad_template"),
    ):
        r = client.put(f"/api/v1/communities/{world.a}/waste/prompts", json=body)
        assert r.status_code == 422 and r.json()["code"] == code, (body, r.text)


def test_statistics_inspection_accuracy_and_csv(
    client: Any, db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    from conftest import login

    site = make_site(db, world.a)
    settings, files = app.state.settings, app.state.files
    resident_card(db, settings, world.a, world.residents_a[0], "S1")
    resident_card(db, settings, world.a, world.residents_a[1], "S2")
    t = datetime(2026, 11, 18, 1, 0, tzinfo=UTC)  # 09:00 Shanghai; no hours = always open
    ids = []
    for card, cat, kg in (
        ("S1", "kitchen", 2.0),
        ("S1", "recyclable", 1.0),
        ("S2", "residual", 3.0),
        ("S2", "kitchen", 1.5),
    ):
        a = terminal.handle(
            db,
            settings,
            files,
            site.station,
            {"op": "identify", "method": "card", "value": card},
            now=t,
        )
        b = terminal.handle(
            db,
            settings,
            files,
            site.station,
            {"op": "open", "session_id": a["session_id"], "category": cat},
            now=t,
        )
        with db.session() as s:
            from linli.iot import service as iot
            from linli.iot.models import Command

            cmd = s.get(Command, b["command_id"])
            iot.ack_command(s, s.get(Device, cmd.device_id), cmd.id, True, None)  # type: ignore[union-attr,arg-type]
        c = terminal.handle(
            db,
            settings,
            files,
            site.station,
            {
                "op": "deposit",
                "session_id": a["session_id"],
                "weight_kg": kg,
                "photo_b64": b64(photo(shared_data)),
            },
            now=t,
        )
        assert c["ok"], c
        ids.append(c["deposit_id"])
    client.headers["x-csrf-token"] = login(client, "staff")
    base = f"/api/v1/communities/{world.a}/waste"
    r = client.post(f"{base}/deposits/{ids[0]}/inspection", json={"result": "correct"})
    assert r.status_code == 200 and r.json()["inspection"] == "correct"
    client.post(
        f"{base}/deposits/{ids[3]}/inspection",
        json={"result": "contaminated", "note": "plastic bag"},
    )
    client.post(f"{base}/deposits/{ids[2]}/inspection", json={"result": "correct"})
    # judged again: replaces the first judgement and its points
    client.post(f"{base}/deposits/{ids[2]}/inspection", json={"result": "contaminated"})
    assert (
        client.post(f"{base}/deposits/{ids[2]}/inspection", json={"result": "maybe"}).status_code
        == 422
    )
    assert (
        client.post(f"{base}/deposits/999999/inspection", json={"result": "correct"}).status_code
        == 404
    )
    pts = client.get(f"{base}/residents/{world.residents_a[0]}/points").json()
    assert pts["balance"] == 1 + 1 + 2  # two deposits, one correct
    pts2 = client.get(f"{base}/residents/{world.residents_a[1]}/points").json()
    assert pts2["balance"] == 1 + 1 - 1 - 1
    acc = {a["name"]: a for a in client.get(f"{base}/accuracy?by=resident").json()}
    assert acc[f"居民{world.a}0"]["accuracy"] == 1.0
    assert acc[f"居民{world.a}1"]["accuracy"] == 0.0
    by_b = client.get(f"{base}/accuracy?by=building").json()
    assert {b["id"] for b in by_b} == set(world.buildings_a)
    st = client.get(f"{base}/stats?start=2026-11-18&end=2026-11-18").json()
    assert st["total_kg"] == 7.5 and st["totals"]["kitchen"] == 3.5
    assert st["recycling_rate"] == round((3.5 + 1.0) / 7.5, 4)
    part = {p["building_id"]: p for p in st["participation"]}
    assert part[world.buildings_a[0]]["rate"] == 1.0
    assert st["contamination"][0]["category"] in ("kitchen", "residual")
    r = client.get(f"{base}/stats.csv?start=2026-11-17&end=2026-11-18")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][0] == "date" and rows[2][0] == "2026-11-18"
    assert float(rows[2][-1]) == 7.5 and float(rows[1][-1]) == 0.0
    for q in (
        "start=2026-11-20&end=2026-11-01",
        "start=2020-01-01&end=2026-11-18",
        "start=yesterday",
    ):
        assert client.get(f"{base}/stats?{q}").status_code == 422, q
    with db.session() as s:
        assert s.get(Deposit, ids[3]).inspection_note == "plastic bag"  # type: ignore[union-attr]


def test_guidance_api_bad_input(client: Any) -> None:
    r = client.get("/api/v1/waste/guide", params={"item": "banana peel"})
    assert r.status_code == 200 and r.json()["category"] == "kitchen"
    for item, code in (
        ("", "empty_query"),
        ("x" * 10_000, "query_too_long"),
        ("！？", "no_letters"),
    ):
        r = client.get(
            "/api/v1/waste/guide", params={"item": item}, headers={"Accept-Language": "zh"}
        )
        assert r.status_code == 422 and r.json()["code"] == code, r.text


def test_pages_in_both_languages_and_demo(client: Any, db: Any, world: Any, app: Any) -> None:
    from conftest import login

    with db.session() as s:
        fleet = seed_waste(s, world.a, app.state.files, app.state.settings)
    assert fleet and all(d.profile == "bin_level" for d in fleet)
    with db.session() as s:
        n_dep = len(list(s.scalars(select(Deposit.id))))
        assert n_dep >= 5
        assert list(s.scalars(select(Alarm).where(Alarm.kind == "waste.bin.overflow")))
        kinds = {r.kind for r in s.scalars(select(Supervision))}
        assert kinds == {"outside_hours_drop", "pile_beside_bins"}
        assert list(s.scalars(select(Alarm).where(Alarm.kind == "waste.pile")))
    login(client, "staff")
    c = f"/c/{world.a}/waste"
    pages = {
        c: ("Collection stations", "投放点"),
        f"{c}/deposits": ("Deposits and inspection", "投放记录"),
        f"{c}/stats": ("Waste statistics", "垃圾分类统计"),
        f"{c}/prompts": ("Voice prompts", "语音提示"),
        f"{c}/supervision": ("Supervision records", "监督记录"),
        f"{c}/guide?item=battery": ("Sorting guide", "分类指引"),
    }
    for url, (en, zh) in pages.items():
        client.cookies.set("lang", "en")
        r = client.get(url)
        assert r.status_code == 200 and en in r.text, url
        client.cookies.set("lang", "zh_CN")
        r = client.get(url)
        assert r.status_code == 200 and zh in r.text, url
    client.cookies.set("lang", "en")
    r = client.get(f"{c}/prompts")
    assert r.text.count("<audio") >= 2 * 13
    r = client.get(f"{c}/deposits")
    assert "/photo" in r.text
    r = client.get(f"{c}/guide", params={"item": ""})
    assert r.status_code == 422
    r = client.get(f"{c}/stats?start=nope")
    assert r.status_code == 422
    # the resident sees the guide, not the staff pages
    client.cookies.clear()
    login(client, "resident")
    assert client.get(f"{c}/guide?item=电池").status_code == 200
    assert client.get(c).status_code in (403, 404)


def test_periodic_runs_the_forecast(db: Any, world: Any, app: Any) -> None:
    site = make_site(db, world.a)
    with db.session() as s:
        key = s.get(Device, s.get(Bin, site.bins["kitchen"]).fill_device_id).key  # type: ignore[union-attr]
    end = datetime.now(UTC).replace(microsecond=0)
    _ingest(db, key, _curve(60, 20, 120, end=end))
    settings = app.state.settings
    settings.mqtt_enabled = False  # no bridge in this test
    service.periodic(db, settings, app.state.files, now=end)
    with db.session() as s:
        b = s.get(Bin, site.bins["kitchen"])
        assert b is not None and b.predicted_full_at is not None and b.fill_rate_per_h
        assert s.scalar(select(Alarm.kind).where(Alarm.kind == "waste.bin.overflow"))
