"""Cameras: registry and bad input, zones and lines, detection and line counting on the real
clip through the domain's camera runner, worker failure isolation (unreachable, malformed,
not a video, a stream that dies mid-way), the silent-camera alarm, pages in both languages."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import login
from sqlalchemy import select

from linli.core.db import utcnow
from linli.core.files import FileStore
from linli.core.models import OutboxEvent
from linli.core.web import system_ctx
from linli.iot.models import Alarm
from linli.safety import service
from linli.safety.models import Camera, CameraFrame, LineCount, SafetyEvent
from linli.safety.schemas import CameraIn
from linli.safety.worker import CameraRunner, SafetyWorker, _Spec
from linli.vision.video import Backoff, Frame, iter_frames

CLIP = "faces/video/short_hamilton_clip.mp4"


def _api(world: Any) -> str:
    return f"/api/v1/communities/{world.a}/safety"


def test_camera_registry_and_bad_input(client: Any, world: Any, tmp_path: Path) -> None:
    tok = login(client, "staff")
    h = {"X-CSRF-Token": tok}
    ok = {
        "name": "东门",
        "url": "rtsp://admin:secret@10.0.0.5:554/Streaming/Channels/101",
        "fps": 2,
    }
    r = client.post(_api(world) + "/cameras", json=ok, headers=h)
    assert r.status_code == 201, r.text
    cam = r.json()
    assert "secret" not in r.text and cam["url"].startswith("rtsp://***@10.0.0.5")
    for bad in ("", "ftp://cam/x", "http://", "rtsp:///nohost", "javascript://alert(1)"):
        r = client.post(_api(world) + "/cameras", json={**ok, "name": "x", "url": bad}, headers=h)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"]
    for bad_fps in (0, -1, 100):
        r = client.post(
            _api(world) + "/cameras", json={**ok, "name": "y", "fps": bad_fps}, headers=h
        )
        assert r.status_code == 422
    r = client.post(
        _api(world) + "/cameras", json={**ok, "name": "z", "building_id": 999}, headers=h
    )
    assert r.status_code == 404
    r = client.post(_api(world) + "/cameras", json=ok, headers=h)  # same name
    assert r.status_code == 422
    assert [c["name"] for c in client.get(_api(world) + "/cameras").json()] == ["东门"]
    # zones and lines from the editor: outside the frame, crossing edges, too few points
    url = f"{_api(world)}/cameras/{cam['id']}/analytics"
    bad_geometry = [
        (
            {"zones": [{"id": "z", "polygon": [[0.1, 0.1], [1.4, 0.1], [0.5, 0.8]]}]},
            "outside the frame",
        ),
        (
            {"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}]},
            "edges cross",
        ),
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.9]]}]}, "at least 3 points"),
        ({"lines": [{"id": "l", "a": [100, 200], "b": [300, 200]}]}, "outside the frame"),
        (
            {"zones": [{"id": "bad id!", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]]}]},
            "ids must be",
        ),
        (
            {
                "zones": [
                    {
                        "id": "z",
                        "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]],
                        "intrusion": {"hours": ["25:00-06:00"]},
                    }
                ]
            },
            "Hours must look like",
        ),
    ]
    for body, message in bad_geometry:
        r = client.put(url, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert message in r.json()["errors"][0]["message"], (body, r.text)
    good = {
        "zones": [
            {
                "id": "yard",
                "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]],
                "intrusion": {"hours": ["22:00-06:00"]},
                "loitering": {"seconds": 30},
            }
        ],
        "lines": [{"id": "gate", "a": [0, 0.5], "b": [1, 0.5]}],
        "anchor": "bottom",
    }
    r = client.put(url, json=good, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["analytics"]["zones"][0]["id"] == "yard"
    # a guard may look, not change
    tok = login(client, "guard")
    assert client.get(_api(world) + "/cameras").status_code == 200
    r = client.put(url, json=good, headers={"X-CSRF-Token": tok})
    assert r.status_code == 403
    login(client, "resident")
    assert client.get(_api(world) + "/cameras").status_code in (403, 404)


def _pan(clip: list[np.ndarray]) -> Iterator[np.ndarray]:
    """A camera panning across the upper-body shot: the singer crosses the middle once."""
    idx = list(range(90, 206, 6))
    for k, i in enumerate(idx):
        x0 = round(k / (len(idx) - 1) * (640 - 320))
        yield np.ascontiguousarray(clip[i][:, x0 : x0 + 320])


def test_line_crossing_on_real_footage_through_the_domain(
    db: Any, world: Any, settings: Any, shared_data: Path, tmp_path: Path
) -> None:
    frames = [f.image for f in iter_frames(str(shared_data / CLIP), fps=1000.0)]
    files = FileStore(tmp_path / "files")
    with db.session() as s:
        cam = service.save_camera(
            s,
            system_ctx(world.a),
            CameraIn(
                name="舞台",
                url=str(shared_data / CLIP),
                analytics={
                    "anchor": "center",
                    "lines": [{"id": "mid", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
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
            None,
        )
    runner = CameraRunner(db, settings, files, spec)
    t0 = time.time() - 60
    for k, img in enumerate(_pan(frames)):
        runner._on_frame(Frame(img, t0 + k * 0.2, k, str(spec.id)))
    with db.session() as s:
        evs = list(s.scalars(select(SafetyEvent)))
        assert [(e.kind, e.line_id, e.direction) for e in evs] == [("line_crossing", "mid", "in")]
        (count,) = list(s.scalars(select(LineCount)))
        assert (count.count_in, count.count_out) == (1, 0)
        names = [o.name for o in s.scalars(select(OutboxEvent))]
        assert "safety.people.crossed" in names
        f = s.get(CameraFrame, spec.id)
        assert f is not None and f.jpeg[:2] == b"\xff\xd8"
        # the crossing feeds the flow of people beside the gates' passages
        from linli.access import service as access

        flow = access.flow(s, system_ctx(world.a))
        assert sum(flow["camera_daily"].values()) == 1
        if sum(flow["camera_hourly"]) == 1:  # (not when the clip ran just before midnight)
            assert flow["camera_lines"] == [{"camera": "舞台", "line": "mid", "in": 1, "out": 0}]


class _DyingMjpeg(http.server.BaseHTTPRequestHandler):
    """An MJPEG camera that sends three frames and then drops the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
        self.end_headers()
        img = np.full((120, 160, 3), 100, np.uint8)
        jpeg = bytes(cv2.imencode(".jpg", img)[1])
        for _ in range(3):
            self.wfile.write(b"--f\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def dying_camera() -> Iterator[str]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _DyingMjpeg)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/video.mjpg"
    srv.shutdown()
    srv.server_close()


def _wait(pred: Any, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_one_bad_stream_never_affects_the_others(
    db: Any, world: Any, settings: Any, shared_data: Path, tmp_path: Path, dying_camera: str
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video at all")
    ctx = system_ctx(world.a)
    with db.session() as s:
        good = service.save_camera(
            s, ctx, CameraIn(name="good", url=str(shared_data / CLIP), fps=4)
        ).id
        ids = {"good": good}
        for name, url in (
            ("refused", "rtsp://127.0.0.1:9/none"),
            ("junk", str(junk)),
            ("dying", dying_camera),
        ):
            ids[name] = service.save_camera(
                s, ctx, CameraIn(name=name, url=url, silent_after_s=10)
            ).id
        # a malformed address that got into the database (e.g. an old import)
        bad = Camera(
            community_id=world.a, name="malformed", url="gopher://cam/1", silent_after_s=10
        )
        s.add(bad)
        s.flush()
        ids["malformed"] = bad.id
    w = SafetyWorker(
        db,
        settings,
        FileStore(tmp_path / "files"),
        backoff=Backoff(initial_s=0.2, max_s=1.0, jitter=0.0),
    )
    try:
        w.tick()

        def states() -> dict[str, tuple[str, str | None]]:
            w.tick()
            with db.session() as s:
                return {
                    n: (c.state, c.last_error_code)
                    for n, i in ids.items()
                    if (c := s.get(Camera, i)) is not None
                }

        assert _wait(
            lambda: (
                (st := states())["good"][0] == "streaming"
                and st["dying"][1] == "stream_lost"
                and st["junk"][1] is not None
                and st["refused"][1] is not None
            )
        ), states()
        st = states()
        assert st["malformed"] == ("stopped", "bad_url")
        assert st["refused"][1] in ("connect_failed", "timeout")
        assert st["junk"][1] in ("cannot_open", "malformed_stream")
        assert ids["malformed"] not in w.runners and len(w.runners) == 4
        with db.session() as s:
            f = s.get(CameraFrame, good)
            assert f is not None and f.jpeg[:2] == b"\xff\xd8"
        # the good camera keeps delivering while the others fail and retry
        with db.session() as s:
            first = s.get(CameraFrame, good).at  # type: ignore[union-attr]
        assert _wait(lambda: (db_frame_at(db, good) or first) > first, 10.0)
        # a silent camera raises an alarm; the good one does not
        with db.session() as s:
            silent = service.check_camera_health(s, utcnow() + timedelta(seconds=15))
        assert good not in silent
        assert {ids["refused"], ids["junk"], ids["malformed"]} <= set(silent)
        with db.session() as s:
            kinds = [a.kind for a in s.scalars(select(Alarm))]
        assert kinds.count("safety_camera_silent") == len(silent)
    finally:
        w.stop_all(timeout=5.0)


def db_frame_at(db: Any, camera_id: int) -> Any:
    with db.session() as s:
        f = s.get(CameraFrame, camera_id)
        return f.at if f is not None else None


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ("Camera wall", "Video events", "Watch list", "Care board")),
        ("zh_CN", ("摄像头墙", "视频事件", "重点人员布控", "关爱看板")),
    ],
)
def test_pages_in_both_languages(
    client: Any, world: Any, db: Any, lang: str, words: tuple[str, ...]
) -> None:
    with db.session() as s:
        c = service.save_camera(s, system_ctx(world.a), CameraIn(name="北门", url="/x.mp4"))
        cam_id = c.id
    login(client, "staff")
    client.cookies.set("lang", lang)
    base = f"/c/{world.a}/safety"
    pages = ["/cameras", "/events", "/watchlist", "/care", f"/cameras/{cam_id}"]
    texts = []
    for p in pages:
        r = client.get(base + p)
        assert r.status_code == 200, (p, r.text[:300])
        texts.append(r.text)
    for word, text in zip(words, texts, strict=False):
        assert word in text
    assert "zone-editor" in texts[4] and "/static/safety.js" in texts[4]
    # a bad camera through the form: the form comes back with the message, nothing saved
    tok = client.get(base + "/cameras").text.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post(
        base + "/cameras", data={"csrf_token": tok, "name": "坏的", "url": "ftp://x/y", "fps": "2"}
    )
    assert r.status_code == 422 and 'class="error"' in r.text
    with db.session() as s:
        assert [c.name for c in service.list_cameras(s, system_ctx(world.a))] == ["北门"]
