"""JSON API of the living-environment domain: /api/v1/communities/{cid}/waste/...

Terminals (API tokens with ``waste.deposit``) speak the terminal protocol
(:mod:`linli.waste.terminal`) at ``POST .../waste/stations/{sid}/terminal`` and post camera
frames at ``POST .../waste/stations/{sid}/camera/frames``. Prompt audio is served, without
login, at ``GET /waste/audio/<sha256>.wav``.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from linli.core import i18n
from linli.core.db import utcnow
from linli.core.errors import NotFound, ValidationFailed
from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, require
from linli.waste import service, terminal
from linli.waste.models import Station
from linli.waste.schemas import (
    BinCreated,
    BinIn,
    BinOut,
    DepositOut,
    FrameResult,
    InspectIn,
    PromptTextIn,
    StationCreated,
    StationIn,
    StationOut,
    SupervisionOut,
    Window,
)

router = api_router(prefix="/api/v1", tags=["waste"])
public_router = APIRouter(tags=["waste"])

_AUDIO = re.compile(r"^[0-9a-f]{64}$")


def station_out(s: Session, st: Station) -> StationOut:
    out = StationOut.model_validate(st)
    out.bins = [BinOut.model_validate(b) for b in service.bins_of(s, st.id)]
    return out


@router.get("/communities/{cid}/waste/stations", response_model=list[StationOut])
def list_stations(
    ctx: Ctx = Depends(require(Perm.WASTE_READ)), s: Session = Depends(get_session)
) -> list[StationOut]:
    return [station_out(s, st) for st in service.list_stations(s, ctx)]


@router.post("/communities/{cid}/waste/stations", response_model=StationCreated, status_code=201)
def create_station(
    data: StationIn,
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> StationCreated:
    """A station; its terminal, camera and speaker are registered as devices (secrets shown
    once)."""
    st, secrets = service.create_station(s, ctx, data)
    s.commit()
    return StationCreated.model_validate({"station": station_out(s, st), "devices": secrets})


@router.get("/communities/{cid}/waste/stations/{sid}", response_model=StationOut)
def get_station(
    sid: int, ctx: Ctx = Depends(require(Perm.WASTE_READ)), s: Session = Depends(get_session)
) -> StationOut:
    return station_out(s, service.get_station(s, ctx, sid))


@router.put("/communities/{cid}/waste/stations/{sid}", response_model=StationOut)
def update_station(
    sid: int,
    data: StationIn,
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> StationOut:
    st = service.update_station(s, ctx, sid, data)
    s.commit()
    return station_out(s, st)


@router.put("/communities/{cid}/waste/stations/{sid}/hours", response_model=StationOut)
def set_hours(
    sid: int,
    hours: list[Window],
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> StationOut:
    """The fixed delivery windows (定时定点), e.g. ``[{"start": "07:00", "end": "09:00"}]``."""
    if len(hours) > 8:
        raise ValidationFailed("At most 8 delivery windows.", field="hours")
    st = service.set_hours(s, ctx, sid, hours)
    s.commit()
    return station_out(s, st)


@router.post(
    "/communities/{cid}/waste/stations/{sid}/bins", response_model=BinCreated, status_code=201
)
def add_bin(
    sid: int,
    data: BinIn,
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> BinCreated:
    b, secrets = service.add_bin(s, ctx, sid, data)
    s.commit()
    return BinCreated.model_validate({"bin": BinOut.model_validate(b), "devices": secrets})


# -- the terminal ---------------------------------------------------------------------------------


def _answer(out: dict[str, Any]) -> Response:
    if out.get("ok"):
        return JSONResponse(out)
    status = int(out.get("status") or 400)
    err = out.get("error") or {}
    body = {
        "type": f"https://linli.dev/problems/{err.get('code', 'bad_request')}",
        "title": err.get("message", ""),
        "status": status,
        "detail": err.get("message", ""),
        "code": err.get("code", "bad_request"),
        "ok": False,
    }
    if err.get("field"):
        body["errors"] = [{"field": err["field"], "message": err.get("message", "")}]
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@router.post("/communities/{cid}/waste/stations/{sid}/terminal")
async def terminal_request(
    sid: int, request: Request, ctx: Ctx = Depends(require(Perm.WASTE_DEPOSIT))
) -> Response:
    """One request of the terminal protocol (``op``: identify, open, deposit, guide, prompt);
    see docs/waste.md. Errors are JSON problems with the same codes as over MQTT."""
    raw = await request.body()
    try:
        req = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "The request body is not valid JSON.", code="malformed_json", status=400
        ) from None
    if isinstance(req, dict) and req.get("lang") not in ("zh", "en"):
        req["lang"] = "zh" if i18n.get_language().startswith("zh") else "en"
    app = request.app

    def run() -> dict[str, Any]:
        with app.state.db.session() as s:
            service.get_station(s, ctx, sid)
        return terminal.handle(app.state.db, app.state.settings, app.state.files, sid, req)

    return _answer(await run_in_threadpool(run))


@router.post("/communities/{cid}/waste/stations/{sid}/camera/frames", response_model=FrameResult)
async def camera_frame(
    sid: int, request: Request, ctx: Ctx = Depends(require(Perm.WASTE_DEPOSIT))
) -> FrameResult:
    """A JPEG/PNG frame of the station camera (raw body): motion outside the delivery hours
    makes a supervision record; garbage piled beside the bins raises an alarm."""
    raw = await request.body()
    if not raw:
        raise ValidationFailed("The frame is empty.", field="frame", code="bad_photo")
    app = request.app

    def run() -> dict[str, Any]:
        with app.state.db.session() as s:
            st = service.get_station(s, ctx, sid)
            return service.camera_frame(s, app.state.files, st, raw)

    return FrameResult.model_validate(await run_in_threadpool(run))


@router.post("/communities/{cid}/waste/stations/{sid}/pile-reference", response_model=StationOut)
async def pile_reference(
    sid: int,
    request: Request,
    zone: str | None = Query(default=None, description="JSON polygon [[x,y],...], 0..1"),
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
) -> StationOut:
    """The reference picture of the empty area beside the bins (raw JPEG/PNG body)."""
    raw = await request.body()
    poly = None
    if zone:
        try:
            poly = json.loads(zone)
        except ValueError:
            raise ValidationFailed("The zone is not valid JSON.", field="zone") from None
        if not isinstance(poly, list) or not all(isinstance(p, list) for p in poly):
            raise ValidationFailed(
                "The zone is a polygon of at least 3 points inside the picture.", field="zone"
            )
    app = request.app

    def run() -> StationOut:
        with app.state.db.session() as s:
            st = service.set_pile_reference(s, ctx, app.state.files, sid, raw, poly)
            return station_out(s, st)

    return await run_in_threadpool(run)


# -- deposits, inspection, points --------------------------------------------------------------


@router.get("/communities/{cid}/waste/deposits", response_model=list[DepositOut])
def list_deposits(
    station_id: int | None = None,
    inspection: Literal["pending", "correct", "contaminated"] | None = None,
    resident_id: int | None = None,
    limit: int = Query(default=200, ge=1, le=1000),
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> list[DepositOut]:
    rows = service.list_deposits(
        s,
        ctx,
        station_id=station_id,
        inspection=inspection,
        resident_id=resident_id,
        limit=limit,
    )
    return [DepositOut.model_validate(d) for d in rows]


@router.get("/communities/{cid}/waste/deposits/{did}/photo")
def deposit_photo(
    did: int,
    request: Request,
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> Response:
    d = service.get_deposit(s, ctx, did)
    if not d.photo_sha256:
        raise NotFound("No photo.", code="no_photo")
    return Response(request.app.state.files.get(d.photo_sha256), media_type="image/jpeg")


@router.post("/communities/{cid}/waste/deposits/{did}/inspection", response_model=DepositOut)
def inspect(
    did: int,
    data: InspectIn,
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> DepositOut:
    d = service.inspect(s, ctx, did, data.result, data.note)
    s.commit()
    return DepositOut.model_validate(d)


@router.get("/communities/{cid}/waste/accuracy")
def accuracy(
    by: Literal["resident", "building"] = "building",
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    """Sorting accuracy (correctly sorted / inspected deposits) per resident or building."""
    return service.accuracy(s, ctx, by)


@router.get("/communities/{cid}/waste/residents/{rid}/points")
def points(
    rid: int, ctx: Ctx = Depends(require(Perm.WASTE_READ)), s: Session = Depends(get_session)
) -> dict[str, Any]:
    from linli.people.models import Resident

    r = s.get(Resident, rid)
    if r is None or r.community_id != ctx.community_id:
        raise NotFound("Resident not found.", code="resident_not_found")
    return {
        "resident_id": rid,
        "balance": service.balance(s, ctx.community_id, rid),
        "household_balance": service.household_balance(s, ctx.community_id, r.household_id)
        if r.household_id
        else None,
        "entries": [
            {
                "points": e.points,
                "reason": e.reason,
                "deposit_id": e.deposit_id,
                "at": e.at.isoformat(),
            }
            for e in service.ledger(s, ctx, rid)
        ],
    }


# -- statistics, supervision, overflow ---------------------------------------------------------


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or utcnow().date()
    start = start or end - timedelta(days=13)
    return start, end


@router.get("/communities/{cid}/waste/stats")
def stats(
    start: date | None = None,
    end: date | None = None,
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> dict[str, Any]:
    a, b = _range(start, end)
    return service.statistics(s, ctx, a, b)


@router.get("/communities/{cid}/waste/stats.csv")
def stats_csv(
    start: date | None = None,
    end: date | None = None,
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> Response:
    a, b = _range(start, end)
    text = service.statistics_csv(service.statistics(s, ctx, a, b))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="waste-{a}-{b}.csv"'},
    )


@router.get("/communities/{cid}/waste/supervision", response_model=list[SupervisionOut])
def supervision(
    ctx: Ctx = Depends(require(Perm.WASTE_READ)), s: Session = Depends(get_session)
) -> list[SupervisionOut]:
    return [SupervisionOut.model_validate(r) for r in service.list_supervision(s, ctx)]


@router.get("/communities/{cid}/waste/supervision/{rid}/snapshot")
def supervision_snapshot(
    rid: int,
    request: Request,
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> Response:
    from linli.waste.models import Supervision

    r = s.get(Supervision, rid)
    if r is None or r.community_id != ctx.community_id or not r.snapshot_sha256:
        raise NotFound("Record not found.", code="supervision_not_found")
    return Response(request.app.state.files.get(r.snapshot_sha256), media_type="image/jpeg")


@router.post("/communities/{cid}/waste/overflow/check")
def overflow_check(
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)), s: Session = Depends(get_session)
) -> list[dict[str, Any]]:
    """Run the overflow forecast now (it also runs every minute in the background)."""
    out = service.check_overflow(s, community_id=ctx.community_id)
    s.commit()
    return out


# -- prompts, guidance, audio -----------------------------------------------------------------


@router.get("/communities/{cid}/waste/prompts")
def prompts(
    station_id: int | None = None,
    ctx: Ctx = Depends(require(Perm.WASTE_READ)),
    s: Session = Depends(get_session),
) -> list[dict[str, Any]]:
    if station_id is not None:
        service.get_station(s, ctx, station_id)
    return service.prompt_table(s, ctx, station_id)


@router.put("/communities/{cid}/waste/prompts")
def edit_prompt(
    data: PromptTextIn,
    request: Request,
    ctx: Ctx = Depends(require(Perm.WASTE_MANAGE)),
    s: Session = Depends(get_session),
) -> dict[str, Any]:
    row = service.save_prompt_text(
        s, ctx, request.app.state.settings, data.key, data.lang, data.text, data.station_id
    )
    s.commit()
    said = service.prompt(
        s,
        request.app.state.settings,
        ctx.community_id,
        data.station_id,
        data.key,
        data.lang,
        **_sample_params(data.key),
    )
    return {
        "key": row.key,
        "lang": row.lang,
        "text": row.text,
        "station_id": row.station_id,
        "sample": said,
    }


def _sample_params(key: str) -> dict[str, Any]:
    from linli.waste import voice

    return {
        "item": {"en": "banana peel", "zh": "香蕉皮"},
        "category": voice.CATEGORY["kitchen"],
        "bin": voice.BIN["kitchen"],
        "next_open": {lg: voice.spoken_time(18, 0, lg) for lg in voice.LANGS},
    }


@public_router.get("/api/v1/waste/guide")
def guide(item: str | None = Query(default=None, max_length=20_000)) -> dict[str, Any]:
    """Sorting guidance: which bin an item goes to (Chinese or English), with confidence."""
    return terminal.guide(item if item is not None else "")


@public_router.get("/waste/audio/{name}", include_in_schema=False)
def audio(name: str, request: Request) -> Response:
    key = name.removesuffix(".wav")
    if not _AUDIO.match(key):
        raise NotFound("Not found.", code="audio_not_found")
    path = service.audio_dir(request.app.state.settings) / f"{key}.wav"
    if not path.is_file():
        raise NotFound("Not found.", code="audio_not_found")
    return FileResponse(
        path, media_type="audio/wav", headers={"Cache-Control": "public, max-age=31536000"}
    )
