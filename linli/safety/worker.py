"""Camera workers: sample every enabled camera, run the video analytics, store what they find.

Run as its own process (``python -m linli.safety.worker``; several machines may each take a
community with ``--community``), or inside the web server for the demo
(``LINLI_SAFETY_WORKERS=inapp``, started from the app's periodic loop). Either way the web
server never waits for a camera: each camera has its own reader and analysis threads
(:class:`linli.vision.video.CameraWorker`), a camera that cannot be reached backs off and
reconnects on its own, and a failure in one camera (bad URL, dead stream, analysis error)
never touches the others. Everything the workers learn goes through the database: the newest
frame of each camera, its health, events with snapshots and clips, line counts, watch-list
matches and alarms (outbox events are delivered by the web server's dispatcher).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select

from linli.core.config import Settings
from linli.core.db import Database, utcnow
from linli.core.files import FileStore
from linli.safety import service
from linli.safety.models import Camera, GateGrant

log = logging.getLogger(__name__)

#: write the newest frame of a camera to the database at most this often
FRAME_WRITE_S = 2.0
#: identify faces on a camera at most this often (dlib is the expensive part)
FACE_EVERY_S = 1.0
#: one match per watch-list entry and camera per this many seconds
MATCH_COOLDOWN_S = 30.0


@dataclass
class _Spec:
    id: int
    community_id: int
    name: str
    url: str
    fps: float
    version: int
    analytics: dict[str, Any]
    timezone: str
    face_watch: bool
    gate_id: int | None


class CameraRunner:
    """One camera: stream reader + analysis, writing results through the database."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        files: FileStore,
        spec: _Spec,
        *,
        backoff: Any = None,
        realtime: bool | None = None,
    ) -> None:
        from linli.vision.analytics import CameraAnalyzer, CameraConfig
        from linli.vision.video import CameraWorker, StreamConfig, classify_url

        self.db, self.settings, self.files, self.spec = db, settings, files, spec
        cfg = dict(spec.analytics or {})
        cfg["camera_id"] = str(spec.id)
        cfg.setdefault("timezone", spec.timezone)
        self.config = CameraConfig.from_dict(cfg)  # ConfigError for bad settings
        self.analyzer = CameraAnalyzer(self.config)
        self.needs_analysis = self.analyzer.needs_people or self.analyzer.motion is not None
        self.gate_line = next(
            (ln.id for ln in self.config.lines if ln.tailgating is not None), None
        )
        is_file = classify_url(spec.url) == "file"
        self.worker = CameraWorker(
            StreamConfig(
                url=spec.url,
                camera_id=str(spec.id),
                fps=spec.fps,
                loop=is_file,  # a video file plays as an endless camera
                realtime=realtime,
                max_width=640,
            ),
            on_frame=self._on_frame,
            backoff=backoff,
        )
        self.ring: deque[np.ndarray] = deque(maxlen=service.CLIP_FRAMES)
        self._last_write = 0.0
        self._last_face = 0.0
        self._matched: dict[int, float] = {}
        self.errors = 0
        self.events = 0

    def start(self) -> CameraRunner:
        self.worker.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.worker.stop(timeout)

    def _on_frame(self, frame: Any) -> None:
        img: np.ndarray = frame.image
        self.ring.append(img)
        found = self.analyzer.process(img, frame.ts) if self.needs_analysis else []
        at = datetime.fromtimestamp(frame.ts, UTC)
        mono = time.monotonic()
        matches: list[tuple[int, float, list[float]]] = []
        with self.db.session() as s:
            if self.spec.face_watch and mono - self._last_face >= FACE_EVERY_S:
                self._last_face = mono
                matches = service.identify_watch_faces(
                    s, self.settings, self.spec.community_id, img, now=at
                )
            camera = s.get(Camera, self.spec.id)
            if camera is None:
                return
            for ev in found:
                service.store_event(s, camera, ev, self.files, frame=img, clip=list(self.ring))
                self.events += 1
            for entry_id, dist, box in matches:
                if mono - self._matched.get(entry_id, -1e9) < MATCH_COOLDOWN_S:
                    continue
                self._matched[entry_id] = mono
                service.record_watch_match(s, camera, entry_id, dist, box, self.files, img, at)
            if mono - self._last_write >= FRAME_WRITE_S:
                self._last_write = mono
                service.put_frame(s, camera.id, service._jpeg(img, 75), at)
                service.record_status(
                    s,
                    camera.id,
                    state="streaming",
                    last_frame_at=at,
                    error_code=None,
                    error=None,
                    size=(img.shape[1], img.shape[0]),
                )

    def write_status(self) -> None:
        st = self.worker.status()
        last = datetime.fromtimestamp(st.last_frame_ts, UTC) if st.last_frame_ts else None
        with self.db.session() as s:
            service.record_status(
                s,
                self.spec.id,
                state=st.state,
                last_frame_at=last,
                error_code=st.last_error_code if st.state != "streaming" else None,
                error=st.last_error if st.state != "streaming" else None,
            )


@dataclass
class SafetyWorker:
    """All cameras of one community (or of all): start, restart on change, stop; statuses,
    access grants for tailgating, health alarms. :meth:`tick` is one round of that."""

    db: Database
    settings: Settings
    files: FileStore
    community_id: int | None = None
    backoff: Any = None
    realtime: bool | None = None
    runners: dict[int, CameraRunner] = field(default_factory=dict)
    failed: dict[int, tuple[int, str]] = field(default_factory=dict)
    _grant_cursor: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_health: float = 0.0

    def _specs(self) -> dict[int, _Spec]:
        from linli.people.models import Community

        with self.db.session() as s:
            q = select(Camera).where(Camera.enabled.is_(True))
            if self.community_id is not None:
                q = q.where(Camera.community_id == self.community_id)
            tz = {c.id: c.timezone for c in s.scalars(select(Community))}
            return {
                c.id: _Spec(
                    c.id,
                    c.community_id,
                    c.name,
                    c.url,
                    c.fps,
                    c.version,
                    dict(c.analytics or {}),
                    tz.get(c.community_id, "Asia/Shanghai"),
                    c.face_watch,
                    c.gate_id,
                )
                for c in s.scalars(q)
            }

    def reconcile(self) -> None:
        from linli.vision.analytics import ConfigError
        from linli.vision.video import StreamError

        specs = self._specs()
        for cid in list(self.runners):
            spec = specs.get(cid)
            if spec is None or spec.version != self.runners[cid].spec.version:
                self.runners.pop(cid).stop(timeout=1.0)
        for cid in list(self.failed):
            spec = specs.get(cid)
            if spec is None or spec.version != self.failed[cid][0]:
                del self.failed[cid]
        for cid, spec in specs.items():
            if cid in self.runners or cid in self.failed:
                continue
            try:
                self.runners[cid] = CameraRunner(
                    self.db,
                    self.settings,
                    self.files,
                    spec,
                    backoff=self.backoff,
                    realtime=self.realtime,
                ).start()
                log.info("camera %s (%s): started", cid, spec.name)
            except (StreamError, ConfigError) as exc:
                # a camera that cannot even be configured: recorded, never retried until edited
                self.failed[cid] = (spec.version, exc.code)
                with self.db.session() as s:
                    service.record_status(
                        s,
                        cid,
                        state="stopped",
                        last_frame_at=None,
                        error_code=exc.code,
                        error=exc.message,
                    )
                log.warning("camera %s (%s): %s", cid, spec.name, exc.message)

    def feed_grants(self) -> int:
        gates = {
            r.spec.gate_id: r
            for r in self.runners.values()
            if r.spec.gate_id is not None and r.gate_line is not None
        }
        with self.db.session() as s:
            if self._grant_cursor is None:  # start from now: older grants are history
                self._grant_cursor = int(s.scalar(select(func.max(GateGrant.id))) or 0)
                return 0
            rows = list(
                s.scalars(
                    select(GateGrant)
                    .where(GateGrant.id > self._grant_cursor)
                    .order_by(GateGrant.id)
                )
            )
        n = 0
        for g in rows:
            self._grant_cursor = max(self._grant_cursor, g.id)
            r = gates.get(g.gate_id)
            if r is None or r.gate_line is None:
                continue
            r.analyzer.record_access_grant(r.gate_line, g.at)
            n += 1
        return n

    def tick(self, now: datetime | None = None) -> None:
        self.reconcile()
        for r in list(self.runners.values()):
            try:
                r.write_status()
            except Exception:  # one camera's status never stops the others
                log.exception("camera %s: status update failed", r.spec.id)
        self.feed_grants()
        if time.monotonic() - self._last_health >= 15.0:
            self._last_health = time.monotonic()
            with self.db.session() as s:
                service.check_camera_health(s, now or utcnow(), self.community_id)

    def run_forever(self, every: float = 5.0) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # e.g. the database restarting: try again
                log.exception("safety worker round failed")
            self._stop.wait(every)
        self.stop_all()

    def stop(self) -> None:
        self._stop.set()

    def stop_all(self, timeout: float = 5.0) -> None:
        for r in list(self.runners.values()):
            r.worker._stop.set()
        for cid in list(self.runners):
            self.runners.pop(cid).stop(timeout)


_inapp: SafetyWorker | None = None
_inapp_lock = threading.Lock()


def inapp_enabled(settings: Settings) -> bool:
    """``LINLI_SAFETY_WORKERS=inapp``: the web server samples the cameras itself."""
    return settings.safety_workers == "inapp"


def ensure_inapp(db: Database, settings: Settings, files: FileStore) -> SafetyWorker:
    """Start the camera workers inside this process once (a daemon thread)."""
    global _inapp
    with _inapp_lock:
        if _inapp is None:
            _inapp = SafetyWorker(db, settings, files)
            threading.Thread(target=_inapp.run_forever, name="safety-workers", daemon=True).start()
        return _inapp


def main(argv: list[str] | None = None) -> None:
    from linli.core.config import get_settings

    ap = argparse.ArgumentParser(
        prog="python -m linli.safety.worker", description="Linli camera workers (video analytics)"
    )
    ap.add_argument("--community", type=int, default=None, help="only this community's cameras")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between rounds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    settings.prepare()
    import linli.models_registry  # noqa: F401  (every table, for foreign keys)

    db = Database(settings.resolved_database_url)
    w = SafetyWorker(db, settings, FileStore(settings.files_dir), community_id=args.community)
    try:
        w.run_forever(args.every)
    except KeyboardInterrupt:
        w.stop_all()
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
