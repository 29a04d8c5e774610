"""JSON API of facility monitoring: /api/v1/communities/{cid}/devices, alarms, rules, ingestion…

Gateways that cannot speak MQTT post telemetry over HTTP:

* ``POST /api/v1/ingest/telemetry`` — one message ``{"ts": ..., "values": {...}}`` from one
  device, authenticated with HTTP Basic (user name = device key, password = device secret);
* ``POST /api/v1/communities/{cid}/ingest`` — a batch ``[{"device": key, "ts": ..., "values":
  {...}}, ...]`` with an API token holding ``devices.ingest`` (only that community's devices).

Both go through the same :class:`linli.iot.ingest.Ingestor` as MQTT (one per app, on
``app.state.ingestor``): validation, storage, roll-ups, rules and alarms.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from linli.core import i18n
from linli.core.db import Database, utcnow
from linli.core.errors import Forbidden, TooLarge, Unauthorized, ValidationFailed
from linli.core.roles import Perm
from linli.core.security import token_matches
from linli.core.web import Ctx, api_router, get_session, require
from linli.iot import fiware, service
from linli.iot.ingest import Ingestor, IngestStats, Message
from linli.iot.models import Alarm, DeadLetter, Device, DeviceProfile
from linli.iot.schemas import (
    AlarmOut,
    CommandIn,
    CommandOut,
    DeadLetterOut,
    DeviceCreated,
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    FacilityMap,
    IngestRejection,
    IngestResult,
    LatestValueOut,
    MapBuilding,
    MapDevice,
    ProfileIn,
    ProfileOut,
    RuleIn,
    RuleOut,
    SeriesOut,
)
from linli.people.models import Building

router = api_router(prefix="/api/v1", tags=["iot"])
#: device-authenticated routes (HTTP Basic with the device's key and secret): no session, no CSRF
device_router = APIRouter(prefix="/api/v1", tags=["iot"])

MAX_BATCH = 5000
RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}

#: why the ingestion refused a message (the ``reason`` codes of linli.iot.ingest)
INGEST_REASONS: dict[str, str] = {
    "bad_topic": "Unknown kind of message.",
    "unknown_device": "Unknown device.",
    "device_disabled": "The device is disabled.",
    "too_large": "The message is too large.",
    "malformed": "The message is malformed.",
    "bad_timestamp": "The timestamp cannot be read.",
    "future_timestamp": "The timestamp is in the future.",
    "too_old": "The timestamp is too old.",
    "unknown_metric": "The device profile has no such metric.",
    "wrong_type": "A value has the wrong type.",
    "out_of_range": "A value is outside the valid range of its metric.",
}


# -- the app's ingestor ---------------------------------------------------------------------

_state_lock = threading.Lock()


def get_ingestor(app: FastAPI) -> tuple[Ingestor, threading.Lock]:
    """The app's one Ingestor (its rule state lives in memory) and the lock serialising it."""
    ing = getattr(app.state, "ingestor", None)
    lock = getattr(app.state, "ingest_lock", None)
    if ing is None or lock is None:
        with _state_lock:
            ing = getattr(app.state, "ingestor", None)
            if ing is None:
                db: Database = app.state.db
                settings = getattr(app.state, "settings", None)
                # with MQTT, the client's heartbeat sweep writes deferred device counters
                # every few seconds; without it, HTTP batches write them at once
                mqtt = bool(settings is not None and settings.mqtt_enabled)
                ing = Ingestor(db, cache_seconds=10.0, seen_interval=2.0 if mqtt else 0.0)
                app.state.ingestor = ing
            lock = getattr(app.state, "ingest_lock", None)
            if lock is None:
                lock = threading.Lock()
                app.state.ingest_lock = lock
    return ing, lock


def invalidate_ingestor(app: FastAPI) -> None:
    """Devices, profiles or rules changed: the ingestor reloads them before the next batch."""
    ing = getattr(app.state, "ingestor", None)
    if ing is not None:
        ing.invalidate()


def reason_message(reason: str) -> str:
    text = INGEST_REASONS.get(reason)
    return i18n.gettext(text) if text else reason


def _rejection(
    reason: str, detail: str, index: int | None = None, device: str | None = None
) -> IngestRejection:
    return IngestRejection(
        index=index, device=device, reason=reason, detail=detail, message=reason_message(reason)
    )


def _add(total: IngestStats, part: IngestStats) -> None:
    for k in ("messages", "accepted", "samples", "duplicates", "rejected"):
        setattr(total, k, getattr(total, k) + getattr(part, k))
    total.alarms_raised += part.alarms_raised
    total.alarms_cleared += part.alarms_cleared


def _result(stats: IngestStats, rejections: list[IngestRejection]) -> IngestResult:
    return IngestResult(
        messages=stats.messages,
        accepted=stats.accepted,
        rejected=stats.rejected,
        samples=stats.samples,
        duplicates=stats.duplicates,
        alarms_raised=stats.alarms_raised,
        alarms_cleared=stats.alarms_cleared,
        rejections=sorted(rejections, key=lambda r: (r.index is None, r.index or 0)),
    )


def _process(app: FastAPI, keys: set[str], messages: list[Message]) -> IngestStats:
    ing, lock = get_ingestor(app)
    with lock:
        known = getattr(ing, "_devices", None)
        if isinstance(known, dict) and any(k not in known for k in keys):
            ing.invalidate()  # a device registered since the cache was loaded
        try:
            return ing.process(messages)
        except (DataError, OverflowError) as exc:
            raise _not_storable() from exc


def _not_storable() -> ValidationFailed:
    return ValidationFailed(
        "A value in the request is out of range or not allowed.", code="invalid_value"
    )


def has_nul(value: Any) -> bool:
    """A NUL character anywhere (PostgreSQL cannot store it in text)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def ingest_items(app: FastAPI, community_id: int, items: list[Any]) -> IngestResult:
    """Ingest a batch of ``{"device": key, "ts": ..., "values": {...}}`` for one community.

    Items for devices outside the community are refused as unknown (without looking further).
    The batch is cut into rounds holding at most one message per device, so every rejection
    maps back to its item."""
    db: Database = app.state.db
    now = utcnow()
    total = IngestStats()
    rejections: list[IngestRejection] = []
    queues: dict[str, list[tuple[int, Message]]] = defaultdict(list)
    with db.session() as s:
        keys = set(s.scalars(select(Device.key).where(Device.community_id == community_id)))
        for i, item in enumerate(items):
            key = item.get("device") if isinstance(item, dict) else None
            reason, detail = "", ""
            if not isinstance(item, dict):
                reason, detail = "malformed", "not a JSON object"
            elif not isinstance(key, str) or not key:
                reason, detail = "malformed", "no device key"
            elif has_nul(item):
                reason, detail = "malformed", "NUL character"
            elif key not in keys:
                reason, detail = "unknown_device", key[:64].replace("\x00", "")
            if reason:
                total.messages += 1
                total.rejected += 1
                shown = key.replace("\x00", "") if isinstance(key, str) else None
                rejections.append(_rejection(reason, detail, i, shown))
                s.add(
                    DeadLetter(
                        community_id=community_id,
                        topic="http:ingest",
                        payload=json.dumps(item)[:2000],
                        reason=reason,
                        detail=detail[:500],
                        received_at=now,
                    )
                )
                continue
            assert isinstance(item, dict) and isinstance(key, str)
            payload = json.dumps({k: v for k, v in item.items() if k != "device"}).encode()
            queues[key].append((i, Message(f"linli/devices/{key}/telemetry", payload, now)))
    depth = max((len(q) for q in queues.values()), default=0)
    for r in range(depth):
        batch = [(key, q[r]) for key, q in queues.items() if len(q) > r]
        by_topic = {m.topic: (i, key) for key, (i, m) in batch}
        stats = _process(app, {k for k, _ in batch}, [m for _, (_, m) in batch])
        _add(total, stats)
        for topic, reason, detail in stats.rejections:
            hit = by_topic.get(topic)
            rejections.append(
                _rejection(reason, detail, hit[0] if hit else None, hit[1] if hit else None)
            )
    return _result(total, rejections)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "The request body is not valid JSON.", code="malformed_json", status=400
        ) from None


# -- HTTP ingestion -------------------------------------------------------------------------


def _basic_credentials(request: Request) -> tuple[str, str]:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        raise Unauthorized(
            "Send the device key and secret with HTTP Basic authentication.",
            code="device_auth_required",
        )
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "Invalid device credentials.", code="invalid_device_credentials"
        ) from None
    key, sep, secret = decoded.partition(":")
    if not sep or not key or not secret:
        raise Unauthorized("Invalid device credentials.", code="invalid_device_credentials")
    return key, secret


def _authenticate_device(db: Database, key: str, secret: str) -> tuple[str, int]:
    if "\x00" in key:
        raise Unauthorized("Invalid device credentials.", code="invalid_device_credentials")
    with db.session() as s:
        d = s.scalar(select(Device).where(Device.key == key[:64]))
        if d is None or not token_matches(secret, d.secret_hash):
            raise Unauthorized("Invalid device credentials.", code="invalid_device_credentials")
        if not d.enabled:
            raise Forbidden("The device is disabled.", code="device_disabled")
        return d.key, d.community_id


_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ts": {"description": "ISO 8601 time or Unix seconds/milliseconds; default: now"},
        "values": {"type": "object", "additionalProperties": True, "example": {"fill": 42}},
    },
    "required": ["values"],
}


@device_router.post(
    "/ingest/telemetry",
    response_model=IngestResult,
    responses={401: {"description": "no or wrong device credentials"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _MESSAGE_SCHEMA}},
        },
    },
)
async def ingest_telemetry(request: Request) -> IngestResult:
    """One telemetry message ``{"ts": ..., "values": {...}}`` of the authenticated device.
    A message the ingestion refuses is a 422 problem naming the reason."""
    key, secret = _basic_credentials(request)
    app: FastAPI = request.app
    key, _cid = await run_in_threadpool(_authenticate_device, app.state.db, key, secret)
    ctype = request.headers.get("content-type", "application/json")
    if not ctype.split(";")[0].strip().lower().endswith("json"):
        raise ValidationFailed(
            "Send the message as application/json.", code="unsupported_media_type", status=415
        )
    raw = await request.body()
    doc = _json_body(raw)
    if not isinstance(doc, dict) or has_nul(doc):
        raise ValidationFailed(
            "The message must be a JSON object with ts and values.", code="malformed"
        )
    msg = Message(f"linli/devices/{key}/telemetry", raw, utcnow())
    stats = await run_in_threadpool(_process, app, {key}, [msg])
    if stats.rejections:
        _topic, reason, detail = stats.rejections[0]
        raise ValidationFailed(
            "The message was refused: %(reason)s %(detail)s",
            params={"reason": reason_message(reason), "detail": detail},
            code=reason,
            errors=[{"field": "values", "reason": reason, "message": reason_message(reason)}],
        )
    return _result(stats, [])


@router.post(
    "/communities/{cid}/ingest",
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": {
                            **_MESSAGE_SCHEMA,
                            "properties": {
                                "device": {"type": "string", "description": "device key"},
                                **_MESSAGE_SCHEMA["properties"],
                            },
                            "required": ["device", "values"],
                        },
                    }
                }
            },
        }
    },
)
async def ingest_batch(
    request: Request, ctx: Ctx = Depends(require(Perm.DEVICES_INGEST))
) -> IngestResult:
    """A batch of messages of this community's devices. 200 with the accepted count and
    every refused item (its index, device and reason)."""
    raw = await request.body()
    doc = _json_body(raw)
    if not isinstance(doc, list):
        raise ValidationFailed(
            "The batch must be a JSON array of messages.", code="not_a_batch", field="body"
        )
    if not doc:
        raise ValidationFailed("The batch is empty.", code="empty_batch", field="body")
    if len(doc) > MAX_BATCH:
        raise TooLarge("The batch has more than %(n)s messages.", params={"n": MAX_BATCH})
    return await run_in_threadpool(ingest_items, request.app, ctx.community_id, doc)


# -- profiles ---------------------------------------------------------------------------------


@router.get("/communities/{cid}/device-profiles", response_model=list[ProfileOut])
def list_profiles(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> list[ProfileOut]:
    out = [ProfileOut.model_validate(p) for p in service.profiles(s, ctx)]
    s.commit()  # the built-in profiles, created on first use
    return out


@router.post("/communities/{cid}/device-profiles", response_model=ProfileOut, status_code=201)
def create_profile(
    request: Request,
    data: ProfileIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> ProfileOut:
    p = service.save_profile(
        s,
        ctx,
        key=data.key,
        name=data.name,
        name_zh=data.name_zh or data.name,
        category=data.category,
        metrics=[m.as_dict() for m in data.metrics],
        report_interval_s=data.report_interval_s,
    )
    out = ProfileOut.model_validate(p)
    s.commit()
    invalidate_ingestor(request.app)
    return out


@router.put("/communities/{cid}/device-profiles/{profile_id}", response_model=ProfileOut)
def update_profile(
    request: Request,
    profile_id: int,
    data: ProfileIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> ProfileOut:
    p = service.save_profile(
        s,
        ctx,
        key=data.key,
        name=data.name,
        name_zh=data.name_zh or data.name,
        category=data.category,
        metrics=[m.as_dict() for m in data.metrics],
        report_interval_s=data.report_interval_s,
        profile_id=profile_id,
    )
    out = ProfileOut.model_validate(p)
    s.commit()
    invalidate_ingestor(request.app)
    return out


# -- devices -----------------------------------------------------------------------------------


def device_outs(s: Session, ctx: Ctx, devices: list[Device]) -> list[DeviceOut]:
    keys = dict(s.execute(select(DeviceProfile.id, DeviceProfile.key)).all())
    states = service.device_states(s, ctx, devices)
    out = []
    for d in devices:
        o = DeviceOut.model_validate(d)
        o.profile = keys.get(d.profile_id, "")
        o.status = states.get(d.id, "offline")
        out.append(o)
    return out


def _resolve_profile(s: Session, ctx: Ctx, data: DeviceIn) -> int:
    if data.profile_id is not None:
        return service.get_profile(s, ctx, data.profile_id).id
    assert data.profile is not None
    return service.profile_by_key(s, ctx, data.profile).id


@router.get("/communities/{cid}/devices", response_model=list[DeviceOut])
def list_devices(
    profile: str | None = Query(default=None, max_length=50),
    status: Literal["ok", "alarm", "offline"] | None = None,
    building_id: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> list[DeviceOut]:
    rows = service.list_devices(s, ctx, profile_key=profile)
    if building_id is not None:
        rows = [d for d in rows if d.building_id == building_id]
    out = device_outs(s, ctx, rows)
    return [o for o in out if status is None or o.status == status]


@router.post("/communities/{cid}/devices", response_model=DeviceCreated, status_code=201)
def create_device(
    request: Request,
    data: DeviceIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> DeviceCreated:
    """Register a device. The answer carries its secret once: store it in the device."""
    profile_id = _resolve_profile(s, ctx, data)
    d, secret = service.create_device(
        s,
        ctx,
        name=data.name.strip(),
        profile_id=profile_id,
        key=data.key,
        building_id=data.building_id,
        location=data.location,
        map_x=data.map_x,
        map_y=data.map_y,
        attributes=data.attributes,
        secret=data.secret,
    )
    out = device_outs(s, ctx, [d])[0]
    s.commit()
    invalidate_ingestor(request.app)
    return DeviceCreated(**out.model_dump(), secret=secret)


@router.get("/communities/{cid}/devices/{device_id}", response_model=DeviceOut)
def get_device(
    device_id: int, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> DeviceOut:
    return device_outs(s, ctx, [service.get_device(s, ctx, device_id)])[0]


@router.patch("/communities/{cid}/devices/{device_id}", response_model=DeviceOut)
def update_device(
    request: Request,
    device_id: int,
    data: DeviceUpdate,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> DeviceOut:
    d = service.update_device(s, ctx, device_id, **data.changes())
    out = device_outs(s, ctx, [d])[0]
    s.commit()
    invalidate_ingestor(request.app)
    return out


@router.get("/communities/{cid}/devices/{device_id}/latest", response_model=list[LatestValueOut])
def latest_values(
    device_id: int, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> list[LatestValueOut]:
    d = service.get_device(s, ctx, device_id)
    profile = s.get(DeviceProfile, d.profile_id)
    units = {m["key"]: m.get("unit", "") for m in (profile.metrics if profile else [])}
    values = service.latest(s, ctx, device_id)
    return [
        LatestValueOut(metric=m, ts=ts, value=v, unit=units.get(m, ""))
        for m, (ts, v) in sorted(values.items())
    ]


def _range(
    range_: str | None, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    now = utcnow()
    if start is None and end is None:
        span = RANGES.get(range_ or "24h")
        assert span is not None
        return now - span, now
    end = service.to_utc(end) if end is not None else now
    start = (
        service.to_utc(start)
        if start is not None
        else end - RANGES.get(range_ or "24h", RANGES["24h"])
    )
    return start, end


@router.get("/communities/{cid}/devices/{device_id}/series", response_model=SeriesOut)
def device_series(
    device_id: int,
    metric: str = Query(min_length=1, max_length=40),
    range: Literal["1h", "24h", "7d", "30d"] | None = Query(default=None),
    start: datetime | None = None,
    end: datetime | None = None,
    max_points: int = Query(default=1500, ge=10, le=5000),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> SeriesOut:
    """Chart data: raw samples for short ranges, 1-minute or 1-hour roll-ups for long ones.
    Each point is [time, average, minimum, maximum]."""
    d = service.get_device(s, ctx, device_id)
    profile = s.get(DeviceProfile, d.profile_id)
    spec = next((m for m in (profile.metrics if profile else []) if m["key"] == metric), None)
    if spec is None:
        raise ValidationFailed(
            "The device profile has no metric %(metric)s.",
            params={"metric": metric},
            field="metric",
        )
    t0, t1 = _range(range, start, end)
    data = service.series(s, ctx, device_id, metric, t0, t1, max_points=max_points)
    return SeriesOut(
        metric=metric,
        unit=str(spec.get("unit", "")),
        start=t0,
        end=t1,
        resolution=data["resolution"],
        step=int(data.get("step", 1)),
        points=data["points"],
    )


# -- rules ------------------------------------------------------------------------------------


@router.get("/communities/{cid}/alarm-rules", response_model=list[RuleOut])
def list_rules(
    profile_id: int | None = None,
    device_id: int | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> list[RuleOut]:
    rows = service.list_rules(s, ctx)
    if profile_id is not None:
        rows = [r for r in rows if r.profile_id == profile_id]
    if device_id is not None:
        rows = [r for r in rows if r.device_id == device_id]
    return [RuleOut.model_validate(r) for r in rows]


def _save_rule(
    request: Request, s: Session, ctx: Ctx, data: RuleIn, rule_id: int | None
) -> RuleOut:
    rule = service.save_rule(
        s,
        ctx,
        name=data.name,
        condition=data.condition,
        severity=data.severity,
        profile_id=data.profile_id,
        device_id=data.device_id,
        category=data.category,
        create_work_order=data.create_work_order,
        message=data.message,
        rule_id=rule_id,
    )
    rule.enabled = data.enabled
    s.flush()
    out = RuleOut.model_validate(rule)
    s.commit()
    invalidate_ingestor(request.app)
    return out


@router.post("/communities/{cid}/alarm-rules", response_model=RuleOut, status_code=201)
def create_rule(
    request: Request,
    data: RuleIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> RuleOut:
    """A rule for every device of a profile, or for one device (a device rule overrides the
    profile rule of the same name). See linli/iot/rules.py for the condition kinds."""
    return _save_rule(request, s, ctx, data, None)


@router.put("/communities/{cid}/alarm-rules/{rule_id}", response_model=RuleOut)
def update_rule(
    request: Request,
    rule_id: int,
    data: RuleIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> RuleOut:
    return _save_rule(request, s, ctx, data, rule_id)


# -- alarms -----------------------------------------------------------------------------------


@router.get("/communities/{cid}/alarms", response_model=list[AlarmOut])
def list_alarms(
    status: Literal["active", "acknowledged", "cleared"] | None = None,
    open: bool = False,
    limit: int = Query(default=200, ge=1, le=1000),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> list[AlarmOut]:
    rows = service.list_alarms(s, ctx, status=status, open_only=open, limit=limit)
    return [AlarmOut.model_validate(a) for a in rows]


@router.get("/communities/{cid}/alarms/{alarm_id}", response_model=AlarmOut)
def get_alarm(
    alarm_id: int, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> AlarmOut:
    return AlarmOut.model_validate(service.get_alarm(s, ctx, alarm_id))


@router.post("/communities/{cid}/alarms/{alarm_id}/acknowledge", response_model=AlarmOut)
def acknowledge_alarm(
    alarm_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ALARMS_HANDLE)),
) -> AlarmOut:
    out = AlarmOut.model_validate(service.acknowledge(s, ctx, alarm_id))
    s.commit()
    return out


@router.post("/communities/{cid}/alarms/{alarm_id}/clear", response_model=AlarmOut)
def clear_alarm(
    alarm_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ALARMS_HANDLE)),
) -> AlarmOut:
    out = AlarmOut.model_validate(service.clear(s, ctx, alarm_id))
    s.commit()
    return out


@router.get("/communities/{cid}/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(
    limit: int = Query(default=200, ge=1, le=1000),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> list[DeadLetterOut]:
    return [DeadLetterOut.model_validate(d) for d in service.dead_letters(s, ctx, limit=limit)]


# -- commands ---------------------------------------------------------------------------------


@router.post(
    "/communities/{cid}/devices/{device_id}/commands", response_model=CommandOut, status_code=201
)
def send_command(
    device_id: int,
    data: CommandIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.DEVICES_COMMAND)),
) -> CommandOut:
    """Send a command over MQTT; poll ``GET /commands/{id}`` for pending → sent → acked,
    failed or timeout."""
    cmd = service.send_command(s, ctx, device_id, data.name, data.params, data.timeout_s)
    out = CommandOut.model_validate(cmd)
    s.commit()
    return out


@router.get("/communities/{cid}/devices/{device_id}/commands", response_model=list[CommandOut])
def list_commands(
    device_id: int, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> list[CommandOut]:
    return [CommandOut.model_validate(c) for c in service.list_commands(s, ctx, device_id)]


@router.get("/communities/{cid}/commands/{command_id}", response_model=CommandOut)
def get_command(
    command_id: int, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> CommandOut:
    return CommandOut.model_validate(service.get_command(s, ctx, command_id))


# -- facility map ------------------------------------------------------------------------------


def facility_map(s: Session, ctx: Ctx) -> FacilityMap:
    buildings = list(
        s.scalars(
            select(Building)
            .where(Building.community_id == ctx.community_id)
            .order_by(Building.name)
        )
    )
    devices = service.list_devices(s, ctx)
    states = service.device_states(s, ctx, devices)
    keys = dict(s.execute(select(DeviceProfile.id, DeviceProfile.key)).all())
    open_counts = dict(
        s.execute(
            select(Alarm.device_id, func.count())
            .where(
                Alarm.community_id == ctx.community_id,
                Alarm.status.in_(("active", "acknowledged")),
                Alarm.device_id.is_not(None),
            )
            .group_by(Alarm.device_id)
        ).all()
    )
    counts = {k: 0 for k in service.DEVICE_STATES}
    for st in states.values():
        counts[st] = counts.get(st, 0) + 1
    return FacilityMap(
        buildings=[
            MapBuilding(id=b.id, name=b.name, map_x=b.map_x, map_y=b.map_y) for b in buildings
        ],
        devices=[
            MapDevice(
                id=d.id,
                key=d.key,
                name=d.name,
                profile=keys.get(d.profile_id, ""),
                building_id=d.building_id,
                map_x=d.map_x,
                map_y=d.map_y,
                status=states.get(d.id, "offline"),
                alarms=int(open_counts.get(d.id, 0)),
            )
            for d in devices
        ],
        counts=counts,
    )


@router.get("/communities/{cid}/facility-map", response_model=FacilityMap)
def get_facility_map(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.IOT_READ))
) -> FacilityMap:
    """Buildings and devices with their positions on the site plan (0..1) and device states."""
    return facility_map(s, ctx)


# -- FIWARE Smart Data Models ------------------------------------------------------------------


@router.get("/communities/{cid}/fiware/entities")
def export_fiware(
    type: Literal["WasteContainer", "Device"] = Query(default="WasteContainer"),
    format: Literal["keyvalues", "normalized", "ngsiv2"] = Query(default="keyvalues"),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.IOT_READ)),
) -> JSONResponse:
    """This community's devices as Smart Data Models entities: ``keyvalues``, NGSI-LD
    ``normalized`` (with ``@context``) or NGSI v2 normalized (``ngsiv2``)."""
    entities = fiware.export_entities(s, ctx, type, format)
    media = "application/ld+json" if format == "normalized" else "application/json"
    return JSONResponse(entities, media_type=media)


@router.post(
    "/communities/{cid}/fiware/entities",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object", "description": "one entity"},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    }
                },
                "application/ld+json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def import_fiware(
    request: Request,
    profile: str | None = Query(default=None, max_length=50),
    ctx: Ctx = Depends(require(Perm.IOT_MANAGE)),
) -> JSONResponse:
    """Import WasteContainer or Device entities (one, or a list), in key-value, NGSI-LD or
    NGSI v2 normalized form. New devices are registered (their secrets are in the answer,
    once), known ones (same entity id) updated; readings such as ``fillingLevel`` are
    ingested. Any malformed entity refuses the whole import with every problem listed."""
    raw = await request.body()
    doc = _json_body(raw)
    result = await run_in_threadpool(_import_fiware, request.app, ctx, doc, profile)
    return JSONResponse(result)


def _import_fiware(app: FastAPI, ctx: Ctx, doc: Any, profile: str | None) -> dict[str, Any]:
    db: Database = app.state.db
    try:
        with db.session() as s:
            plan = fiware.import_entities(s, ctx, doc, profile=profile)
            report = plan.report()
    except (DataError, OverflowError) as exc:
        raise _not_storable() from exc
    invalidate_ingestor(app)
    if plan.readings:
        result = ingest_items(app, ctx.community_id, plan.readings)
        report["readings"] = result.model_dump(mode="json")
    return report
