"""JSON API of community safety: /api/v1/communities/{cid}/safety/... (cameras, zones and
lines, latest frames, video events and media, line counts, the watch list, care)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, File, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from linli.core.db import utcnow
from linli.core.errors import TooLarge, ValidationFailed
from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, get_settings, require
from linli.safety import service
from linli.safety.models import SafetyEvent, WatchMatch
from linli.safety.schemas import (
    AnalyticsIn,
    CameraIn,
    CameraOut,
    CarePersonIn,
    CarePersonOut,
    LineCountOut,
    SafetyEventOut,
    VisitIn,
    VisitOut,
    WatchEndIn,
    WatchEntryIn,
    WatchEntryOut,
    WatchMatchOut,
)

router = api_router(prefix="/api/v1/communities/{cid}/safety", tags=["safety"])

MAX_PHOTO = 8 * 1024 * 1024


def _files(request: Request) -> Any:
    return request.app.state.files


def event_out(e: SafetyEvent) -> SafetyEventOut:
    out = SafetyEventOut.model_validate(e)
    out.has_snapshot = bool(e.snapshot_sha256)
    out.has_clip = bool(e.clip_sha256)
    return out


def match_out(m: WatchMatch) -> WatchMatchOut:
    out = WatchMatchOut.model_validate(m)
    out.has_snapshot = bool(m.snapshot_sha256)
    return out


# -- cameras ----------------------------------------------------------------------------------


@router.get("/cameras", response_model=list[CameraOut])
def list_cameras(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.SAFETY_READ))
) -> list[CameraOut]:
    return [service.camera_out(c) for c in service.list_cameras(s, ctx)]


@router.post("/cameras", response_model=CameraOut, status_code=201)
def create_camera(
    data: CameraIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> CameraOut:
    c = service.save_camera(s, ctx, data)
    out = service.camera_out(c)
    s.commit()
    return out


@router.get("/cameras/{camera_id}", response_model=CameraOut)
def get_camera(
    camera_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> CameraOut:
    return service.camera_out(service.get_camera(s, ctx, camera_id))


@router.put("/cameras/{camera_id}", response_model=CameraOut)
def update_camera(
    camera_id: int,
    data: CameraIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> CameraOut:
    c = service.save_camera(s, ctx, data, camera_id)
    out = service.camera_out(c)
    s.commit()
    return out


@router.delete("/cameras/{camera_id}", status_code=204)
def delete_camera(
    camera_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> Response:
    service.delete_camera(s, ctx, camera_id)
    s.commit()
    return Response(status_code=204)


@router.put("/cameras/{camera_id}/analytics", response_model=CameraOut)
def save_analytics(
    camera_id: int,
    data: AnalyticsIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_MANAGE)),
) -> CameraOut:
    c = service.save_analytics(s, ctx, camera_id, data)
    out = service.camera_out(c)
    s.commit()
    return out


@router.get("/cameras/{camera_id}/frame.jpg", response_class=Response)
def camera_frame(
    camera_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    f = service.latest_frame(s, ctx, camera_id)
    return Response(
        f.jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "Last-Modified": f.at.isoformat()},
    )


# -- events -----------------------------------------------------------------------------------


@router.get("/events", response_model=list[SafetyEventOut])
def list_events(
    camera_id: int | None = None,
    kind: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> list[SafetyEventOut]:
    rows = service.list_events(
        s, ctx, camera_id=camera_id, kind=kind, before_id=before_id, limit=limit
    )
    return [event_out(e) for e in rows]


@router.get("/events/{event_id}/snapshot.jpg", response_class=Response)
def event_snapshot(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    data = service.event_media(s, ctx, event_id, "snapshot", _files(request))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private"})


@router.get("/events/{event_id}/clip.mjpeg", response_class=Response)
def event_clip(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> Response:
    """The short clip as a multipart MJPEG document (shown by an ``<img>``)."""
    from linli.vision.video import MjpegParser

    data = service.event_media(s, ctx, event_id, "clip", _files(request))
    parts = MjpegParser().feed(data)
    body = (
        b"".join(
            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
            + str(len(p)).encode()
            + b"\r\n\r\n"
            + p
            + b"\r\n"
            for p in parts
        )
        + b"--frame--\r\n"
    )
    return Response(body, media_type="multipart/x-mixed-replace; boundary=frame")


@router.get("/counts", response_model=list[LineCountOut])
def counts(
    hours: int = 24,
    camera_id: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SAFETY_READ)),
) -> list[LineCountOut]:
    if not 1 <= hours <= 24 * 90:
        raise ValidationFailed("Between 1 and 2160 hours.", field="hours")
    since = utcnow() - timedelta(hours=hours)
    return [
        LineCountOut(
            camera_id=r.camera_id,
            line_id=r.line_id,
            hour=r.hour,
            count_in=r.count_in,
            count_out=r.count_out,
        )
        for r in service.line_counts(s, ctx, since=since, camera_id=camera_id)
    ]


# -- watch list (every read audited) ---------------------------------------------------------


def _entries_out(s: Session, rows: list[Any]) -> list[WatchEntryOut]:
    counts = service.entry_counts(s, [e.id for e in rows])
    out = []
    for e in rows:
        o = WatchEntryOut.model_validate(e)
        o.faces, o.matches = counts.get(e.id, (0, 0))
        out.append(o)
    return out


@router.get("/watchlist", response_model=list[WatchEntryOut])
def watchlist(
    include_ended: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> list[WatchEntryOut]:
    rows = service.list_watch_entries(s, ctx, include_ended=include_ended)
    out = _entries_out(s, rows)
    s.commit()  # the audit entry of the view
    return out


@router.post("/watchlist", response_model=WatchEntryOut, status_code=201)
def create_entry(
    data: WatchEntryIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> WatchEntryOut:
    e = service.create_watch_entry(s, ctx, data)
    out = _entries_out(s, [e])[0]
    s.commit()
    return out


@router.get("/watchlist/{entry_id}", response_model=WatchEntryOut)
def get_entry(
    entry_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> WatchEntryOut:
    e = service.view_watch_entry(s, ctx, entry_id)
    out = _entries_out(s, [e])[0]
    s.commit()
    return out


@router.post("/watchlist/{entry_id}/faces", status_code=201)
async def add_face(
    entry_id: int,
    request: Request,
    photo: UploadFile = File(...),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> dict[str, int]:
    data = await photo.read(MAX_PHOTO + 1)
    if len(data) > MAX_PHOTO:
        raise TooLarge("The photo is too large.", field="photo")
    settings = get_settings(request)
    t = await run_in_threadpool(service.add_watch_face, s, ctx, entry_id, data, settings)
    s.commit()
    return {"template_id": t.id}


@router.post("/watchlist/{entry_id}/end", response_model=WatchEntryOut)
def end_entry(
    entry_id: int,
    data: WatchEndIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_MANAGE)),
) -> WatchEntryOut:
    e = service.end_watch_entry(s, ctx, entry_id, data.reason)
    out = _entries_out(s, [e])[0]
    s.commit()
    return out


@router.get("/watchlist-matches", response_model=list[WatchMatchOut])
def matches(
    entry_id: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> list[WatchMatchOut]:
    rows = service.list_watch_matches(s, ctx, entry_id=entry_id)
    out = [match_out(m) for m in rows]
    s.commit()
    return out


@router.get("/watchlist-matches/{match_id}/snapshot.jpg", response_class=Response)
def match_snapshot(
    match_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WATCHLIST_READ)),
) -> Response:
    data = service.watch_match_snapshot(s, ctx, match_id, _files(request))
    s.commit()
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# -- care -------------------------------------------------------------------------------------


@router.get("/care", response_model=list[CarePersonOut])
def care_people(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.CARE_READ))
) -> list[CarePersonOut]:
    return [CarePersonOut.model_validate(p) for p in service.list_care(s, ctx)]


@router.post("/care", response_model=CarePersonOut, status_code=201)
def enrol(
    data: CarePersonIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_MANAGE)),
) -> CarePersonOut:
    p = service.enrol_care(s, ctx, data)
    out = CarePersonOut.model_validate(p)
    s.commit()
    return out


@router.put("/care/{person_id}", response_model=CarePersonOut)
def update_care(
    person_id: int,
    data: CarePersonIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_MANAGE)),
) -> CarePersonOut:
    p = service.update_care(s, ctx, person_id, data)
    out = CarePersonOut.model_validate(p)
    s.commit()
    return out


@router.get("/care/{person_id}", response_model=CarePersonOut)
def care_person(
    person_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> CarePersonOut:
    return CarePersonOut.model_validate(service.get_care(s, ctx, person_id))


@router.get("/care/{person_id}/activity")
def care_activity(
    person_id: int,
    limit: int = 100,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> list[dict[str, Any]]:
    """The person's recent signs of activity, newest first (gate, door, water, visit)."""
    rows = service.activity_log(s, ctx, person_id, limit=max(1, min(limit, 1000)))
    return [{"at": a.at.isoformat(), "source": a.source, "detail": a.detail} for a in rows]


@router.get("/care-visits", response_model=list[VisitOut])
def visits(
    open_only: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> list[VisitOut]:
    return [VisitOut.model_validate(v) for v in service.list_visits(s, ctx, open_only=open_only)]


@router.post("/care-visits/{visit_id}", response_model=VisitOut)
def record_visit(
    visit_id: int,
    data: VisitIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_READ)),
) -> VisitOut:
    v = service.record_visit(s, ctx, visit_id, data)
    out = VisitOut.model_validate(v)
    s.commit()
    return out


@router.post("/care/evaluate")
def evaluate(
    at: datetime | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.CARE_MANAGE)),
) -> dict[str, Any]:
    """Run the care rules now for this community (they also run every minute)."""
    raised = service.evaluate_care(s, at or utcnow(), community_id=ctx.community_id)
    s.commit()
    return {"raised": [{"person_id": p, "rule": r} for p, r in raised]}
