"""Community safety logic: cameras and their health, video events and their media, line
counts, the governed key-person watch list, and care for elderly people living alone.

Every function scopes its queries to one community. Watch-list face templates are encrypted
at rest with the cipher of access control (AES-256-GCM, AAD = watch-list entry id) and are
decrypted only into the in-memory gallery of the camera workers. Every watch-list entry, view
and match is written to the tamper-evident audit log. Rules with a time line take ``now=``
(tests drive them with any clock; nothing sleeps).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.config import Settings
from linli.core.db import utcnow
from linli.core.errors import NotFound, ValidationFailed
from linli.core.files import FileStore, expire_media
from linli.core.i18n import N_
from linli.core.models import RoleGrant, User
from linli.core.roles import Perm, Role, permissions_for
from linli.core.web import Ctx, system_ctx
from linli.safety.models import (
    Camera,
    CameraFrame,
    CareActivity,
    CarePerson,
    CareVisit,
    GateGrant,
    LineCount,
    SafetyEvent,
    WatchEntry,
    WatchMatch,
    WatchTemplate,
)
from linli.safety.schemas import (
    CONFIG_MESSAGES,
    AnalyticsIn,
    CameraIn,
    CameraOut,
    CarePersonIn,
    VisitIn,
    WatchEntryIn,
)

log = logging.getLogger(__name__)

#: alarm messages of the video rules (msgids with %(camera)s and %(where)s)
VIDEO_ALARM_MESSAGES: dict[str, str] = {
    "intrusion": N_("Intrusion into a restricted zone at camera %(camera)s (%(where)s)"),
    "loitering": N_("Loitering at camera %(camera)s (%(where)s)"),
    "gathering": N_("Gathering of people at camera %(camera)s (%(where)s)"),
    "motion": N_("Motion after hours at camera %(camera)s (%(where)s)"),
    "tailgating": N_("Tailgating at camera %(camera)s (%(where)s)"),
}
#: alarm kinds of the video rules (intrusion etc.) and their severities
VIDEO_ALARMS: dict[str, str] = {
    "intrusion": "major",
    "loitering": "minor",
    "gathering": "minor",
    "motion": "minor",
    "tailgating": "minor",
}
EVENT_TITLES: dict[str, str] = {
    "line_crossing": N_("Line crossed"),
    "intrusion": N_("Intrusion into a restricted zone"),
    "loitering": N_("Loitering"),
    "gathering": N_("Gathering of people"),
    "motion": N_("Motion after hours"),
    "tailgating": N_("Tailgating at a gate"),
    "watchlist_match": N_("Watch-list match"),
}
WATCH_MAX_DAYS = 366
CLIP_FRAMES = 8
#: one care activity of a source per this many minutes is enough for the rules
ACTIVITY_DEDUP_MIN = 5


def local_now(tz: str, now: datetime | None = None) -> datetime:
    return (now or utcnow()).astimezone(ZoneInfo(tz))


def _aware(v: datetime) -> datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


# == cameras ===================================================================================


def list_cameras(s: Session, ctx: Ctx) -> list[Camera]:
    q = select(Camera).where(Camera.community_id == ctx.community_id).order_by(Camera.name)
    return list(s.scalars(q))


def get_camera(s: Session, ctx: Ctx, camera_id: int) -> Camera:
    c = s.get(Camera, camera_id)
    if c is None or c.community_id != ctx.community_id:
        raise NotFound("Camera not found.", code="camera_not_found")
    return c


def camera_out(c: Camera) -> CameraOut:
    from linli.vision.video import redact_url

    out = CameraOut.model_validate(c)
    out.url = redact_url(c.url)
    return out


def _check_refs(s: Session, ctx: Ctx, data: CameraIn) -> None:
    from linli.people.models import Building

    if data.building_id is not None:
        b = s.get(Building, data.building_id)
        if b is None or b.community_id != ctx.community_id:
            raise NotFound("Building not found.", field="building_id")
    if data.gate_id is not None:
        from linli.access.service import get_gate

        try:
            get_gate(s, ctx, data.gate_id)
        except NotFound as exc:
            raise NotFound("Gate not found.", field="gate_id") from exc


def save_camera(s: Session, ctx: Ctx, data: CameraIn, camera_id: int | None = None) -> Camera:
    ctx.require(Perm.SAFETY_MANAGE)
    _check_refs(s, ctx, data)
    dup = s.scalar(
        select(Camera.id).where(Camera.community_id == ctx.community_id, Camera.name == data.name)
    )
    if dup is not None and dup != camera_id:
        raise ValidationFailed("Another camera already has this name.", field="name")
    if camera_id is None:
        c = Camera(community_id=ctx.community_id, name=data.name, url=data.url)
        s.add(c)
    else:
        c = get_camera(s, ctx, camera_id)
        c.version = (c.version or 1) + 1
    keep_url = camera_id is not None and "***" in data.url
    for k, v in data.model_dump().items():
        if k == "url" and keep_url:
            continue  # the form showed the redacted address: keep the stored one
        setattr(c, k, v)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.camera.saved",
        "safety_camera",
        c.id,
        community_id=ctx.community_id,
        details={"name": c.name, "new": camera_id is None},
    )
    return c


def save_analytics(s: Session, ctx: Ctx, camera_id: int, data: AnalyticsIn) -> Camera:
    """Zones and lines drawn in the editor. Invalid geometry (outside the frame, crossing
    edges, too few points) is refused with a clear message; nothing is saved then."""
    ctx.require(Perm.SAFETY_MANAGE)
    c = get_camera(s, ctx, camera_id)
    from linli.core.errors import InvalidValue

    try:
        cfg = data.as_config()
    except InvalidValue as exc:
        raise ValidationFailed(exc.message, field="analytics", params=exc.params) from exc
    c.analytics = cfg
    c.version = (c.version or 1) + 1
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.camera.analytics_saved",
        "safety_camera",
        c.id,
        community_id=ctx.community_id,
        details={"zones": len(data.zones), "lines": len(data.lines)},
    )
    return c


def delete_camera(s: Session, ctx: Ctx, camera_id: int) -> None:
    ctx.require(Perm.SAFETY_MANAGE)
    c = get_camera(s, ctx, camera_id)
    audit.record(
        s,
        ctx.actor,
        "safety.camera.deleted",
        "safety_camera",
        c.id,
        community_id=ctx.community_id,
        details={"name": c.name},
    )
    s.delete(c)
    s.flush()


def latest_frame(s: Session, ctx: Ctx, camera_id: int) -> CameraFrame:
    c = get_camera(s, ctx, camera_id)
    f = s.get(CameraFrame, c.id)
    if f is None:
        raise NotFound("This camera has not delivered a frame yet.", code="no_frame")
    return f


def put_frame(s: Session, camera_id: int, jpeg: bytes, at: datetime) -> None:
    """The worker's newest frame of a camera (one row per camera, overwritten)."""
    f = s.get(CameraFrame, camera_id)
    if f is None:
        s.add(CameraFrame(camera_id=camera_id, jpeg=jpeg, at=at))
    else:
        f.jpeg = jpeg
        f.at = at


def record_status(
    s: Session,
    camera_id: int,
    *,
    state: str,
    last_frame_at: datetime | None,
    error_code: str | None,
    error: str | None,
    size: tuple[int, int] | None = None,
    now: datetime | None = None,
) -> None:
    c = s.get(Camera, camera_id)
    if c is None:
        return
    c.state = state
    if last_frame_at is not None:
        c.last_frame_at = last_frame_at
    c.last_error_code = error_code
    c.last_error = (error or "")[:300] or None
    c.heartbeat_at = now or utcnow()
    if size is not None:
        c.frame_width, c.frame_height = size


def _silent_key(camera_id: int) -> str:
    return f"safety:camera:{camera_id}:silent"


def check_camera_health(
    s: Session, now: datetime | None = None, community_id: int | None = None
) -> list[int]:
    """Raise an alarm for every enabled camera that has delivered no frame for longer than its
    ``silent_after_s``; clear it when frames flow again. Returns the ids of silent cameras."""
    from linli.iot.service import clear_alarm_by_key, raise_alarm

    now = now or utcnow()
    q = select(Camera).where(Camera.enabled.is_(True))
    if community_id is not None:
        q = q.where(Camera.community_id == community_id)
    silent: list[int] = []
    for c in s.scalars(q):
        last = _aware(c.last_frame_at or c.created_at)
        if (now - last).total_seconds() > c.silent_after_s:
            silent.append(c.id)
            if c.state not in ("silent",):
                c.state = "silent"
            reason = c.last_error_code or "no_frames"
            raise_alarm(
                s,
                community_id=c.community_id,
                dedup_key=_silent_key(c.id),
                kind="safety_camera_silent",
                severity="major",
                message=N_("Camera %(camera)s has sent no picture since %(since)s (%(reason)s)"),
                params={
                    "camera": c.name,
                    "since": last.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "reason": reason,
                },
                source="safety",
                at=now,
                details={"camera_id": c.id},
                work_order={
                    "category": "security",
                    "building_id": c.building_id,
                    "location": c.location or c.name,
                },
            )
        else:
            clear_alarm_by_key(s, c.community_id, _silent_key(c.id), by="safety", at=now)
    return silent


# == video events and media ====================================================================


def _jpeg(img: np.ndarray, quality: int = 80) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any BGR uint8 image
        raise ValueError("could not encode JPEG")
    return bytes(buf)


def blur_unmatched_faces(img: np.ndarray, keep: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """Blur every face in ``img`` except those whose boxes (pixels) are in ``keep``."""
    import cv2

    from linli.vision import faces

    out = img.copy()
    try:
        found = faces.analyze_image(img, min_face=20.0, embed=False, channel_order="bgr")
    except Exception:  # a snapshot is still stored without blurring
        log.exception("face detection for blurring failed")
        return out
    h, w = out.shape[:2]
    for f in found:
        b = f.box
        if any(b.iou(faces.Box(*k)) > 0.5 for k in keep if len(k) == 4):
            continue
        x1, y1 = max(0, int(b.x1)), max(0, int(b.y1))
        x2, y2 = min(w, int(b.x2)), min(h, int(b.y2))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = out[y1:y2, x1:x2]
        k = max(3, ((x2 - x1) // 3) | 1)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(roi, (k, k), 0)
    return out


def draw_box(img: np.ndarray, box: Sequence[float] | None, label: str = "") -> np.ndarray:
    import cv2

    out = img.copy()
    if box is None or len(box) != 4:
        return out
    h, w = out.shape[:2]
    p1 = (int(box[0] * w), int(box[1] * h))
    p2 = (int(box[2] * w), int(box[3] * h))
    cv2.rectangle(out, p1, p2, (0, 0, 255), 2)
    if label:
        cv2.putText(
            out,
            label,
            (p1[0], max(12, p1[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def make_snapshot(img: np.ndarray, box: Sequence[float] | None, blur: bool, label: str) -> bytes:
    base = blur_unmatched_faces(img) if blur else img
    return _jpeg(draw_box(base, box, label))


def make_clip(frames: Sequence[np.ndarray], blur: bool) -> bytes:
    """A short clip: the JPEG frames back to back (an MJPEG stream; split with
    :class:`linli.vision.video.MjpegParser`, served as ``multipart/x-mixed-replace``)."""
    return b"".join(_jpeg(blur_unmatched_faces(f) if blur else f, 70) for f in frames)


def _hour(at: datetime) -> datetime:
    return _aware(at).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def line_counts_since(
    s: Session, community_id: int, since: datetime
) -> list[tuple[str, str, datetime, int, int]]:
    """(camera name, line id, UTC hour, in, out) of the community's counting lines since
    ``since`` — what the flow of people shows beside the gates."""
    q = (
        select(
            Camera.name, LineCount.line_id, LineCount.hour, LineCount.count_in, LineCount.count_out
        )
        .join(Camera, Camera.id == LineCount.camera_id)
        .where(LineCount.community_id == community_id, LineCount.hour >= since)
    )
    return [tuple(r) for r in s.execute(q).all()]  # type: ignore[misc]


def count_crossing(
    s: Session, camera: Camera, line_id: str, direction: str, at: datetime, n: int = 1
) -> None:
    hour = _hour(at)
    row = s.scalar(
        select(LineCount).where(
            LineCount.camera_id == camera.id, LineCount.line_id == line_id, LineCount.hour == hour
        )
    )
    if row is None:
        row = LineCount(
            community_id=camera.community_id,
            camera_id=camera.id,
            line_id=line_id,
            hour=hour,
            count_in=0,
            count_out=0,
        )
        s.add(row)
    if direction == "in":
        row.count_in += n
    else:
        row.count_out += n
    s.flush()


def store_event(
    s: Session,
    camera: Camera,
    ev: Any,
    files: FileStore | None,
    *,
    frame: np.ndarray | None = None,
    clip: Sequence[np.ndarray] = (),
) -> SafetyEvent:
    """Store one :class:`~linli.vision.analytics.AnalyticsEvent` of ``camera``: the event row,
    line counts, snapshot and clip, an alarm for rule events, an outbox event."""
    from linli.iot.service import raise_alarm

    at = datetime.fromtimestamp(float(ev.ts), UTC)
    kind = str(ev.kind.value if hasattr(ev.kind, "value") else ev.kind)
    row = SafetyEvent(
        community_id=camera.community_id,
        camera_id=camera.id,
        kind=kind,
        at=at,
        track_id=ev.track_id,
        zone_id=ev.zone_id,
        line_id=ev.line_id,
        direction=ev.direction,
        count=ev.count,
        box=[round(float(v), 4) for v in ev.box] if ev.box is not None else None,
        details={k: v for k, v in dict(ev.details).items() if _jsonable(v)},
    )
    if kind != "line_crossing" and files is not None and frame is not None:
        label = str(ev.zone_id or ev.line_id or "")
        row.snapshot_sha256 = files.put(make_snapshot(frame, row.box, camera.blur_faces, label))
        if clip:
            row.clip_sha256 = files.put(make_clip(clip, camera.blur_faces))
    s.add(row)
    s.flush()
    if kind == "line_crossing" and ev.line_id and ev.direction in ("in", "out"):
        count_crossing(s, camera, ev.line_id, ev.direction, at)
        events.emit(
            s,
            "safety.people.crossed",
            {
                "camera_id": camera.id,
                "line_id": ev.line_id,
                "direction": ev.direction,
                "at": at.isoformat(),
                "building_id": camera.building_id,
            },
            community_id=camera.community_id,
        )
        return row
    severity = VIDEO_ALARMS.get(kind)
    if severity is not None:
        where = ev.zone_id or ev.line_id or ""
        alarm, _created = raise_alarm(
            s,
            community_id=camera.community_id,
            dedup_key=f"safety:{kind}:{camera.id}:{where}"[:100],
            kind=f"safety_{kind}",
            severity=severity,
            message=VIDEO_ALARM_MESSAGES[kind],
            params={"camera": camera.name, "where": where},
            source="safety",
            at=at,
            details={"camera_id": camera.id, "safety_event_id": row.id},
            work_order={
                "category": "security",
                "building_id": camera.building_id,
                "location": camera.location or camera.name,
            }
            if kind in ("intrusion", "tailgating")
            else None,
        )
        row.alarm_id = alarm.id
    events.emit(
        s,
        f"safety.video.{kind}",
        {
            "safety_event_id": row.id,
            "camera_id": camera.id,
            "zone_id": ev.zone_id,
            "line_id": ev.line_id,
            "count": ev.count,
            "at": at.isoformat(),
        },
        community_id=camera.community_id,
    )
    return row


def _jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None) | list | dict)


def list_events(
    s: Session,
    ctx: Ctx,
    *,
    camera_id: int | None = None,
    kind: str | None = None,
    before_id: int | None = None,
    include_crossings: bool = False,
    limit: int = 50,
) -> list[SafetyEvent]:
    q = select(SafetyEvent).where(SafetyEvent.community_id == ctx.community_id)
    if camera_id is not None:
        q = q.where(SafetyEvent.camera_id == camera_id)
    if kind:
        q = q.where(SafetyEvent.kind == kind)
    elif not include_crossings:
        q = q.where(SafetyEvent.kind != "line_crossing")
    if before_id is not None:
        q = q.where(SafetyEvent.id < before_id)
    if not ctx.can(Perm.WATCHLIST_READ):  # only the watch list's readers learn of matches
        q = q.where(SafetyEvent.kind != "watchlist_match")
    return list(s.scalars(q.order_by(SafetyEvent.id.desc()).limit(max(1, min(limit, 500)))))


def get_event(s: Session, ctx: Ctx, event_id: int) -> SafetyEvent:
    e = s.get(SafetyEvent, event_id)
    if e is None or e.community_id != ctx.community_id:
        raise NotFound("Event not found.", code="event_not_found")
    if e.kind == "watchlist_match" and not ctx.can(Perm.WATCHLIST_READ):
        raise NotFound("Event not found.", code="event_not_found")
    return e


def event_media(s: Session, ctx: Ctx, event_id: int, what: str, files: FileStore) -> bytes:
    e = get_event(s, ctx, event_id)
    sha = e.snapshot_sha256 if what == "snapshot" else e.clip_sha256
    if not sha or not files.exists(sha):
        raise NotFound("No picture is kept for this event.", code="no_media")
    return files.get(sha)


def line_counts(
    s: Session, ctx: Ctx, *, since: datetime, camera_id: int | None = None
) -> list[LineCount]:
    q = select(LineCount).where(
        LineCount.community_id == ctx.community_id, LineCount.hour >= _hour(since)
    )
    if camera_id is not None:
        q = q.where(LineCount.camera_id == camera_id)
    return list(s.scalars(q.order_by(LineCount.hour, LineCount.camera_id, LineCount.line_id)))


def record_gate_grant(
    s: Session, community_id: int, gate_id: int, direction: str, at: datetime, event_id: str
) -> bool:
    """An access grant at a gate some camera watches (idempotent by event id)."""
    watched = s.scalar(
        select(func.count(Camera.id)).where(
            Camera.community_id == community_id, Camera.gate_id == gate_id
        )
    )
    if not watched:
        return False
    if s.scalar(select(GateGrant.id).where(GateGrant.event_id == event_id)) is not None:
        return False
    s.add(
        GateGrant(
            community_id=community_id,
            gate_id=gate_id,
            direction=direction,
            at=at,
            event_id=event_id,
        )
    )
    s.flush()
    return True


def purge_media(
    s: Session, files: FileStore, settings: Settings, now: datetime | None = None
) -> int:
    """Delete snapshots and clips older than ``snapshot_retention_days`` (the rows stay, without
    pictures, except single line crossings, which the hourly counts keep); old care activity
    (over a year) and tailgating grants (over a day) go too. Returns the number of events and
    watch-list matches that lost their pictures."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.snapshot_retention_days)
    n = expire_media(
        s, files, SafetyEvent, cutoff=cutoff, sha_attrs=("snapshot_sha256", "clip_sha256")
    )
    n += expire_media(s, files, WatchMatch, cutoff=cutoff)
    # single crossings are summed up in safety_line_counts: the rows need not stay
    s.execute(
        delete(SafetyEvent).where(SafetyEvent.kind == "line_crossing", SafetyEvent.at < cutoff)
    )
    s.execute(delete(CareActivity).where(CareActivity.at < now - timedelta(days=366)))
    s.execute(delete(GateGrant).where(GateGrant.at < now - timedelta(days=1)))
    s.flush()
    return n


# == watch list ================================================================================


def _user_can_manage_watchlist(s: Session, community_id: int, user_id: int) -> User | None:
    u = s.get(User, user_id)
    if u is None or not u.is_active:
        return None
    roles = {
        Role(r)
        for r in s.scalars(
            select(RoleGrant.role).where(
                RoleGrant.user_id == user_id,
                (RoleGrant.community_id == community_id) | (RoleGrant.community_id.is_(None)),
            )
        )
    }
    return u if Perm.WATCHLIST_MANAGE in permissions_for(roles) else None


def authorisers(s: Session, ctx: Ctx) -> list[User]:
    """Staff members who may authorise a watch-list entry in this community."""
    ids = set(
        s.scalars(
            select(RoleGrant.user_id).where(
                (RoleGrant.community_id == ctx.community_id) | (RoleGrant.community_id.is_(None))
            )
        )
    )
    out = [u for uid in sorted(ids) if (u := _user_can_manage_watchlist(s, ctx.community_id, uid))]
    return out


def create_watch_entry(
    s: Session, ctx: Ctx, data: WatchEntryIn, now: datetime | None = None
) -> WatchEntry:
    """A new entry: a reason (validated by the schema), an authorising staff member who holds
    ``watchlist.manage`` in the community, and an expiry within a year. Audited."""
    ctx.require(Perm.WATCHLIST_MANAGE)
    now = now or utcnow()
    if data.authorised_by_user_id is None:
        raise ValidationFailed(
            "Name the staff member who authorised this entry.", field="authorised_by_user_id"
        )
    auth = _user_can_manage_watchlist(s, ctx.community_id, data.authorised_by_user_id)
    if auth is None:
        raise ValidationFailed(
            "This person may not authorise watch-list entries.", field="authorised_by_user_id"
        )
    if data.expires_at is None:
        raise ValidationFailed("Set when the entry expires.", field="expires_at")
    exp = _aware(data.expires_at)
    if exp <= now:
        raise ValidationFailed("The expiry must be in the future.", field="expires_at")
    if exp > now + timedelta(days=WATCH_MAX_DAYS):
        raise ValidationFailed(
            "An entry may last at most %(n)s days; renew it when needed.",
            field="expires_at",
            params={"n": WATCH_MAX_DAYS},
        )
    e = WatchEntry(
        community_id=ctx.community_id,
        name=data.name,
        reason=data.reason,
        authorised_by_user_id=auth.id,
        authorised_by=auth.display_name or auth.username,
        created_by=ctx.actor.name,
        created_at=now,
        expires_at=exp,
        status="active",
    )
    s.add(e)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.entry_created",
        "safety_watch_entry",
        e.id,
        community_id=ctx.community_id,
        details={
            "reason": e.reason,
            "authorised_by": e.authorised_by,
            "expires_at": exp.isoformat(),
        },
    )
    invalidate_watch_gallery(ctx.community_id)
    return e


def _entry(s: Session, ctx: Ctx, entry_id: int) -> WatchEntry:
    e = s.get(WatchEntry, entry_id)
    if e is None or e.community_id != ctx.community_id:
        raise NotFound("Watch-list entry not found.", code="watch_entry_not_found")
    return e


def view_watch_entry(s: Session, ctx: Ctx, entry_id: int) -> WatchEntry:
    ctx.require(Perm.WATCHLIST_READ)
    e = _entry(s, ctx, entry_id)
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.viewed",
        "safety_watch_entry",
        e.id,
        community_id=ctx.community_id,
    )
    return e


def list_watch_entries(
    s: Session, ctx: Ctx, *, include_ended: bool = False, now: datetime | None = None
) -> list[WatchEntry]:
    """The watch list (audited as a view). Expired entries are ended on the way."""
    ctx.require(Perm.WATCHLIST_READ)
    expire_watch_entries(s, now, community_id=ctx.community_id)
    q = select(WatchEntry).where(WatchEntry.community_id == ctx.community_id)
    if not include_ended:
        q = q.where(WatchEntry.status == "active")
    rows = list(s.scalars(q.order_by(WatchEntry.id.desc())))
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.viewed",
        "safety_watch_list",
        None,
        community_id=ctx.community_id,
        details={"entries": len(rows)},
    )
    return rows


def entry_counts(s: Session, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    faces = dict(
        s.execute(
            select(WatchTemplate.entry_id, func.count())
            .where(WatchTemplate.entry_id.in_(ids))
            .group_by(WatchTemplate.entry_id)
        ).all()
    )
    matches = dict(
        s.execute(
            select(WatchMatch.entry_id, func.count())
            .where(WatchMatch.entry_id.in_(ids))
            .group_by(WatchMatch.entry_id)
        ).all()
    )
    return {i: (int(faces.get(i, 0)), int(matches.get(i, 0))) for i in ids}


def _watch_aad(entry_id: int) -> bytes:
    return f"safety-watch-entry:{entry_id}".encode()


def add_watch_face(
    s: Session, ctx: Ctx, entry_id: int, photo: bytes, settings: Settings
) -> WatchTemplate:
    """Add a face template from a photo (the largest face). The photo itself is not kept; the
    embedding is encrypted with the access-control cipher."""
    from linli.access.service import cipher
    from linli.vision import faces

    ctx.require(Perm.WATCHLIST_MANAGE)
    e = _entry(s, ctx, entry_id)
    if e.status != "active":
        raise ValidationFailed("This entry has ended.", code="entry_ended")
    try:
        found = faces.analyze_image(photo, min_face=40.0, order="largest_first")
    except faces.ImageError as exc:
        raise ValidationFailed(
            "The photo could not be read: %(reason)s",
            field="photo",
            params={"reason": faces.reason_text(exc.code)},
        ) from exc
    if not found or found[0].embedding is None:
        raise ValidationFailed("No face was found in the photo.", field="photo")
    blob = cipher(settings).encrypt(faces.embedding_to_bytes(found[0].embedding), _watch_aad(e.id))
    t = WatchTemplate(community_id=ctx.community_id, entry_id=e.id, template=blob)
    s.add(t)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.face_added",
        "safety_watch_entry",
        e.id,
        community_id=ctx.community_id,
        details={"template_id": t.id},
    )
    invalidate_watch_gallery(ctx.community_id)
    return t


def end_watch_entry(
    s: Session, ctx: Ctx, entry_id: int, reason: str, now: datetime | None = None
) -> WatchEntry:
    ctx.require(Perm.WATCHLIST_MANAGE)
    e = _entry(s, ctx, entry_id)
    if not reason.strip():
        raise ValidationFailed("Give the reason for ending the entry.", field="reason")
    if e.status == "active":
        e.status = "ended"
        e.ended_at = now or utcnow()
        e.ended_by = ctx.actor.name
        e.end_reason = reason.strip()[:300]
        # templates are biometric data: they go with the entry
        s.execute(delete(WatchTemplate).where(WatchTemplate.entry_id == e.id))
        audit.record(
            s,
            ctx.actor,
            "safety.watchlist.entry_ended",
            "safety_watch_entry",
            e.id,
            community_id=ctx.community_id,
            details={"reason": e.end_reason},
        )
        invalidate_watch_gallery(ctx.community_id)
    return e


def expire_watch_entries(
    s: Session, now: datetime | None = None, community_id: int | None = None
) -> int:
    now = now or utcnow()
    q = select(WatchEntry).where(WatchEntry.status == "active", WatchEntry.expires_at <= now)
    if community_id is not None:
        q = q.where(WatchEntry.community_id == community_id)
    n = 0
    for e in s.scalars(q):
        e.status = "ended"
        e.ended_at = now
        e.ended_by = "system"
        e.end_reason = "expired"
        s.execute(delete(WatchTemplate).where(WatchTemplate.entry_id == e.id))
        audit.record(
            s,
            audit.Actor.system("safety"),
            "safety.watchlist.entry_expired",
            "safety_watch_entry",
            e.id,
            community_id=e.community_id,
        )
        invalidate_watch_gallery(e.community_id)
        n += 1
    if n:
        s.flush()
    return n


@dataclass
class _WatchCache:
    stamp: tuple[int, int | None, int]
    gallery: Any


_watch_galleries: dict[tuple[str, int], _WatchCache] = {}
_watch_lock = threading.Lock()


def invalidate_watch_gallery(community_id: int | None = None) -> None:
    with _watch_lock:
        for k in list(_watch_galleries):
            if community_id is None or k[1] == community_id:
                del _watch_galleries[k]


def watch_gallery(
    s: Session, settings: Settings, community_id: int, now: datetime | None = None
) -> Any:
    """The community's watch-list gallery (active, unexpired entries), decrypted in memory and
    rebuilt when templates or entries change (checked by a cheap stamp query)."""
    from linli.access.service import cipher
    from linli.vision import faces

    now = now or utcnow()
    active = select(WatchEntry.id).where(
        WatchEntry.community_id == community_id,
        WatchEntry.status == "active",
        WatchEntry.expires_at > now,
    )
    row = s.execute(
        select(func.count(WatchTemplate.id), func.max(WatchTemplate.id)).where(
            WatchTemplate.community_id == community_id, WatchTemplate.entry_id.in_(active)
        )
    ).one()
    n_active = s.scalar(select(func.count()).select_from(active.subquery())) or 0
    stamp = (int(row[0] or 0), None if row[1] is None else int(row[1]), int(n_active))
    key = (str(s.get_bind().engine.url), community_id)
    with _watch_lock:
        cached = _watch_galleries.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached.gallery
        g = faces.Gallery()
        c = cipher(settings)
        for t in s.scalars(
            select(WatchTemplate).where(
                WatchTemplate.community_id == community_id, WatchTemplate.entry_id.in_(active)
            )
        ):
            emb = faces.embedding_from_bytes(c.decrypt(t.template, _watch_aad(t.entry_id)))
            g.add(t.entry_id, emb, template_id=f"w{t.id}")
        _watch_galleries[key] = _WatchCache(stamp, g)
        return g


def identify_watch_faces(
    s: Session,
    settings: Settings,
    community_id: int,
    frame: np.ndarray,
    now: datetime | None = None,
) -> list[tuple[int, float, list[float]]]:
    """Faces of a camera frame that match the watch list: (entry id, distance, face box in
    normalised coordinates). Nothing is computed when the watch list is empty."""
    from linli.vision import faces

    g = watch_gallery(s, settings, community_id, now)
    if len(g) == 0:
        return []
    h, w = frame.shape[:2]
    out: list[tuple[int, float, list[float]]] = []
    for f in faces.analyze_image(
        frame, min_face=40.0, channel_order="bgr", quality=faces.ACCESS_QUALITY
    ):
        if f.embedding is None:
            continue
        ident = g.identify(f.embedding)
        if ident.matched and ident.person_id is not None:
            b = f.box
            box = [max(0.0, b.x1 / w), max(0.0, b.y1 / h), min(1.0, b.x2 / w), min(1.0, b.y2 / h)]
            out.append((int(ident.person_id), float(ident.distance or 0.0), box))
    return out


def record_watch_match(
    s: Session,
    camera: Camera,
    entry_id: int,
    distance: float,
    box: list[float] | None,
    files: FileStore | None,
    frame: np.ndarray | None,
    now: datetime | None = None,
) -> WatchMatch:
    """A camera saw a watch-list face: the match (audited), its snapshot, and an alarm for the
    security guards. The alarm and its work order do not name the person: only holders of
    ``watchlist.read`` can open the match."""
    from linli.iot.service import raise_alarm

    now = now or utcnow()
    snap = None
    if files is not None and frame is not None:
        snap = files.put(_jpeg(draw_box(frame, box)))
    m = WatchMatch(
        community_id=camera.community_id,
        entry_id=entry_id,
        camera_id=camera.id,
        at=now,
        distance=round(distance, 4),
        box=box,
        snapshot_sha256=snap,
    )
    s.add(m)
    s.flush()
    alarm, _ = raise_alarm(
        s,
        community_id=camera.community_id,
        dedup_key=f"safety:watch:{entry_id}:{camera.id}",
        kind="safety_watchlist_match",
        severity="major",
        message=N_("A person on the watch list was seen by camera %(camera)s (match #%(match)s)"),
        params={"camera": camera.name, "match": m.id},
        source="safety",
        at=now,
        details={"camera_id": camera.id, "watch_match_id": m.id},
        work_order={
            "category": "security",
            "building_id": camera.building_id,
            "location": camera.location or camera.name,
        },
    )
    m.alarm_id = alarm.id
    audit.record(
        s,
        audit.Actor.system("safety-camera"),
        "safety.watchlist.matched",
        "safety_watch_entry",
        entry_id,
        community_id=camera.community_id,
        details={"camera_id": camera.id, "match_id": m.id, "distance": m.distance},
    )
    events.emit(
        s,
        "safety.watchlist.matched",
        {"watch_match_id": m.id, "camera_id": camera.id, "alarm_id": alarm.id},
        community_id=camera.community_id,
    )
    store_event(
        s,
        camera,
        _Ev("watchlist_match", now.timestamp(), box, {"watch_match_id": m.id}),
        None,
    )
    return m


@dataclass
class _Ev:
    """A video event made by the domain (the watch-list match) in the analytics event shape."""

    kind: str
    ts: float
    box: list[float] | None
    details: dict[str, Any]
    track_id: int | None = None
    zone_id: str | None = None
    line_id: str | None = None
    direction: str | None = None
    count: int | None = None


def list_watch_matches(
    s: Session, ctx: Ctx, *, entry_id: int | None = None, limit: int = 100
) -> list[WatchMatch]:
    ctx.require(Perm.WATCHLIST_READ)
    q = select(WatchMatch).where(WatchMatch.community_id == ctx.community_id)
    if entry_id is not None:
        q = q.where(WatchMatch.entry_id == entry_id)
    rows = list(s.scalars(q.order_by(WatchMatch.id.desc()).limit(max(1, min(limit, 500)))))
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.matches_viewed",
        "safety_watch_list",
        entry_id,
        community_id=ctx.community_id,
        details={"matches": len(rows)},
    )
    return rows


def watch_match_snapshot(s: Session, ctx: Ctx, match_id: int, files: FileStore) -> bytes:
    ctx.require(Perm.WATCHLIST_READ)
    m = s.get(WatchMatch, match_id)
    if m is None or m.community_id != ctx.community_id:
        raise NotFound("Match not found.", code="watch_match_not_found")
    if not m.snapshot_sha256 or not files.exists(m.snapshot_sha256):
        raise NotFound("No picture is kept for this event.", code="no_media")
    audit.record(
        s,
        ctx.actor,
        "safety.watchlist.snapshot_viewed",
        "safety_watch_match",
        m.id,
        community_id=ctx.community_id,
    )
    return files.get(m.snapshot_sha256)


# == care for elderly people living alone ======================================================


def _care_query(ctx: Ctx) -> Any:
    q = select(CarePerson).where(CarePerson.community_id == ctx.community_id)
    if ctx.building_scope is not None:
        q = q.where(CarePerson.building_id.in_(ctx.building_scope))
    return q


def list_care(s: Session, ctx: Ctx, *, include_ended: bool = False) -> list[CarePerson]:
    ctx.require(Perm.CARE_READ)
    q = _care_query(ctx)
    if not include_ended:
        q = q.where(CarePerson.active.is_(True))
    return list(s.scalars(q.order_by(CarePerson.name)))


def get_care(s: Session, ctx: Ctx, person_id: int) -> CarePerson:
    ctx.require(Perm.CARE_READ)
    p = s.scalar(_care_query(ctx).where(CarePerson.id == person_id))
    if p is None:
        raise NotFound("Person in care not found.", code="care_person_not_found")
    return p


def _home_building(s: Session, resident_id: int) -> int | None:
    from linli.people.models import Household, Resident, Unit

    return s.scalar(
        select(Unit.building_id)
        .join(Household, Household.unit_id == Unit.id)
        .join(Resident, Resident.household_id == Household.id)
        .where(Resident.id == resident_id)
    )


def enrol_care(s: Session, ctx: Ctx, data: CarePersonIn, now: datetime | None = None) -> CarePerson:
    """Enrol a resident in care with their or their family's recorded consent. Audited."""
    from linli.iot.service import get_device
    from linli.people.service import get_resident

    ctx.require(Perm.CARE_MANAGE)
    now = now or utcnow()
    try:
        r = get_resident(s, ctx, data.resident_id)
    except NotFound as exc:
        raise NotFound("Resident not found.", field="resident_id") from exc
    existing = s.scalar(
        select(CarePerson).where(
            CarePerson.community_id == ctx.community_id, CarePerson.resident_id == r.id
        )
    )
    if existing is not None and existing.active:
        raise ValidationFailed("This resident is already in care.", field="resident_id")
    for d in data.device_ids:
        try:
            get_device(s, system_ctx(ctx.community_id), d)
        except NotFound as exc:
            raise NotFound("Device not found.", field="device_ids") from exc
    if data.consent_by == "family" and not data.family_name:
        raise ValidationFailed(
            "Consent given by the family needs the family contact's name.", field="family_name"
        )
    p = existing or CarePerson(community_id=ctx.community_id, resident_id=r.id)
    values = data.model_dump()
    for k, v in values.items():
        setattr(p, k, v)
    p.name = r.name
    p.building_id = _home_building(s, r.id)
    p.consent_at = now
    p.enrolled_at = now
    p.active = True
    p.last_activity_at = None
    p.last_activity_source = None
    p.telemetry_until = now
    p.baseline = {}
    if existing is None:
        s.add(p)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.care.enrolled",
        "safety_care_person",
        p.id,
        community_id=ctx.community_id,
        details={"resident_id": r.id, "consent_by": p.consent_by, "consent_name": p.consent_name},
    )
    return p


def update_care(s: Session, ctx: Ctx, person_id: int, data: CarePersonIn) -> CarePerson:
    ctx.require(Perm.CARE_MANAGE)
    p = get_care(s, ctx, person_id)
    if data.resident_id != p.resident_id:
        raise ValidationFailed("The resident of an enrolment cannot change.", field="resident_id")
    for k in (
        "family_name",
        "family_phone",
        "device_ids",
        "inactive_hours",
        "water_hours",
        "night_from",
        "night_to",
        "identity_id",
    ):
        setattr(p, k, getattr(data, k))
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "safety.care.updated",
        "safety_care_person",
        p.id,
        community_id=ctx.community_id,
    )
    return p


def end_care(s: Session, ctx: Ctx, person_id: int, reason: str) -> CarePerson:
    """Consent withdrawn or the person moved: no more rules; the activity log is deleted."""
    ctx.require(Perm.CARE_MANAGE)
    p = get_care(s, ctx, person_id)
    p.active = False
    s.execute(delete(CareActivity).where(CareActivity.person_id == p.id))
    audit.record(
        s,
        ctx.actor,
        "safety.care.ended",
        "safety_care_person",
        p.id,
        community_id=ctx.community_id,
        details={"reason": reason[:200]},
    )
    s.flush()
    return p


def record_activity(
    s: Session, p: CarePerson, at: datetime, source: str, detail: str | None = None
) -> bool:
    """A sign of life. Returns False when one of the same source was logged moments before."""
    from linli.iot.service import clear_alarm_by_key

    at = _aware(at)
    recent = s.scalar(
        select(CareActivity.id).where(
            CareActivity.person_id == p.id,
            CareActivity.source == source,
            CareActivity.at > at - timedelta(minutes=ACTIVITY_DEDUP_MIN),
            CareActivity.at <= at + timedelta(minutes=ACTIVITY_DEDUP_MIN),
        )
    )
    if p.last_activity_at is None or _aware(p.last_activity_at) < at:
        p.last_activity_at = at
        p.last_activity_source = source
        clear_alarm_by_key(s, p.community_id, _care_key(p.id, "inactive"), by="care", at=at)
    if recent is not None:
        return False
    s.add(
        CareActivity(
            community_id=p.community_id,
            person_id=p.id,
            at=at,
            source=source,
            detail=(detail or "")[:100] or None,
        )
    )
    s.flush()
    return True


def _care_key(person_id: int, rule: str) -> str:
    return f"safety:care:{person_id}:{rule}"


def _parse_hhmm(v: str) -> time:
    h, m = v.split(":")
    return time(int(h), int(m))


def in_night(p: CarePerson, local: datetime) -> bool:
    a, b = _parse_hhmm(p.night_from), _parse_hhmm(p.night_to)
    t = local.time()
    return (a <= t or t < b) if a > b else (a <= t < b)


def access_activity(
    s: Session,
    community_id: int,
    resident_id: int,
    at: datetime,
    direction: str,
    gate: str = "",
) -> CarePerson | None:
    """A person in care passed a gate: activity; going out at night, when their baseline says
    they seldom do, raises the night-outing alarm."""
    from linli.people.models import Community

    p = s.scalar(
        select(CarePerson).where(
            CarePerson.community_id == community_id,
            CarePerson.resident_id == resident_id,
            CarePerson.active.is_(True),
        )
    )
    if p is None:
        return None
    record_activity(s, p, at, "access", f"{direction} {gate}".strip())
    if direction == "out":
        c = s.get(Community, community_id)
        local = local_now(c.timezone if c else "Asia/Shanghai", at)
        usual = float((p.baseline or {}).get("night_out_share", 0.0))
        if in_night(p, local) and usual < 0.2:
            _care_alarm(
                s,
                p,
                "night_out",
                at,
                N_("%(name)s went out at night (%(time)s), which is unusual for them"),
                {"name": p.name, "time": local.strftime("%H:%M")},
                severity="major",
            )
    return p


def _care_alarm(
    s: Session,
    p: CarePerson,
    rule: str,
    at: datetime,
    message: str,
    params: dict[str, Any],
    severity: str = "major",
) -> bool:
    """Raise a care alarm: a wellbeing-visit work order for the person's grid worker and an
    SMS to the family contact — once per episode (the alarm is de-duplicated while open)."""
    from linli.iot.service import raise_alarm
    from linli.safety import notify

    alarm, created = raise_alarm(
        s,
        community_id=p.community_id,
        dedup_key=_care_key(p.id, rule),
        kind=f"care_{rule}",
        severity=severity,
        message=message,
        params=params,
        source="safety",
        at=at,
        details={"care_person_id": p.id},
        work_order={
            "category": "wellbeing",
            "building_id": p.building_id,
            "location": p.name,
            "requester_resident_id": p.resident_id,
        },
    )
    if not created:
        return False
    s.add(
        CareVisit(
            community_id=p.community_id,
            person_id=p.id,
            alarm_id=alarm.id,
            work_order_id=alarm.work_order_id,
            reason=rule,
            opened_at=at,
        )
    )
    if p.family_phone:
        from linli.core.i18n import platform_language, render_in

        lang = platform_language()
        text = render_in(lang, message, params)
        notify.send_sms(
            s,
            p.community_id,
            p.family_phone,
            render_in(lang, N_("[Linli] %(text)s. A grid worker will visit."), {"text": text}),
            person_id=p.id,
        )
    s.flush()
    return True


def _device_profiles(s: Session, community_id: int, ids: Sequence[int]) -> dict[int, str]:
    from linli.iot.service import get_device, get_profile

    ctx = system_ctx(community_id)
    out: dict[int, str] = {}
    for i in ids:
        try:
            d = get_device(s, ctx, i)
            out[i] = get_profile(s, ctx, d.profile_id).key
        except NotFound:
            continue
    return out


#: which metric of a device profile shows activity (value > 0)
ACTIVITY_METRICS: dict[str, tuple[str, str]] = {
    "door_contact": ("open", "door"),
    "water_meter": ("flow", "water"),
}


def _points(
    s: Session, community_id: int, device_id: int, metric: str, start: datetime, end: datetime
) -> list[tuple[datetime, float, float]]:
    """(time, min, max) samples of a device metric, in chunks the telemetry store answers
    from raw samples (<= 6 h) or roll-ups."""
    from linli.iot.service import series

    out: list[tuple[datetime, float, float]] = []
    ctx = system_ctx(community_id)
    t = start
    while t < end:
        u = min(end, t + timedelta(hours=6))
        res = series(s, ctx, device_id, metric, t, u)
        for pt in res["points"]:
            if pt[2] is None or pt[3] is None:
                continue
            out.append((_aware(datetime.fromisoformat(pt[0])), float(pt[2]), float(pt[3])))
        t = u
    return out


def poll_devices(s: Session, p: CarePerson, now: datetime) -> None:
    """Read the person's home devices since the last poll: door openings and water use are
    activity; water flowing without a stop for ``water_hours`` raises an alarm."""
    if not p.device_ids:
        return
    start = _aware(p.telemetry_until or p.enrolled_at)
    start = max(start, now - timedelta(days=7))
    profiles = _device_profiles(s, p.community_id, p.device_ids)
    for dev, key in profiles.items():
        metric, source = ACTIVITY_METRICS.get(key, ("", ""))
        if not metric:
            continue
        if start < now:
            for at, _lo, hi in _points(s, p.community_id, dev, metric, start, now):
                if hi > 0:
                    record_activity(s, p, at, source, f"device {dev}")
        if key == "water_meter":
            _check_water(s, p, dev, now)
    p.telemetry_until = now


def _check_water(s: Session, p: CarePerson, device_id: int, now: datetime) -> None:
    from linli.iot.service import clear_alarm_by_key

    window = timedelta(hours=p.water_hours)
    pts = _points(s, p.community_id, device_id, "flow", now - window, now)
    key = _care_key(p.id, "water")
    if not pts:
        return
    # samples must cover the whole window (the first within 15 min of its start) and the
    # flow never drop to zero
    covered = pts[0][0] <= now - window + timedelta(minutes=15)
    running = all(lo > 0 for _t, lo, _hi in pts)
    if covered and running:
        _care_alarm(
            s,
            p,
            "water",
            now,
            N_("Water has been running without a stop for %(hours)s hours at %(name)s's home"),
            {"hours": f"{p.water_hours:g}", "name": p.name},
        )
    elif not running:
        clear_alarm_by_key(s, p.community_id, key, by="care", at=now)


def compute_baseline(s: Session, p: CarePerson, tz: str, now: datetime) -> dict[str, Any]:
    """Typical activity of the person over the last 28 days: active hours (local), median
    events per day, share of going out at night."""
    since = now - timedelta(days=28)
    rows = list(
        s.execute(
            select(CareActivity.at, CareActivity.source, CareActivity.detail).where(
                CareActivity.person_id == p.id, CareActivity.at >= since
            )
        ).all()
    )
    zone = ZoneInfo(tz)
    days: dict[str, int] = {}
    hours = [0] * 24
    outs = 0
    night_outs = 0
    for at, source, detail in rows:
        local = _aware(at).astimezone(zone)
        days[local.date().isoformat()] = days.get(local.date().isoformat(), 0) + 1
        hours[local.hour] += 1
        if source == "access" and (detail or "").startswith("out"):
            outs += 1
            if in_night(p, local):
                night_outs += 1
    n_days = max(1, len(days))
    active = [h for h in range(24) if hours[h] / n_days >= 0.25]
    counts = sorted(days.values())
    return {
        "days": len(days),
        "active_hours": active,
        "daily_events": counts[len(counts) // 2] if counts else 0,
        "night_out_share": round(night_outs / outs, 3) if outs else 0.0,
        "first_hour": min(active) if active else None,
        "last_hour": max(active) if active else None,
    }


def evaluate_care(
    s: Session, now: datetime | None = None, community_id: int | None = None
) -> list[tuple[int, str]]:
    """Run the care rules for every active person: read their devices, refresh the baseline
    once a day, and raise the no-activity alarm after ``inactive_hours`` without a sign of
    life. Returns the (person id, rule) pairs that raised a new alarm."""
    from linli.people.models import Community

    now = now or utcnow()
    q = select(CarePerson).where(CarePerson.active.is_(True))
    if community_id is not None:
        q = q.where(CarePerson.community_id == community_id)
    raised: list[tuple[int, str]] = []
    tzs: dict[int, str] = {}
    for p in list(s.scalars(q.order_by(CarePerson.id))):
        if p.community_id not in tzs:
            c = s.get(Community, p.community_id)
            tzs[p.community_id] = c.timezone if c else "Asia/Shanghai"
        before = {
            v.reason
            for v in s.scalars(
                select(CareVisit).where(CareVisit.person_id == p.id, CareVisit.outcome.is_(None))
            )
        }
        try:
            poll_devices(s, p, now)
        except Exception:  # a broken device must not stop the other people's rules
            log.exception("care: reading the devices of person %s failed", p.id)
        if p.baseline_at is None or now - _aware(p.baseline_at) >= timedelta(hours=20):
            p.baseline = compute_baseline(s, p, tzs[p.community_id], now)
            p.baseline_at = now
        last = _aware(p.last_activity_at or p.enrolled_at)
        idle_h = (now - last).total_seconds() / 3600.0
        if idle_h >= p.inactive_hours:
            local_last = local_now(tzs[p.community_id], last)
            _care_alarm(
                s,
                p,
                "inactive",
                now,
                N_("No sign of activity from %(name)s for %(hours)s hours (last: %(last)s)"),
                {"name": p.name, "hours": int(idle_h), "last": local_last.strftime("%m-%d %H:%M")},
                severity="critical" if idle_h >= 2 * p.inactive_hours else "major",
            )
        after = {
            v.reason
            for v in s.scalars(
                select(CareVisit).where(CareVisit.person_id == p.id, CareVisit.outcome.is_(None))
            )
        }
        raised += [(p.id, r) for r in sorted(after - before)]
    s.flush()
    return raised


def list_visits(
    s: Session, ctx: Ctx, person_id: int | None = None, open_only: bool = False
) -> list[CareVisit]:
    ctx.require(Perm.CARE_READ)
    ids = select(CarePerson.id).where(CarePerson.community_id == ctx.community_id)
    if ctx.building_scope is not None:
        ids = ids.where(CarePerson.building_id.in_(ctx.building_scope))
    q = select(CareVisit).where(CareVisit.person_id.in_(ids))
    if person_id is not None:
        q = q.where(CareVisit.person_id == person_id)
    if open_only:
        q = q.where(CareVisit.outcome.is_(None))
    return list(s.scalars(q.order_by(CareVisit.id.desc()).limit(200)))


def record_visit(
    s: Session, ctx: Ctx, visit_id: int, data: VisitIn, now: datetime | None = None
) -> CareVisit:
    """The grid worker's visit: the outcome is recorded, the person seen counts as activity,
    the alarm is cleared and the work order resolved."""
    from linli.iot.service import clear_alarm_by_key
    from linli.workorders import service as workorders

    ctx.require(Perm.CARE_READ)
    now = now or utcnow()
    v = s.get(CareVisit, visit_id)
    if v is None or v.community_id != ctx.community_id:
        raise NotFound("Visit not found.", code="care_visit_not_found")
    p = get_care(s, ctx, v.person_id)  # grid scope
    if v.outcome is not None:
        raise ValidationFailed("The outcome of this visit is already recorded.", code="done")
    v.outcome = data.outcome
    v.note = data.note
    v.visited_at = now
    v.visited_by = ctx.actor.name
    if data.outcome in ("well", "needs_help"):
        record_activity(s, p, now, "visit", data.outcome)
    clear_alarm_by_key(s, p.community_id, _care_key(p.id, v.reason), by=ctx.actor.name, at=now)
    if v.work_order_id is not None and ctx.can(Perm.WORKORDERS_HANDLE):
        wo = s.get(workorders.WorkOrder, v.work_order_id)
        if wo is not None and wo.status in workorders.OPEN_STATUSES:
            workorders.change_status(
                s,
                ctx,
                wo.id,
                "resolved",
                text=f"{data.outcome}: {data.note or ''}".strip(),
                now=now,
            )
    audit.record(
        s,
        ctx.actor,
        "safety.care.visited",
        "safety_care_person",
        p.id,
        community_id=ctx.community_id,
        details={"outcome": data.outcome, "visit_id": v.id},
    )
    events.emit(
        s,
        "safety.care.visited",
        {"person_id": p.id, "visit_id": v.id, "outcome": data.outcome},
        community_id=ctx.community_id,
    )
    s.flush()
    return v


def care_board(s: Session, ctx: Ctx, now: datetime | None = None) -> list[dict[str, Any]]:
    """People in care with the time since their last sign of activity and open visits."""
    now = now or utcnow()
    people = list_care(s, ctx)
    open_visits: dict[int, list[CareVisit]] = {}
    for v in list_visits(s, ctx, open_only=True):
        open_visits.setdefault(v.person_id, []).append(v)
    out: list[dict[str, Any]] = []
    for p in people:
        last = _aware(p.last_activity_at) if p.last_activity_at else None
        idle = (now - (last or _aware(p.enrolled_at))).total_seconds() / 3600.0
        status = "ok"
        if open_visits.get(p.id):
            status = "alarm"
        elif idle >= 0.75 * p.inactive_hours:
            status = "warning"
        out.append(
            {
                "person": p,
                "last": last,
                "idle_hours": idle,
                "status": status,
                "visits": open_visits.get(p.id, []),
            }
        )
    order = {"alarm": 0, "warning": 1, "ok": 2}
    out.sort(key=lambda r: (order[str(r["status"])], -float(r["idle_hours"] or 0.0)))
    return out


def activity_log(s: Session, ctx: Ctx, person_id: int, limit: int = 100) -> list[CareActivity]:
    p = get_care(s, ctx, person_id)
    q = select(CareActivity).where(CareActivity.person_id == p.id)
    return list(s.scalars(q.order_by(CareActivity.at.desc()).limit(limit)))


# == periodic ==================================================================================


def periodic(
    s: Session, settings: Settings, files: FileStore, now: datetime | None = None
) -> dict[str, int]:
    """What the app's periodic loop runs: care rules, camera health, watch-list expiry, media
    retention."""
    now = now or utcnow()
    raised = evaluate_care(s, now)
    silent = check_camera_health(s, now)
    expired = expire_watch_entries(s, now)
    purged = purge_media(s, files, settings, now)
    return {
        "care_alarms": len(raised),
        "silent_cameras": len(silent),
        "expired": expired,
        "purged": purged,
    }


def config_message(code: str) -> str:
    return CONFIG_MESSAGES.get(code, CONFIG_MESSAGES["bad_config"])
