"""Video events in the domain: snapshots and short clips in the file store, face blurring,
the retention purge, and tailgating at a gate compared with the grants of access control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from conftest import login
from sqlalchemy import select

from linli.core import events
from linli.core.files import FileStore
from linli.core.web import system_ctx
from linli.iot.models import Alarm
from linli.safety import events as safety_events
from linli.safety import service
from linli.safety.models import Camera, GateGrant, SafetyEvent
from linli.safety.schemas import CameraIn
from linli.safety.worker import CameraRunner, SafetyWorker, _Spec
from linli.vision.analytics import AnalyticsEvent, EventKind
from linli.vision.people import PersonDetection
from linli.vision.video import MjpegParser


def _laplacian(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_snapshot_clip_blur_and_retention(
    client: Any, db: Any, world: Any, settings: Any, shared_data: Path
) -> None:
    files = FileStore(settings.files_dir)
    photo = cv2.imread(str(shared_data / "faces/probe/obama_and_biden.jpg"))
    photo = cv2.resize(photo, (640, round(photo.shape[0] * 640 / photo.shape[1])))
    ctx = system_ctx(world.a)
    with db.session() as s:
        cam = service.save_camera(s, ctx, CameraIn(name="广场", url="/x.mp4", blur_faces=True))
        ev = AnalyticsEvent(
            kind=EventKind.GATHERING,
            ts=datetime.now(UTC).timestamp(),
            camera_id=str(cam.id),
            zone_id="square",
            count=3,
            box=(0.1, 0.1, 0.9, 0.9),
        )
        row = service.store_event(s, cam, ev, files, frame=photo, clip=[photo] * 4)
        eid = row.id
    with db.session() as s:
        e = s.get(SafetyEvent, eid)
        assert e is not None and e.snapshot_sha256 and e.clip_sha256 and e.alarm_id
        snap = cv2.imdecode(np.frombuffer(files.get(e.snapshot_sha256), np.uint8), cv2.IMREAD_COLOR)
        assert len(MjpegParser().feed(files.get(e.clip_sha256))) == 4
        a = s.get(Alarm, e.alarm_id)
        assert a is not None and a.kind == "safety_gathering"
    # the faces (none of them matched anything) are blurred in the stored picture
    from linli.vision import faces

    found = faces.analyze_image(photo, min_face=20.0, embed=False, channel_order="bgr")
    assert len(found) >= 2
    for f in found:
        b = f.box
        x1, y1, x2, y2 = int(b.x1) + 2, int(b.y1) + 2, int(b.x2) - 2, int(b.y2) - 2
        assert _laplacian(snap[y1:y2, x1:x2]) < 0.5 * _laplacian(photo[y1:y2, x1:x2])
    # the API serves them to safety.read
    login(client, "guard")
    base = f"/api/v1/communities/{world.a}/safety/events"
    r = client.get(base)
    assert r.status_code == 200 and r.json()[0]["has_snapshot"] and r.json()[0]["has_clip"]
    r = client.get(f"{base}/{eid}/snapshot.jpg")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    r = client.get(f"{base}/{eid}/clip.mjpeg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/x-mixed")
    assert client.get(f"{base}/999999/snapshot.jpg").status_code == 404
    # after the retention period the pictures go, the event stays
    with db.session() as s:
        ev = s.get(SafetyEvent, eid)
        assert ev is not None
        shas = [ev.snapshot_sha256, ev.clip_sha256]
        assert all(sha and files.exists(sha) for sha in shas)
    with db.session() as s:
        later = datetime.now(UTC) + timedelta(days=settings.snapshot_retention_days + 1)
        n = service.purge_media(s, files, settings, later)
        assert n == 1  # one event lost its snapshot and its clip
    assert not any(files.exists(sha) for sha in shas if sha)
    with db.session() as s:
        e = s.get(SafetyEvent, eid)
        assert e is not None and e.snapshot_sha256 is None and e.clip_sha256 is None
    assert client.get(f"{base}/{eid}/snapshot.jpg").status_code == 404


def _person(x: float, y: float) -> PersonDetection:
    return PersonDetection(box=(x - 0.05, y - 0.15, x + 0.05, y + 0.15), score=1.0, source="hog")


def test_tailgating_compares_people_through_with_access_grants(
    db: Any, world: Any, settings: Any, tmp_path: Path
) -> None:
    from linli.access.schemas import GateIn
    from linli.access.service import save_gate

    ctx = system_ctx(world.a)
    with db.session() as s:
        gate = save_gate(s, ctx, GateIn(name="东门", direction="both", policy={}))
        cam = service.save_camera(
            s,
            ctx,
            CameraIn(
                name="东门通道",
                url=str(tmp_path / "gate.mp4"),
                gate_id=gate.id,
                analytics={
                    "anchor": "center",
                    "tracker": {"min_hits": 1},
                    "lines": [
                        {
                            "id": "gate",
                            "a": [0.0, 0.5],
                            "b": [1.0, 0.5],
                            "tailgating": {"direction": "in", "window_s": 5, "grace_s": 2},
                        }
                    ],
                },
            ),
        )
        spec = _Spec(
            cam.id,
            world.a,
            cam.name,
            cam.url,
            2.0,
            cam.version,
            cam.analytics,
            "Asia/Shanghai",
            False,
            cam.gate_id,
        )
        gate_id = gate.id
    w = SafetyWorker(db, settings, FileStore(tmp_path / "files"))
    runner = CameraRunner(db, settings, w.files, spec)
    w.runners[spec.id] = runner  # not started: frames are fed by hand below
    w.feed_grants()  # sets the cursor
    t0 = datetime.now(UTC).timestamp() - 30
    # access control lets ONE person in (the real handler of access.entry.granted)
    ev = events.Event(
        event_id="e-1",
        name="access.entry.granted",
        community_id=world.a,
        payload={"gate_id": gate_id, "identity_id": None, "direction": "in"},
        created_at=datetime.fromtimestamp(t0 + 1, UTC),
    )
    with db.session() as s:
        safety_events.on_access_granted(s, ev)
        safety_events.on_access_granted(s, ev)  # redelivered: recorded once
    with db.session() as s:
        assert len(list(s.scalars(select(GateGrant)))) == 1
    assert w.feed_grants() == 1
    # ... and TWO people walk through the gate line, one right behind the other
    found: list[Any] = []
    for k, y in enumerate([0.2, 0.35, 0.5, 0.65, 0.8]):
        ts = t0 + 1 + k * 0.5
        found += runner.analyzer.process_detections([_person(0.4, y), _person(0.6, y - 0.1)], ts)
    found += runner.analyzer.flush(t0 + 10)
    kinds = [e.kind for e in found]
    assert kinds.count(EventKind.LINE_CROSSING) == 2
    assert kinds.count(EventKind.TAILGATING) == 1
    with db.session() as s:
        camera = s.get(Camera, spec.id)
        assert camera is not None
        for e in found:
            service.store_event(s, camera, e, w.files)
    with db.session() as s:
        (a,) = list(s.scalars(select(Alarm).where(Alarm.kind == "safety_tailgating")))
        assert a.work_order_id is not None
        counts = service.line_counts(s, ctx, since=datetime.fromtimestamp(t0, UTC))
        assert [(c.line_id, c.count_in, c.count_out) for c in counts] == [("gate", 2, 0)]
