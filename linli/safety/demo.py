"""Demo data of community safety: cameras fed from the real clip of
``../shared/data/faces/video`` and from a generated gate scene (real gallery portraits walking
through a corridor), one unreachable camera (its health alarm), a watch-list entry, and
elderly residents in care — one of whom has shown no sign of activity for 30 hours, so the
care alarm and the wellbeing-visit work order are there when the demo starts."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core.config import Settings, make_settings
from linli.core.db import utcnow
from linli.core.files import FileStore
from linli.core.models import RoleGrant
from linli.core.web import system_ctx
from linli.safety import service
from linli.safety.models import Camera
from linli.safety.schemas import CameraIn, CarePersonIn, WatchEntryIn

REPO = Path(__file__).resolve().parent.parent.parent
SHARED = REPO.parent / "shared" / "data" / "faces"


def make_gate_scene(
    path: Path,
    gallery: Path,
    *,
    seconds: float = 24.0,
    fps: int = 10,
    size: tuple[int, int] = (640, 480),
    seed: int = 3,
) -> Path:
    """A generated gate camera: real portraits of ``gallery`` walk top-down through a corridor
    (two of them close together: a tailgater), written as an MJPG AVI with OpenCV."""
    import cv2

    w, h = size
    rng = random.Random(seed)
    photos = []
    for d in sorted(p for p in gallery.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            img = cv2.imread(str(f))
            if img is not None:
                photos.append(img)
                break
    if not photos:
        raise FileNotFoundError(f"no photos in {gallery}")
    bg = np.full((h, w, 3), 0, np.uint8)
    for y in range(h):  # a floor with a gradient and tiles
        bg[y, :] = (70 + y // 8, 80 + y // 10, 90 + y // 12)
    for x in range(0, w, 80):
        cv2.line(bg, (x, 0), (x, h), (60, 60, 60), 1)
    cv2.rectangle(bg, (40, 200), (w - 40, 214), (40, 40, 160), -1)  # the gate threshold
    walkers = []
    t = 0.5
    for i in range(6):
        walkers.append((t, photos[i % len(photos)], rng.uniform(0.25, 0.6)))
        t += 1.2 if i == 3 else rng.uniform(3.0, 4.0)  # walker 4 follows walker 3 closely
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    try:
        for k in range(int(seconds * fps)):
            clock = k / fps
            frame = bg.copy()
            for start, img, xc in walkers:
                prog = (clock - start) / 5.0  # 5 s from the top to the bottom
                if not 0 <= prog <= 1:
                    continue
                ph = 120
                pw = int(img.shape[1] * ph / img.shape[0])
                face = cv2.resize(img, (pw, ph))
                x0 = int(xc * w - pw / 2)
                y0 = int(-ph + prog * (h + ph))
                ys, ye = max(0, y0), min(h, y0 + ph)
                xs, xe = max(0, x0), min(w, x0 + pw)
                if ye > ys and xe > xs:
                    frame[ys:ye, xs:xe] = face[ys - y0 : ye - y0, xs - x0 : xe - x0]
            vw.write(frame)
    finally:
        vw.release()
    return path


def seed_safety(
    s: Session,
    community_id: int,
    files: FileStore,
    settings: Settings | None = None,
    *,
    faces_dir: Path | None = None,
) -> dict[str, Any]:
    """Seed cameras, a watch-list entry and people in care (idempotent: nothing when the
    community has cameras already)."""
    if s.scalar(select(Camera.id).where(Camera.community_id == community_id)) is not None:
        return {}
    settings = settings or make_settings(data_dir=files.root.parent)
    from linli.people.models import Community, Resident

    c = s.get(Community, community_id)
    ctx = system_ctx(community_id, "demo", c.timezone if c else "Asia/Shanghai")
    faces_dir = faces_dir or SHARED
    clip = faces_dir / "video" / "short_hamilton_clip.mp4"
    now = utcnow()
    out: dict[str, Any] = {"cameras": []}

    from linli.access.models import Gate

    gate = s.scalar(select(Gate).where(Gate.community_id == community_id).order_by(Gate.id))
    cams: list[CameraIn] = []
    if clip.is_file():
        cams.append(
            CameraIn(
                name="礼堂 Hall stage",
                url=str(clip),
                location="社区礼堂 Community hall",
                fps=2.0,
                face_watch=True,
                blur_faces=True,
                analytics={
                    "anchor": "center",
                    "lines": [{"id": "aisle", "name": "Aisle", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
                    "zones": [
                        {
                            "id": "stage",
                            "name": "Stage",
                            "polygon": [[0.05, 0.05], [0.95, 0.05], [0.95, 0.95], [0.05, 0.95]],
                            "loitering": {"seconds": 6},
                            "gathering": {"max_people": 3},
                        }
                    ],
                },
            )
        )
    gallery = faces_dir / "gallery"
    if gallery.is_dir():
        scene = make_gate_scene(settings.data_dir / "safety" / "east_gate_scene.avi", gallery)
        cams.append(
            CameraIn(
                name="东门通道 East gate corridor",
                url=str(scene),
                location="东门 East gate",
                fps=4.0,
                face_watch=True,
                gate_id=gate.id if gate else None,
                analytics={
                    "anchor": "center",
                    "lines": [
                        {
                            "id": "gate",
                            "name": "Gate",
                            "a": [0.05, 0.45],
                            "b": [0.95, 0.45],
                            **(
                                {"tailgating": {"direction": "in", "window_s": 5, "grace_s": 2}}
                                if gate
                                else {}
                            ),
                        }
                    ],
                    "zones": [
                        {
                            "id": "after-hours",
                            "name": "Corridor",
                            "polygon": [[0.05, 0.5], [0.95, 0.5], [0.95, 0.98], [0.05, 0.98]],
                            "intrusion": {"hours": ["23:00-05:00"]},
                            "motion": {"hours": ["23:00-05:00"]},
                        }
                    ],
                },
            )
        )
    cams.append(
        CameraIn(
            name="地下车库 Garage (offline)",
            url="rtsp://127.0.0.1:8554/garage",
            location="地下车库 B1",
            fps=1.0,
            silent_after_s=60,
        )
    )
    for data in cams:
        cam = service.save_camera(s, ctx, data)
        out["cameras"].append(cam.id)

    # a watch-list entry: a missing person reported by the family (demo)
    staff_id = s.scalar(
        select(RoleGrant.user_id)
        .where(RoleGrant.community_id == community_id, RoleGrant.role == "staff")
        .order_by(RoleGrant.user_id)
    )
    photo = (
        next(iter(sorted((gallery / "alex_lacamoire").glob("*"))), None)
        if gallery.is_dir()
        else None
    )
    if staff_id is not None:
        e = service.create_watch_entry(
            s,
            ctx,
            WatchEntryIn(
                name="演示 Demo: missing person",
                reason="家属报告走失，派出所协查 Reported missing; police request (demo)",
                authorised_by_user_id=staff_id,
                expires_at=now + timedelta(days=14),
            ),
            now=now,
        )
        if photo is not None:
            service.add_watch_face(s, ctx, e.id, photo.read_bytes(), settings)

    # elderly residents living alone in the grids' buildings
    from linli.people.models import Building, Household, Unit

    q = (
        select(Resident)
        .join(Household, Resident.household_id == Household.id)
        .join(Unit, Household.unit_id == Unit.id)
        .join(Building, Unit.building_id == Building.id)
        .where(Resident.community_id == community_id, Building.grid_id.is_not(None))
        .order_by(Resident.birth_year, Resident.id)
    )
    elderly = [r for r in s.scalars(q) if r.birth_year and r.birth_year <= 1956][:4]
    rng = random.Random(11)
    people = []
    for i, r in enumerate(elderly):
        p = service.enrol_care(
            s,
            ctx,
            CarePersonIn(
                resident_id=r.id,
                consent_by="family" if i % 2 else "person",
                consent_name=("家属 " + r.name) if i % 2 else r.name,
                family_name=f"{r.name}的子女",
                family_phone=f"139{rng.randrange(10**7, 10**8)}",
                consent_note=f"纸质同意书 Paper consent form #{i + 1}",
            ),
            now=now - timedelta(days=15),
        )
        # two weeks of habits: up at 7, out shopping at 9, back at 11, lights off at 22
        for d in range(15, 0, -1):
            day = now - timedelta(days=d)
            for hour, src, det in (
                (7, "door", "door"),
                (9, "access", "out 东门"),
                (11, "access", "in 东门"),
                (19, "water", "water"),
            ):
                at = day.replace(hour=hour, minute=rng.randrange(0, 50)) - timedelta(hours=8)
                service.record_activity(s, p, at, src, det)
        if i == 0:
            # the one who stops showing activity: nothing for 30 hours
            p.last_activity_at = now - timedelta(hours=30)
            for a in list(
                s.scalars(
                    select(service.CareActivity).where(
                        service.CareActivity.person_id == p.id,
                        service.CareActivity.at > now - timedelta(hours=30),
                    )
                )
            ):
                s.delete(a)
        else:
            service.record_activity(s, p, now - timedelta(hours=rng.randrange(1, 5)), "door")
        p.telemetry_until = now
        people.append(p.id)
    s.flush()
    out["care"] = people
    out["raised"] = service.evaluate_care(s, now, community_id=community_id)
    return out
