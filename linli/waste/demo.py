"""Demo data of the living environment: two collection stations with fixed delivery hours,
bins with their devices, a week of deposits made through the real terminal flow (card →
lid command acknowledged → weight and photo), staff inspections, bins filling up (their
fill-level history, then the IoT simulator keeps filling them live) so that the overflow
warning fires, and supervision records from generated camera frames at night."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core.config import Settings
from linli.core.db import utcnow
from linli.core.files import FileStore
from linli.core.web import system_ctx
from linli.iot import service as iot
from linli.iot.models import Command, Device, LatestValue, Telemetry
from linli.iot.simulator import SimDevice
from linli.people.models import Building, Resident
from linli.waste import service
from linli.waste.schemas import BinIn, StationIn, Window

#: (category, share of deposits, typical kg)
MIX = (
    ("kitchen", 0.45, 1.2),
    ("residual", 0.3, 0.8),
    ("recyclable", 0.2, 0.6),
    ("hazardous", 0.05, 0.2),
)


def bag_photo(rng: random.Random, colour: tuple[int, int, int], size: int = 320) -> bytes:
    """A generated photo of the bin opening with a bag in it (no real photo of garbage is
    shipped with the project)."""
    from PIL import Image, ImageDraw, ImageFilter

    im = Image.new("RGB", (size, int(size * 0.75)), (40, 44, 48))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.randint(20, size - 120), rng.randint(20, int(size * 0.75) - 100)
        w, h = rng.randint(60, 140), rng.randint(50, 110)
        c = tuple(max(0, min(255, v + rng.randint(-30, 30))) for v in colour)
        d.ellipse((x, y, x + w, y + h), fill=c)
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def scene(rng: np.random.Generator, *, person: bool = False, pile: bool = False) -> bytes:
    """A generated camera frame of a station: wall, ground, bins; optionally a person
    (a tall dark shape) and bags piled beside the bins."""
    import cv2

    h, w = 240, 320
    img = np.zeros((h, w, 3), np.uint8)
    img[:120] = (170, 175, 180)
    img[120:] = (95, 100, 100)
    for i, colour in enumerate(((191, 95, 31), (40, 40, 198), (65, 76, 109), (51, 51, 51))):
        cv2.rectangle(img, (20 + i * 50, 70), (60 + i * 50, 150), colour, -1)
    if person:
        cv2.rectangle(img, (240, 60), (270, 200), (30, 30, 60), -1)
        cv2.circle(img, (255, 48), 14, (120, 150, 190), -1)
    if pile:
        for cx, cy, r in ((235, 200, 22), (265, 205, 26), (250, 180, 18), (290, 195, 20)):
            cv2.circle(img, (cx, cy), r, (20, 20, 20), -1)
    noise = rng.normal(0, 3, img.shape)
    img = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(buf)


_PHOTO_COLOURS = {
    "kitchen": (110, 140, 60),
    "residual": (60, 60, 60),
    "recyclable": (60, 110, 190),
    "hazardous": (200, 60, 50),
}


def _card_of(s: Session, cid: int, settings: Settings, r: Resident) -> str:
    from linli.access import service as access
    from linli.access.models import Credential
    from linli.access.schemas import CredentialIn

    ctx = system_ctx(cid, "demo")
    ident = access.identity_for_resident(s, ctx, r.id)
    card = s.scalar(
        select(Credential.lookup).where(
            Credential.identity_id == ident.id, Credential.kind == "card", Credential.active
        )
    )
    if card:
        return str(card)
    value = f"W{20000 + r.id}"
    access.add_credential(s, ctx, ident.id, CredentialIn(kind="card", value=value), settings)
    return value


def seed_waste(
    s: Session,
    community_id: int,
    files: FileStore,
    settings: Settings,
    now: datetime | None = None,
    seed: int = 8,
) -> list[SimDevice]:
    """Create the demo's waste data; returns the fill-level sensors for the simulator."""
    now = now or utcnow()
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    ctx = system_ctx(community_id, "demo")
    buildings = list(
        s.scalars(
            select(Building).where(Building.community_id == community_id).order_by(Building.id)
        )
    )
    hours = [Window(start="06:30", end="09:00"), Window(start="18:00", end="21:00")]
    fill_secrets: list[tuple[int, str, str]] = []
    stations = []
    for k, name in enumerate(("东区投放点", "西区投放点")):
        st, _secrets = service.create_station(
            s,
            ctx,
            StationIn(
                name=name,
                location=f"{buildings[k].name}旁" if k < len(buildings) else name,
                building_id=buildings[k].id if k < len(buildings) else None,
                hours=hours,
                overflow_lead_min=90,
            ),
        )
        for cat in ("recyclable", "hazardous", "kitchen", "residual"):
            b, secrets = service.add_bin(s, ctx, st.id, BinIn(category=cat))
            for d in secrets:
                if d["role"] == "fill":
                    fill_secrets.append((b.id, d["key"], d["secret"]))
        stations.append(st)
    s.flush()
    residents = list(
        s.scalars(select(Resident).where(Resident.community_id == community_id).limit(24))
    )
    cards = {r.id: _card_of(s, community_id, settings, r) for r in residents}
    # a week of deposits through the real terminal flow
    tz = service.local_time(ctx.timezone, now).tzinfo
    made = []
    for day in range(7, 0, -1):
        local_day = (service.local_time(ctx.timezone, now) - timedelta(days=day)).date()
        for r in residents:
            if rng.random() < 0.35:
                continue
            hour = rng.choice((7, 8, 18, 19, 20, 13))  # 13:00 is outside the hours
            t = datetime(
                local_day.year, local_day.month, local_day.day, hour, rng.randint(0, 59), tzinfo=tz
            )
            st = stations[r.id % len(stations)]
            cat = rng.choices([m[0] for m in MIX], [m[1] for m in MIX])[0]
            kg = max(0.05, rng.gauss(dict((m[0], m[2]) for m in MIX)[cat], 0.3))
            ts = service.identify(s, settings, st, "card", cards[r.id], now=t)
            opened = _open(s, settings, st, ts, cat, t)
            cmd = opened["command"]
            if cmd is not None and rng.random() > 0.03:
                dev = s.get(Device, cmd.device_id)
                assert dev is not None
                iot.ack_command(s, dev, cmd.id, True, {"open": True})
            elif cmd is not None:
                t = t + timedelta(seconds=service.LID_TIMEOUT_S + 5)  # a lid that stuck
            try:
                dep, _pts = service.record_deposit(
                    s,
                    settings,
                    files,
                    st,
                    ts,
                    round(kg, 2),
                    bag_photo(rng, _PHOTO_COLOURS[cat]),
                    now=t,
                )
                made.append(dep)
            except Exception:
                continue
    # staff inspect most of the older deposits
    for dep in made:
        if dep.status != "valid" or dep.at > now - timedelta(days=1) or rng.random() < 0.2:
            continue
        bad = rng.random() < (0.25 if dep.category == "kitchen" else 0.1)
        service.inspect(
            s,
            ctx,
            dep.id,
            "contaminated" if bad else "correct",
            "塑料袋混入 / plastic bag in the kitchen bin" if bad else None,
            now=dep.at,
        )
    # fill-level history: bins filling at different rates, two of them close to full
    for n, (bin_id, _key, _secret) in enumerate(fill_secrets):
        got = s.get(service.Bin, bin_id)
        assert got is not None and got.fill_device_id is not None
        b = got
        start_level = rng.uniform(5, 30) if n not in (2, 6) else rng.uniform(55, 65)
        rate = rng.uniform(1.5, 4.0) if n not in (2, 6) else rng.uniform(9, 12)  # %/h
        last = None
        for m in range(0, 181, 5):
            t = now - timedelta(minutes=180 - m)
            level = min(100.0, start_level + rate * m / 60 + rng.gauss(0, 0.6))
            s.add(Telemetry(device_id=b.fill_device_id, metric="fill", ts=t, value=level))
            last = (t, level)
        assert last is not None
        s.merge(LatestValue(device_id=b.fill_device_id, metric="fill", ts=last[0], value=last[1]))
    s.flush()
    service.check_overflow(s, now, community_id)
    # night-time frames at the first station: someone leaves bags outside the hours
    night = datetime(
        *(service.local_time(ctx.timezone, now) - timedelta(days=1)).timetuple()[:3],
        23,
        10,
        tzinfo=tz,
    )
    st0 = stations[0]
    for i in range(6):
        service.camera_frame(s, files, st0, scene(nrng), now=night + timedelta(seconds=i))
    for i in range(3):
        service.camera_frame(
            s,
            files,
            st0,
            scene(nrng, person=True, pile=i > 0),
            now=night + timedelta(seconds=10 + i),
        )
    # the second station's camera: reference of the clean corner, then bags left beside
    # the bins for ten minutes (the pile alarm and its work order)
    st1 = stations[1]
    service.set_pile_reference(
        s, ctx, files, st1.id, scene(nrng), [[0.6, 0.6], [1.0, 0.6], [1.0, 1.0], [0.6, 1.0]]
    )
    t = now - timedelta(minutes=12)
    for i in range(4):
        service.camera_frame(s, files, st1, scene(nrng), now=t + timedelta(seconds=i))
    for m in range(0, 11, 2):
        service.camera_frame(
            s, files, st1, scene(nrng, pile=True), now=t + timedelta(minutes=1 + m)
        )
    return [SimDevice(key=k, secret=sec, profile="bin_level") for _b, k, sec in fill_secrets]


def _open(
    s: Session, settings: Settings, st: Any, ts: Any, cat: str, t: datetime
) -> dict[str, Any]:
    out = service.open_lid(s, settings, st, ts, cat, t)
    cmd: Command | None = out["command"]
    if cmd is not None:
        cmd.created_at = t
        cmd.sent_at = None
    return out
