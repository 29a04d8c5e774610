"""Living environment logic: stations and bins with their devices, the terminal flow
(identify → pick a category → lid opens by device command → weight and photo → deposit),
points, inspection, delivery hours and supervision, voice prompts, overflow early warning,
statistics. No HTTP here: api.py, pages.py and mqtt.py call these functions."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.config import Settings
from linli.core.db import Database, utcnow
from linli.core.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.files import FileStore
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import Ctx, system_ctx
from linli.iot import service as iot
from linli.iot.models import Command, Device, DeviceProfile
from linli.people.models import Building, Household, Resident, Unit
from linli.waste import voice
from linli.waste.models import (
    BIN_CATEGORIES,
    Bin,
    Deposit,
    PointEntry,
    PromptText,
    Station,
    Supervision,
    TerminalSession,
)
from linli.waste.schemas import BinIn, StationIn, Window

log = logging.getLogger(__name__)

# -- constants ---------------------------------------------------------------------------------

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "recyclable": {"en": "Recyclable", "zh": "可回收物", "colour": "#1f5fbf"},
    "hazardous": {"en": "Hazardous", "zh": "有害垃圾", "colour": "#c62828"},
    "kitchen": {"en": "Kitchen (wet)", "zh": "湿垃圾（厨余）", "colour": "#6d4c41"},
    "residual": {"en": "Residual (dry)", "zh": "干垃圾（其他）", "colour": "#333333"},
    "bulky": {"en": "Bulky", "zh": "大件垃圾", "colour": "#7b1fa2"},
    "renovation": {"en": "Renovation", "zh": "装修垃圾", "colour": "#ef6c00"},
}
#: the heaviest plausible single delivery per category (kg); above: the scale is wrong
MAX_WEIGHT_KG: dict[str, float] = {
    "recyclable": 30.0,
    "hazardous": 10.0,
    "kitchen": 20.0,
    "residual": 30.0,
    "bulky": 300.0,
    "renovation": 500.0,
}
MIN_WEIGHT_KG = 0.005
MAX_PHOTO_BYTES = 5 * 1024 * 1024
SESSION_MINUTES = 5
LID_TIMEOUT_S = 10
#: bins without a lid (bulky and renovation areas are open enclosures)
LIDLESS = ("bulky", "renovation")
POINTS = {"deposit": 1, "correct": 2, "contaminated": -1}
#: fill level (%) at which a bin counts as full, and the drop that means it was emptied
FULL_AT = 95.0
EMPTIED_DROP = 25.0
FIT_WINDOW = timedelta(hours=6)
MIN_FIT_POINTS = 3
MIN_FIT_SPAN = timedelta(minutes=10)
#: motion (fraction of the camera frame) that counts as someone at the station
MOTION_FRACTION = 0.01
SUPERVISION_MERGE = timedelta(minutes=3)
PILE_FRACTION = 0.12
PILE_PERSIST = timedelta(minutes=5)

WASTE_PROFILES: dict[str, tuple[str, str, list[dict[str, Any]], int]] = {
    "waste_lid": (
        "Bin lid actuator",
        "垃圾桶投放口",
        [{"key": "open", "unit": "", "kind": "bool"}],
        300,
    ),
    "waste_scale": (
        "Bin scale",
        "垃圾称重秤",
        [{"key": "weight", "unit": "kg", "min": -5, "max": 1000, "kind": "number"}],
        300,
    ),
    "waste_terminal": ("Sorting terminal", "分类投放终端", [], 300),
    "waste_camera": ("Station camera", "投放点摄像头", [], 300),
    "waste_speaker": (
        "Station speaker",
        "投放点音箱",
        [{"key": "volume", "unit": "%", "min": 0, "max": 100, "kind": "number"}],
        300,
    ),
}

REASONS: dict[str, str] = {
    "unknown_credential": N_("Unknown card or QR code."),
    "unknown_person": N_("The face was not recognised. Please use your card or QR code."),
    "not_a_resident": N_("Only registered residents can deliver waste here."),
    "no_face": N_("No face found in the photo."),
    "bad_photo": N_("The photo cannot be read as an image."),
    "photo_too_large": N_("The photo is too large."),
    "negative_weight": N_("The scale reported a negative weight."),
    "absurd_weight": N_("The scale reported an impossible weight for this bin."),
    "empty_deposit": N_("The scale reported no weight: nothing was deposited."),
    "lid_pending": N_("The lid has not confirmed opening yet. Please wait."),
    "lid_not_confirmed": N_(
        "The lid did not confirm opening; the delivery was not recorded as valid."
    ),
    "no_bin": N_("This station has no bin for this category."),
    "lid_unavailable": N_("The lid of this bin is out of service. Please ask the staff."),
    "session_expired": N_("The session has expired. Please identify again."),
    "session_not_open": N_("No lid is open in this session."),
    "session_done": N_("This session is already finished."),
}


def _t_error(code: str, cls: type[AppError] = ValidationFailed, **kw: Any) -> AppError:
    return cls(REASONS[code], code=code, **kw)


# -- delivery hours ----------------------------------------------------------------------------


def _hm(text: str) -> tuple[int, int]:
    h, m = text.split(":")
    return int(h), int(m)


def local_time(tz: str, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(tz))


def in_hours(hours: Sequence[dict[str, Any]], local: datetime) -> bool:
    """Inside one of the delivery windows (no windows = open all day)."""
    if not hours:
        return True
    minute = local.hour * 60 + local.minute
    for w in hours:
        (sh, sm), (eh, em) = _hm(w["start"]), _hm(w["end"])
        if sh * 60 + sm <= minute < eh * 60 + em:
            return True
    return False


def next_window(hours: Sequence[dict[str, Any]], local: datetime) -> datetime | None:
    """The start of the next delivery window after ``local`` (None: always open)."""
    if not hours:
        return None
    starts = sorted(_hm(w["start"]) for w in hours)
    for day in range(0, 2):
        d = (local + timedelta(days=day)).date()
        for h, m in starts:
            cand = datetime(d.year, d.month, d.day, h, m, tzinfo=local.tzinfo)
            if cand > local:
                return cand
    return None


def hours_text(hours: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{w['start']}–{w['end']}" for w in hours) if hours else "00:00–24:00"


# -- stations, bins and their devices -----------------------------------------------------------


def _device_ctx(ctx: Ctx) -> Ctx:
    """Registering a station's or bin's devices is part of managing waste (``waste.manage``),
    whether or not the caller may manage IoT devices in general."""
    return system_ctx(ctx.community_id, ctx.actor.name, ctx.timezone)


def _ensure_profiles(s: Session, ctx: Ctx) -> dict[str, DeviceProfile]:
    ctx = _device_ctx(ctx)
    iot.ensure_builtin_profiles(s)
    have = {
        p.key: p
        for p in s.scalars(
            select(DeviceProfile).where(
                DeviceProfile.community_id == ctx.community_id,
                DeviceProfile.key.in_(list(WASTE_PROFILES)),
            )
        )
    }
    for key, (name, name_zh, metrics, interval) in WASTE_PROFILES.items():
        if key not in have:
            have[key] = iot.save_profile(
                s,
                ctx,
                key=key,
                name=name,
                name_zh=name_zh,
                category="sanitation",
                metrics=metrics,
                report_interval_s=interval,
            )
    builtin = s.scalar(
        select(DeviceProfile).where(
            DeviceProfile.community_id.is_(None), DeviceProfile.key == "bin_level"
        )
    )
    assert builtin is not None
    have["bin_level"] = builtin
    return have


def _new_device(
    s: Session,
    ctx: Ctx,
    profiles: dict[str, DeviceProfile],
    profile: str,
    name: str,
    role: str,
    station: Station,
    out: list[dict[str, Any]],
    attributes: dict[str, Any] | None = None,
) -> Device:
    d, secret = iot.create_device(
        s,
        _device_ctx(ctx),
        name=name[:100],
        profile_id=profiles[profile].id,
        building_id=station.building_id,
        location=station.location or station.name,
        attributes={"waste_station": station.id, "role": role, **(attributes or {})},
    )
    out.append({"role": role, "device_id": d.id, "key": d.key, "secret": secret})
    return d


def list_stations(s: Session, ctx: Ctx) -> list[Station]:
    ctx.require(Perm.WASTE_READ)
    q = select(Station).where(Station.community_id == ctx.community_id).order_by(Station.name)
    return list(s.scalars(q))


def get_station(s: Session, ctx: Ctx, station_id: int) -> Station:
    st = s.get(Station, station_id)
    if st is None or st.community_id != ctx.community_id:
        raise NotFound("Station not found.", code="station_not_found")
    return st


def bins_of(s: Session, station_id: int) -> list[Bin]:
    order = {c: i for i, c in enumerate(BIN_CATEGORIES)}
    rows = list(s.scalars(select(Bin).where(Bin.station_id == station_id)))
    rows.sort(key=lambda b: (order.get(b.category, 9), b.id))
    return rows


def get_bin(s: Session, ctx: Ctx, bin_id: int) -> Bin:
    b = s.get(Bin, bin_id)
    if b is None or b.community_id != ctx.community_id:
        raise NotFound("Bin not found.", code="bin_not_found")
    return b


def create_station(s: Session, ctx: Ctx, data: StationIn) -> tuple[Station, list[dict[str, Any]]]:
    """A station; with ``with_devices`` its terminal, camera and speaker are registered as IoT
    devices (their MQTT secrets are returned once)."""
    ctx.require(Perm.WASTE_MANAGE)
    if data.building_id is not None:
        b = s.get(Building, data.building_id)
        if b is None or b.community_id != ctx.community_id:
            raise NotFound("Building not found.", field="building_id", code="building_not_found")
    dup = select(Station.id).where(
        Station.community_id == ctx.community_id, Station.name == data.name
    )
    if s.scalar(dup) is not None:
        raise Conflict("A station with this name already exists.", field="name")
    st = Station(
        community_id=ctx.community_id,
        name=data.name,
        location=data.location,
        building_id=data.building_id,
        hours=[w.model_dump() for w in data.hours],
        overflow_lead_min=data.overflow_lead_min,
    )
    s.add(st)
    s.flush()
    secrets: list[dict[str, Any]] = []
    if data.with_devices:
        profiles = _ensure_profiles(s, ctx)
        st.terminal_device_id = _new_device(
            s, ctx, profiles, "waste_terminal", f"{st.name} terminal", "terminal", st, secrets
        ).id
        st.camera_device_id = _new_device(
            s, ctx, profiles, "waste_camera", f"{st.name} camera", "camera", st, secrets
        ).id
        st.speaker_device_id = _new_device(
            s, ctx, profiles, "waste_speaker", f"{st.name} speaker", "speaker", st, secrets
        ).id
    audit.record(
        s, ctx.actor, "waste.station.created", "waste_station", st.id, community_id=ctx.community_id
    )
    events.emit(s, "waste.station.created", {"id": st.id}, community_id=ctx.community_id)
    return st, secrets


def update_station(s: Session, ctx: Ctx, station_id: int, data: StationIn) -> Station:
    ctx.require(Perm.WASTE_MANAGE)
    st = get_station(s, ctx, station_id)
    dup = select(Station.id).where(
        Station.community_id == ctx.community_id, Station.name == data.name, Station.id != st.id
    )
    if s.scalar(dup) is not None:
        raise Conflict("A station with this name already exists.", field="name")
    if data.building_id is not None:
        b = s.get(Building, data.building_id)
        if b is None or b.community_id != ctx.community_id:
            raise NotFound("Building not found.", field="building_id", code="building_not_found")
    st.name, st.location, st.building_id = data.name, data.location, data.building_id
    st.hours = [w.model_dump() for w in data.hours]
    st.overflow_lead_min = data.overflow_lead_min
    audit.record(
        s, ctx.actor, "waste.station.updated", "waste_station", st.id, community_id=ctx.community_id
    )
    return st


def set_hours(s: Session, ctx: Ctx, station_id: int, hours: list[Window]) -> Station:
    ctx.require(Perm.WASTE_MANAGE)
    st = get_station(s, ctx, station_id)
    st.hours = [w.model_dump() for w in hours]
    audit.record(
        s,
        ctx.actor,
        "waste.station.hours",
        "waste_station",
        st.id,
        community_id=ctx.community_id,
        details={"hours": st.hours},
    )
    return st


def add_bin(s: Session, ctx: Ctx, station_id: int, data: BinIn) -> tuple[Bin, list[dict[str, Any]]]:
    """A bin of one category; with ``with_devices`` its fill-level sensor (the built-in
    ``bin_level`` profile, exported as a FIWARE WasteContainer), lid and scale are registered."""
    ctx.require(Perm.WASTE_MANAGE)
    st = get_station(s, ctx, station_id)
    b = Bin(
        community_id=ctx.community_id,
        station_id=st.id,
        category=data.category,
        label=data.label,
        capacity_l=data.capacity_l,
    )
    s.add(b)
    s.flush()
    secrets: list[dict[str, Any]] = []
    profiles = _ensure_profiles(s, ctx) if data.with_devices or data.fill_device_id else {}
    label = f"{st.name} {CATEGORY_LABELS[data.category]['en'].lower()} bin #{b.id}"
    fiware_attrs = {
        "storedWasteKind": _FIWARE_KIND.get(data.category, ["inorganic"]),
        "refWasteContainerIsle": f"urn:ngsi-ld:WasteContainerIsle:linli-{st.id}",
    }
    if data.fill_device_id is not None:
        d = s.get(Device, data.fill_device_id)
        if d is None or d.community_id != ctx.community_id:
            raise NotFound("Device not found.", field="fill_device_id", code="device_not_found")
        if d.profile_id != profiles["bin_level"].id:
            raise ValidationFailed(
                "The fill-level device must be a bin fill-level sensor.", field="fill_device_id"
            )
        b.fill_device_id = d.id
        attrs = dict(d.attributes or {})
        meta = attrs.get("fiware") if isinstance(attrs.get("fiware"), dict) else None
        b.fiware_id = (meta or {}).get("id") or f"urn:ngsi-ld:WasteContainer:{d.key}"
        attrs.update(
            {"waste_bin": b.id, **{k: v for k, v in fiware_attrs.items() if k not in attrs}}
        )
        d.attributes = attrs
    elif data.with_devices:
        fill = _new_device(
            s,
            ctx,
            profiles,
            "bin_level",
            f"{label} fill",
            "fill",
            st,
            secrets,
            {"waste_bin": b.id, **fiware_attrs},
        )
        b.fill_device_id = fill.id
        b.fiware_id = f"urn:ngsi-ld:WasteContainer:{fill.key}"
    if data.with_devices:
        if data.category not in LIDLESS:
            b.lid_device_id = _new_device(
                s,
                ctx,
                profiles,
                "waste_lid",
                f"{label} lid",
                "lid",
                st,
                secrets,
                {"waste_bin": b.id},
            ).id
        b.scale_device_id = _new_device(
            s,
            ctx,
            profiles,
            "waste_scale",
            f"{label} scale",
            "scale",
            st,
            secrets,
            {"waste_bin": b.id},
        ).id
    audit.record(
        s,
        ctx.actor,
        "waste.bin.created",
        "waste_bin",
        b.id,
        community_id=ctx.community_id,
        details={"station": st.id, "category": data.category},
    )
    return b, secrets


_FIWARE_KIND: dict[str, list[str]] = {
    "recyclable": ["paper", "plastic", "glass", "metal"],
    "hazardous": ["hazardous"],
    "kitchen": ["organic"],
    "residual": ["inorganic"],
    "bulky": ["inorganic"],
    "renovation": ["inorganic"],
}


def station_for_terminal(s: Session, device_key: str) -> Station:
    d = s.scalar(select(Device).where(Device.key == device_key))
    st = (
        s.scalar(select(Station).where(Station.terminal_device_id == d.id))
        if d is not None
        else None
    )
    if st is None:
        raise NotFound("No station has this terminal.", code="station_not_found")
    return st


# -- voice prompts -----------------------------------------------------------------------------

#: prompts staff may edit (the voice module's templates)
EDITABLE_PROMPTS = tuple(voice.PROMPTS)


def prompt_template(
    s: Session, community_id: int, station_id: int | None, key: str, lang: str
) -> str:
    """The text of a prompt: the station's own, else the community's, else the default."""
    if key not in voice.PROMPTS:
        raise ValidationFailed("Unknown prompt.", code="unknown_prompt", field="key")
    rows = list(
        s.scalars(
            select(PromptText).where(
                PromptText.community_id == community_id,
                PromptText.key == key,
                PromptText.lang == lang,
            )
        )
    )
    for r in rows:
        if station_id is not None and r.station_id == station_id:
            return r.text
    for r in rows:
        if r.station_id is None:
            return r.text
    return voice.PROMPTS[key][lang]


def _fields(template: str) -> set[str]:
    import string

    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as exc:
        raise ValidationFailed(
            "The text has an unbalanced { or }.", code="bad_template", field="text"
        ) from exc


def audio_dir(settings: Settings) -> Path:
    return settings.data_dir / "waste-audio"


def audio_url(key: str) -> str:
    return f"/waste/audio/{key}.wav"


def speak(settings: Settings, text: str, lang: str) -> str:
    """Synthesise (or find in the cache) and return the cache key of the WAV file."""
    voice.synthesize(text, lang, cache_dir=audio_dir(settings))
    return voice.cache_key(text, lang)


def prompt(
    s: Session,
    settings: Settings,
    community_id: int,
    station_id: int | None,
    key: str,
    lang: str,
    **params: Any,
) -> dict[str, str]:
    template = prompt_template(s, community_id, station_id, key, lang)
    values = {k: (v[lang] if isinstance(v, dict) else v) for k, v in params.items()}
    try:
        text = template.format(**values)
    except (KeyError, IndexError, ValueError):
        text = voice.PROMPTS[key][lang].format(**values)
    ck = speak(settings, text, lang)
    return {"key": key, "lang": lang, "text": text, "url": audio_url(ck)}


def prompts_both(
    s: Session,
    settings: Settings,
    community_id: int,
    station_id: int | None,
    key: str,
    **params: Any,
) -> list[dict[str, str]]:
    return [
        prompt(s, settings, community_id, station_id, key, lang, **params) for lang in voice.LANGS
    ]


def save_prompt_text(
    s: Session,
    ctx: Ctx,
    settings: Settings,
    key: str,
    lang: str,
    text: str,
    station_id: int | None = None,
) -> PromptText:
    """Staff edit a prompt for the community or one station. The placeholders must stay the
    same; the audio of the old text is removed from the cache (the new text is spoken anew —
    audio is named by a hash of its text, so a stale file can never be served for it)."""
    ctx.require(Perm.WASTE_MANAGE)
    if key not in voice.PROMPTS:
        raise ValidationFailed("Unknown prompt.", code="unknown_prompt", field="key")
    if lang not in voice.LANGS:
        raise ValidationFailed("Unsupported language.", code="unsupported_lang", field="lang")
    text = " ".join(text.split())
    if not text:
        raise ValidationFailed("This field is required.", field="text")
    if len(text) > voice.MAX_TEXT_CHARS:
        raise ValidationFailed(
            "Must have at most %(max_length)s characters.",
            params={"max_length": voice.MAX_TEXT_CHARS},
            field="text",
        )
    want = _fields(voice.PROMPTS[key][lang])
    got = _fields(text)
    if got != want:
        raise ValidationFailed(
            "The text must keep the placeholders %(names)s.",
            params={"names": ", ".join("{" + n + "}" for n in sorted(want)) or "-"},
            code="bad_template",
            field="text",
        )
    if station_id is not None:
        get_station(s, ctx, station_id)
    old_text = prompt_template(s, ctx.community_id, station_id, key, lang)
    row = next(
        (
            r
            for r in s.scalars(
                select(PromptText).where(
                    PromptText.community_id == ctx.community_id,
                    PromptText.key == key,
                    PromptText.lang == lang,
                )
            )
            if r.station_id == station_id
        ),
        None,
    )
    if row is None:
        row = PromptText(community_id=ctx.community_id, station_id=station_id, key=key, lang=lang)
        s.add(row)
    row.text, row.updated_by, row.updated_at = text, ctx.actor.name, utcnow()
    s.flush()
    if not want:  # the old audio of a text without placeholders: drop it
        try:
            old = audio_dir(settings) / f"{voice.cache_key(old_text, lang)}.wav"
            old.unlink(missing_ok=True)
        except voice.VoiceError:
            pass
    voice.clear_memory_cache()
    audit.record(
        s,
        ctx.actor,
        "waste.prompt.edited",
        "waste_prompt",
        row.id,
        community_id=ctx.community_id,
        details={"key": key, "lang": lang, "station": station_id},
    )
    return row


def reset_prompt_text(
    s: Session, ctx: Ctx, key: str, lang: str, station_id: int | None = None
) -> bool:
    ctx.require(Perm.WASTE_MANAGE)
    for r in s.scalars(
        select(PromptText).where(
            PromptText.community_id == ctx.community_id,
            PromptText.key == key,
            PromptText.lang == lang,
        )
    ):
        if r.station_id == station_id:
            s.delete(r)
            voice.clear_memory_cache()
            return True
    return False


def prompt_table(s: Session, ctx: Ctx, station_id: int | None = None) -> list[dict[str, Any]]:
    """Every prompt with its current text per language and whether staff changed it."""
    out = []
    for key, texts in voice.PROMPTS.items():
        row: dict[str, Any] = {"key": key}
        for lang in voice.LANGS:
            cur = prompt_template(s, ctx.community_id, station_id, key, lang)
            row[lang] = cur
            row[f"{lang}_edited"] = cur != texts[lang]
            row[f"{lang}_fields"] = sorted(_fields(texts[lang]))
        out.append(row)
    return out


# -- identification at the terminal -------------------------------------------------------------


@dataclass
class Identified:
    resident: Resident
    method: str


def identify(
    s: Session,
    settings: Settings,
    station: Station,
    method: str,
    value: str | None = None,
    image: bytes | None = None,
    now: datetime | None = None,
) -> TerminalSession:
    """Who is at the terminal (card, QR pass or face, through the access pipeline)."""
    from linli.access import service as access

    now = now or utcnow()
    cid = station.community_id
    identity = None
    if method == "card":
        identity = access.identity_by_credential(
            s, cid, "card", (value or "").strip().upper().replace(" ", "")
        )
        if identity is None:
            raise _t_error("unknown_credential", NotFound)
    elif method == "qr":
        from linli.access.models import Identity

        token = (value or "").strip()
        iid = resident_qr_identity(settings, cid, token)
        if iid is not None:  # the resident's own sorting QR code
            identity = s.get(Identity, iid)
        else:  # an access QR pass (its holder must still be a resident)
            vp, reason = access.check_qr(s, settings, cid, token, now)
            if vp is None or reason is not None:
                raise _t_error("unknown_credential", NotFound)
            identity = s.get(Identity, vp.identity_id)
    elif method == "face":
        identity = _face(s, settings, cid, image or b"")
    else:
        raise ValidationFailed("Unknown identification method.", field="method")
    if identity is None or not identity.active:
        raise _t_error("unknown_credential", NotFound)
    resident = s.get(Resident, identity.resident_id) if identity.resident_id else None
    if resident is None or resident.community_id != cid:
        raise _t_error("not_a_resident", Forbidden)
    ts = TerminalSession(
        community_id=cid,
        station_id=station.id,
        resident_id=resident.id,
        method=method,
        status="identified",
        created_at=now,
        expires_at=now + timedelta(minutes=SESSION_MINUTES),
    )
    s.add(ts)
    s.flush()
    return ts


def _qr_serializer(settings: Settings) -> Any:
    from itsdangerous import URLSafeSerializer

    assert settings.secret_key
    return URLSafeSerializer(settings.secret_key, salt="linli.waste.resident-qr")


def resident_qr_token(s: Session, ctx: Ctx, settings: Settings, resident_id: int) -> str:
    """The text of a resident's sorting QR code (signed; names their access identity, so it
    stops working when the identity is deactivated)."""
    from linli.access import service as access

    ident = access.identity_for_resident(s, ctx, resident_id)
    return str(_qr_serializer(settings).dumps({"c": ctx.community_id, "w": ident.id}))


def resident_qr_identity(settings: Settings, community_id: int, token: str) -> int | None:
    from itsdangerous import BadSignature

    if not token or len(token) > 512:
        return None
    try:
        data = _qr_serializer(settings).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("c") != community_id:
        return None
    iid = data.get("w")
    return iid if isinstance(iid, int) and not isinstance(iid, bool) else None


def _face(s: Session, settings: Settings, community_id: int, image: bytes) -> Any:
    from linli.access import service as access
    from linli.access.models import Identity
    from linli.vision import faces
    from linli.vision.images import ImageError

    if len(image) > MAX_PHOTO_BYTES:
        raise _t_error("photo_too_large", ValidationFailed, status=413)
    try:
        found = faces.analyze_frame(image)
    except ImageError:
        raise _t_error("bad_photo") from None
    except Exception:  # any decoder failure on hostile input
        raise _t_error("bad_photo") from None
    if not found:
        raise _t_error("no_face")
    gallery = access.gallery_for(s, settings, community_id)
    ident = gallery.identify(found[0].embedding)
    if not ident.matched:
        raise _t_error("unknown_person", NotFound)
    return s.get(Identity, int(ident.person_id))


def get_session(s: Session, station: Station, session_id: int, now: datetime) -> TerminalSession:
    ts = s.get(TerminalSession, session_id)
    if ts is None or ts.station_id != station.id:
        raise NotFound("Session not found.", code="session_not_found")
    if ts.status in ("done", "failed"):
        raise _t_error("session_done", Conflict)
    if now > ts.expires_at:
        raise _t_error("session_expired", Conflict)
    return ts


def resident_name(s: Session, resident_id: int | None) -> str:
    r = s.get(Resident, resident_id) if resident_id else None
    return r.name if r else "-"


# -- lid, weight, photo: the deposit -----------------------------------------------------------


def open_lid(
    s: Session,
    settings: Settings,
    station: Station,
    ts: TerminalSession,
    category: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The resident picked ``category``: open that bin's lid by a device command. Returns the
    command and the spoken prompts (which bin; break the bag for kitchen waste; outside the
    delivery hours the next window)."""
    now = now or utcnow()
    if ts.status not in ("identified", "opening"):
        raise _t_error("session_done", Conflict)
    bins = [b for b in bins_of(s, station.id) if b.category == category and b.enabled]
    if not bins:
        raise _t_error("no_bin", NotFound, field="category")
    # the emptiest bin of the category
    b = min(bins, key=lambda x: x.fill_level if x.fill_level is not None else 0.0)
    ts.bin_id = b.id
    ts.status = "opening"
    ts.expires_at = now + timedelta(minutes=SESSION_MINUTES)
    cmd: Command | None = None
    if b.lid_device_id is not None:
        lid = s.get(Device, b.lid_device_id)
        if lid is None or not lid.enabled:
            raise _t_error("lid_unavailable", Conflict, field="category")
        cmd = iot.issue_command(
            s,
            lid,
            "open_lid",
            {"bin": b.id, "session": ts.id},
            audit.Actor.system("waste-terminal"),
            timeout_s=LID_TIMEOUT_S,
        )
        cmd.created_at = now
        if cmd.sent_at is not None:
            cmd.sent_at = now
        ts.command_id = cmd.id
    local = local_time(_tz(s, station), now)
    outside = not in_hours(station.hours, local)
    said: list[dict[str, str]] = []
    cid = station.community_id
    if outside:
        nxt = next_window(station.hours, local)
        if nxt is not None:
            said += prompts_both(
                s,
                settings,
                cid,
                station.id,
                "outside_hours",
                next_open={lg: voice.spoken_time(nxt.hour, nxt.minute, lg) for lg in voice.LANGS},
            )
    said += (
        prompts_both(s, settings, cid, station.id, f"bin.{category}")
        if (f"bin.{category}" in voice.PROMPTS)
        else []
    )
    if category == "kitchen":
        said += prompts_both(s, settings, cid, station.id, "break_bag")
    if b.fill_level is not None and b.fill_level >= FULL_AT:
        said += prompts_both(s, settings, cid, station.id, "bin_full")
    s.flush()
    return {
        "bin": b,
        "command": cmd,
        "outside_hours": outside,
        "next_open": next_window(station.hours, local) if outside else None,
        "prompts": said,
    }


def lid_state(s: Session, ts: TerminalSession, now: datetime | None = None) -> str:
    """``open`` (acknowledged by the lid, or no lid), ``pending``, ``failed`` or ``timeout``."""
    now = now or utcnow()
    if ts.command_id is None:
        return "open" if ts.status in ("opening", "done") else "none"
    cmd = s.get(Command, ts.command_id)
    if cmd is None:
        return "failed"
    if cmd.status == "acked":
        return "open"
    if cmd.status == "failed":
        return "failed"
    if cmd.status == "timeout":
        return "timeout"
    started = cmd.sent_at or cmd.created_at
    if (now - started).total_seconds() > cmd.timeout_s:
        return "timeout"
    return "pending"


def wait_for_lid(db: Database, session_id: int, seconds: float) -> str:
    """Poll (fresh sessions: the acknowledgement is committed by the ingester) until the lid
    confirms, fails or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        with db.session() as s:
            ts = s.get(TerminalSession, session_id)
            state = lid_state(s, ts) if ts is not None else "failed"
        if state != "pending" or time.monotonic() >= deadline:
            return state
        time.sleep(0.05)


def check_weight(category: str, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ValidationFailed("Must be a number.", field="weight_kg", code="bad_weight")
    w = float(weight)
    if not math.isfinite(w):
        raise _t_error("absurd_weight", field="weight_kg")
    if w < 0:
        raise _t_error("negative_weight", field="weight_kg")
    if w < MIN_WEIGHT_KG:
        raise _t_error("empty_deposit", field="weight_kg")
    if w > MAX_WEIGHT_KG.get(category, 30.0):
        raise _t_error("absurd_weight", field="weight_kg")
    return round(w, 3)


def check_photo(data: bytes) -> bytes:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise _t_error("bad_photo", field="photo")
    if len(data) > MAX_PHOTO_BYTES:
        raise _t_error("photo_too_large", ValidationFailed, status=413, field="photo")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("JPEG", "PNG", "WEBP"):
                raise _t_error("bad_photo", field="photo")
            w, h = im.size
            if w < 16 or h < 16 or w * h > 40_000_000:
                raise _t_error("bad_photo", field="photo")
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise _t_error("bad_photo", field="photo") from None
    return data


def decode_b64(text: str, field_name: str) -> bytes:
    try:
        return base64.b64decode(
            text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True
        )
    except (binascii.Error, ValueError):
        raise ValidationFailed("Not valid base64.", field=field_name, code="bad_base64") from None


def record_deposit(
    s: Session,
    settings: Settings,
    files: FileStore,
    station: Station,
    ts: TerminalSession,
    weight_kg: Any,
    photo: bytes,
    now: datetime | None = None,
) -> tuple[Deposit, int]:
    """Record what the scale weighed and the camera saw. Bad weights and photos are refused
    before anything is stored. A lid that did not confirm opening gives a deposit with status
    ``lid_failed`` (kept for the record, never valid, no points) — the caller answers with
    the ``lid_not_confirmed`` error after committing it. Returns (deposit, points awarded)."""
    now = now or utcnow()
    if ts.status != "opening" or ts.bin_id is None:
        raise _t_error("session_not_open", Conflict)
    b = s.get(Bin, ts.bin_id)
    assert b is not None
    weight = check_weight(b.category, weight_kg)
    check_photo(photo)
    state = lid_state(s, ts, now)
    if state == "pending":
        raise _t_error("lid_pending", Conflict)
    resident = s.get(Resident, ts.resident_id)
    household_id = resident.household_id if resident else None
    building_id = None
    if household_id is not None:
        building_id = s.scalar(
            select(Unit.building_id)
            .join(Household, Household.unit_id == Unit.id)
            .where(Household.id == household_id)
        )
    local = local_time(_tz(s, station), now)
    outside = not in_hours(station.hours, local)
    dep = Deposit(
        community_id=station.community_id,
        station_id=station.id,
        bin_id=b.id,
        session_id=ts.id,
        resident_id=ts.resident_id,
        household_id=household_id,
        building_id=building_id,
        category=b.category,
        method=ts.method,
        weight_kg=weight,
        photo_sha256=files.put(photo),
        status="valid" if state == "open" else "lid_failed",
        outside_hours=outside,
        command_id=ts.command_id,
        at=now,
    )
    s.add(dep)
    s.flush()
    awarded = 0
    if dep.status == "valid":
        ts.status = "done"
        if not outside:
            awarded = _award(s, dep, "deposit", now)
        events.emit(
            s,
            "waste.deposit.recorded",
            {
                "id": dep.id,
                "station_id": station.id,
                "bin_id": b.id,
                "category": b.category,
                "weight_kg": weight,
                "outside_hours": outside,
            },
            community_id=station.community_id,
        )
    else:
        ts.status = "failed"
        events.emit(
            s,
            "waste.deposit.lid_failed",
            {"id": dep.id, "station_id": station.id, "bin_id": b.id, "lid": state},
            community_id=station.community_id,
        )
    return dep, awarded


def _tz(s: Session, station: Station) -> str:
    from linli.people.models import Community

    c = s.get(Community, station.community_id)
    return c.timezone if c is not None else "Asia/Shanghai"


def _award(s: Session, dep: Deposit, reason: str, now: datetime) -> int:
    if dep.resident_id is None:
        return 0
    pts = POINTS[reason]
    s.add(
        PointEntry(
            community_id=dep.community_id,
            resident_id=dep.resident_id,
            household_id=dep.household_id,
            deposit_id=dep.id,
            points=pts,
            reason=reason,
            at=now,
        )
    )
    s.flush()
    return pts


def balance(s: Session, community_id: int, resident_id: int) -> int:
    q = select(func.coalesce(func.sum(PointEntry.points), 0)).where(
        PointEntry.community_id == community_id, PointEntry.resident_id == resident_id
    )
    return int(s.scalar(q) or 0)


def household_balance(s: Session, community_id: int, household_id: int) -> int:
    q = select(func.coalesce(func.sum(PointEntry.points), 0)).where(
        PointEntry.community_id == community_id, PointEntry.household_id == household_id
    )
    return int(s.scalar(q) or 0)


def ledger(s: Session, ctx: Ctx, resident_id: int, limit: int = 200) -> list[PointEntry]:
    q = (
        select(PointEntry)
        .where(PointEntry.community_id == ctx.community_id, PointEntry.resident_id == resident_id)
        .order_by(PointEntry.id.desc())
        .limit(limit)
    )
    return list(s.scalars(q))


# -- inspection ---------------------------------------------------------------------------------


def list_deposits(
    s: Session,
    ctx: Ctx,
    *,
    station_id: int | None = None,
    inspection: str | None = None,
    resident_id: int | None = None,
    limit: int = 200,
) -> list[Deposit]:
    ctx.require(Perm.WASTE_READ)
    q = select(Deposit).where(Deposit.community_id == ctx.community_id)
    if station_id is not None:
        q = q.where(Deposit.station_id == station_id)
    if inspection:
        q = q.where(Deposit.inspection == inspection, Deposit.status == "valid")
    if resident_id is not None:
        q = q.where(Deposit.resident_id == resident_id)
    return list(s.scalars(q.order_by(Deposit.at.desc(), Deposit.id.desc()).limit(limit)))


def get_deposit(s: Session, ctx: Ctx, deposit_id: int) -> Deposit:
    ctx.require(Perm.WASTE_READ)
    d = s.get(Deposit, deposit_id)
    if d is None or d.community_id != ctx.community_id:
        raise NotFound("Deposit not found.", code="deposit_not_found")
    return d


def inspect(
    s: Session,
    ctx: Ctx,
    deposit_id: int,
    result: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Deposit:
    """Staff judge a deposit from its photo: correctly sorted (+2 points) or contaminated
    (−1). A second judgement replaces the first, points included."""
    ctx.require(Perm.WASTE_MANAGE)
    now = now or utcnow()
    d = get_deposit(s, ctx, deposit_id)
    if d.status != "valid":
        raise Conflict("Only a valid deposit can be inspected.", code="not_inspectable")
    if result not in ("correct", "contaminated"):
        raise ValidationFailed("Unknown inspection result.", field="result")
    for old in s.scalars(
        select(PointEntry).where(
            PointEntry.deposit_id == d.id, PointEntry.reason.in_(("correct", "contaminated"))
        )
    ):
        s.delete(old)
    s.flush()
    d.inspection, d.inspected_by, d.inspected_at = result, ctx.actor.name, now
    d.inspection_note = (note or "").strip()[:300] or None
    _award(s, d, result, now)
    audit.record(
        s,
        ctx.actor,
        "waste.deposit.inspected",
        "waste_deposit",
        d.id,
        community_id=ctx.community_id,
        details={"result": result},
    )
    events.emit(
        s,
        "waste.deposit.inspected",
        {"id": d.id, "result": result, "category": d.category},
        community_id=ctx.community_id,
    )
    return d


def accuracy(
    s: Session, ctx: Ctx, by: str, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Sorting accuracy (correct / inspected) per ``resident`` or ``building``."""
    ctx.require(Perm.WASTE_READ)
    col = Deposit.resident_id if by == "resident" else Deposit.building_id
    q = (
        select(col, Deposit.inspection, func.count())
        .where(
            Deposit.community_id == ctx.community_id,
            Deposit.status == "valid",
            col.is_not(None),
        )
        .group_by(col, Deposit.inspection)
    )
    if start is not None:
        q = q.where(Deposit.at >= start)
    if end is not None:
        q = q.where(Deposit.at < end)
    acc: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, insp, n in s.execute(q):
        if key is not None:
            acc[int(key)][insp] += int(n)
    if by == "resident":
        names = {
            r.id: r.name
            for r in s.scalars(select(Resident).where(Resident.id.in_(list(acc) or [0])))
        }
    else:
        names = {
            b.id: b.name
            for b in s.scalars(select(Building).where(Building.id.in_(list(acc) or [0])))
        }
    out: list[dict[str, Any]] = []
    for key, c in acc.items():
        inspected = c["correct"] + c["contaminated"]
        out.append(
            {
                "id": key,
                "name": names.get(key, str(key)),
                "deposits": sum(c.values()),
                "inspected": inspected,
                "correct": c["correct"],
                "contaminated": c["contaminated"],
                "accuracy": round(c["correct"] / inspected, 4) if inspected else None,
            }
        )
    out.sort(key=lambda r: (r["accuracy"] is None, -float(r["accuracy"] or 0), str(r["name"])))
    return out


# -- overflow early warning ---------------------------------------------------------------------


@dataclass
class FillForecast:
    level: float | None
    at: datetime | None
    rate_per_h: float | None
    full_at: datetime | None
    emptied_at: datetime | None
    points_used: int = 0


def theil_sen(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median of pairwise slopes, and the median intercept: robust to a few bad readings."""
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    slopes = (y[j] - y[i])[ok] / dt[ok]
    slope = float(np.median(slopes)) if len(slopes) else 0.0
    return slope, float(np.median(y - slope * t))


def forecast(
    points: Sequence[tuple[datetime, float]], now: datetime, full_at: float = FULL_AT
) -> FillForecast:
    """Predict when a bin is full from its fill readings. Only the segment after the last
    emptying (a drop of ``EMPTIED_DROP`` points or more) counts; a Theil–Sen line through it
    (at most the last ``FIT_WINDOW``) gives the rate, and the line reaches ``full_at`` at the
    predicted time. No prediction while the level does not rise."""
    pts = sorted((t, v) for t, v in points if t <= now and math.isfinite(v))
    if not pts:
        return FillForecast(None, None, None, None, None)
    emptied: datetime | None = None
    start = 0
    vals = [v for _t, v in pts]
    for k in range(1, len(pts)):
        # an emptying: well below the median of the readings before it, and the next reading
        # agrees (a single odd reading — a bag over the sensor — is not an emptying)
        before = float(np.median(vals[max(start, k - 3) : k]))
        low = before - EMPTIED_DROP
        if vals[k] <= low and (k == len(pts) - 1 or vals[k + 1] <= low):
            emptied, start = pts[k][0], k
    seg = [p for p in pts[start:] if p[0] >= now - FIT_WINDOW]
    level_t, level = pts[-1]
    if len(seg) < MIN_FIT_POINTS or seg[-1][0] - seg[0][0] < MIN_FIT_SPAN:
        full = now if level >= full_at else None
        return FillForecast(level, level_t, None, full, emptied, len(seg))
    t0 = seg[0][0]
    t = np.array([(p[0] - t0).total_seconds() / 3600.0 for p in seg])
    y = np.array([p[1] for p in seg])
    slope, intercept = theil_sen(t, y)
    if level >= full_at:
        return FillForecast(level, level_t, slope, level_t, emptied, len(seg))
    if slope <= 0.05:  # under 0.05 %/h: not filling
        return FillForecast(level, level_t, slope, None, emptied, len(seg))
    # from the fitted line at the latest reading, forward at the fitted rate
    t_last = t[-1]
    fitted_now = max(intercept + slope * t_last, level)
    hours = (full_at - fitted_now) / slope
    return FillForecast(
        level, level_t, slope, level_t + timedelta(hours=max(0.0, hours)), emptied, len(seg)
    )


def check_overflow(
    s: Session, now: datetime | None = None, community_id: int | None = None
) -> list[dict[str, Any]]:
    """For every bin with a fill-level sensor: forecast, store the prediction, and before the
    bin overflows (its station's lead time) raise the ``waste.bin.overflow`` alarm with a
    cleaning work order; clear it once the bin has been emptied. Run from the periodic loop."""
    now = now or utcnow()
    q = select(Bin).where(Bin.fill_device_id.is_not(None), Bin.enabled.is_(True))
    if community_id is not None:
        q = q.where(Bin.community_id == community_id)
    out = []
    for b in s.scalars(q):
        st = s.get(Station, b.station_id)
        if st is None:
            continue
        ctx = system_ctx(b.community_id, "waste-overflow")
        try:
            data = iot.series(s, ctx, b.fill_device_id or 0, "fill", now - FIT_WINDOW, now)
        except AppError:
            continue
        pts = [(_parse_iso(p[0]), float(p[1])) for p in data["points"]]
        fc = forecast(pts, now)
        b.fill_level, b.fill_at = fc.level, fc.at
        b.fill_rate_per_h = round(fc.rate_per_h, 3) if fc.rate_per_h is not None else None
        b.predicted_full_at = fc.full_at
        if fc.emptied_at is not None and (
            b.last_emptied_at is None or fc.emptied_at > b.last_emptied_at
        ):
            b.last_emptied_at = fc.emptied_at
        key = f"waste:bin:{b.id}:overflow"
        lead = timedelta(minutes=st.overflow_lead_min)
        warn = fc.full_at is not None and fc.full_at - now <= lead
        state = "ok"
        if warn:
            assert fc.full_at is not None
            minutes = max(0, round((fc.full_at - now).total_seconds() / 60))
            label = f"{st.name} · {CATEGORY_LABELS[b.category]['zh']} #{b.id}"
            alarm, created = iot.raise_alarm(
                s,
                community_id=b.community_id,
                dedup_key=key,
                kind="waste.bin.overflow",
                severity="major" if minutes > 0 else "critical",
                message=N_(
                    "Bin %(bin)s will be full in about %(minutes)s minutes (now %(level)s%%)."
                ),
                params={"bin": label, "minutes": minutes, "level": round(fc.level or 0)},
                device_id=b.fill_device_id,
                value=fc.level,
                source="waste",
                at=now,
                work_order={
                    "category": "sanitation",
                    "title": f"清运垃圾桶 / Empty bin: {label}",
                    "description": (
                        f"Predicted full at {fc.full_at.isoformat()} "
                        f"(rate {fc.rate_per_h or 0:.1f} %/h)."
                    ),
                    "building_id": st.building_id,
                    "location": st.location or st.name,
                },
            )
            if created:
                events.emit(
                    s,
                    "waste.bin.full_predicted",
                    {
                        "bin_id": b.id,
                        "station_id": st.id,
                        "full_at": fc.full_at.isoformat(),
                        "level": fc.level,
                        "alarm_id": alarm.id,
                    },
                    community_id=b.community_id,
                )
            state = "warning"
        elif (
            fc.level is not None
            and fc.level < FULL_AT - EMPTIED_DROP
            and iot.clear_alarm_by_key(s, b.community_id, key, "waste-overflow", at=now)
        ):
            state = "cleared"
        out.append({"bin_id": b.id, "state": state, "full_at": fc.full_at, "level": fc.level})
    return out


def _parse_iso(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- supervision: camera frames -------------------------------------------------------------------


@dataclass
class _CameraState:
    detector: Any
    reference: np.ndarray | None = None
    reference_sha: str | None = None
    pile_since: datetime | None = None
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_cameras: dict[tuple[str, int], _CameraState] = {}
_cameras_lock = threading.Lock()


def _camera(s: Session, station: Station) -> _CameraState:
    from linli.vision.analytics import MotionDetector, Zone

    key = (str(s.get_bind().engine.url), station.id)
    with _cameras_lock:
        st = _cameras.get(key)
        if st is None:
            zone = Zone("station", ((0, 0), (1, 0), (1, 1), (0, 1)))
            st = _cameras[key] = _CameraState(MotionDetector([zone], history=50))
        return st


def _grey(image: bytes, width: int = 320) -> np.ndarray:
    import cv2

    arr = np.frombuffer(image, np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    if img is None:
        raise _t_error("bad_photo", field="frame")
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    g = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    return np.asarray(g)


def _zone_mask(shape: tuple[int, int], polygon: Sequence[Sequence[float]] | None) -> np.ndarray:
    import cv2

    h, w = shape
    m = np.zeros((h, w), np.uint8)
    poly = polygon or [[0, 0], [1, 0], [1, 1], [0, 1]]
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly], np.int32)
    cv2.fillPoly(m, [pts], 255)
    return m


def pile_fraction(reference: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> float:
    """Share of the watched zone beside the bins that differs from the reference picture of
    it empty (after evening out overall brightness, and removing specks). It sees *something
    lying there that was not there* — bags, boxes, a chair — not what the thing is."""
    import cv2

    if reference.shape != frame.shape:
        frame = cv2.resize(frame, (reference.shape[1], reference.shape[0]))
    inside = mask > 0
    ref = reference.astype(np.float32)
    cur = frame.astype(np.float32)
    cur = cur * (ref[inside].mean() + 1.0) / (cur[inside].mean() + 1.0)
    diff = np.abs(cur - ref)
    changed = np.where((diff > 40) & inside, 255, 0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    changed = np.asarray(cv2.morphologyEx(changed, cv2.MORPH_OPEN, kernel), dtype=np.uint8)
    area = int(np.count_nonzero(inside))
    return float(np.count_nonzero(changed)) / area if area else 0.0


def set_pile_reference(
    s: Session,
    ctx: Ctx,
    files: FileStore,
    station_id: int,
    image: bytes,
    zone: list[list[float]] | None = None,
) -> Station:
    """Staff take the reference picture of the clean area beside the bins (after cleaning)."""
    ctx.require(Perm.WASTE_MANAGE)
    st = get_station(s, ctx, station_id)
    _grey(image)
    if zone is not None:
        if len(zone) < 3 or any(
            len(p) != 2 or not all(0.0 <= float(v) <= 1.0 for v in p) for p in zone
        ):
            raise ValidationFailed(
                "The zone is a polygon of at least 3 points inside the picture.", field="zone"
            )
        st.pile_zone = [[float(x), float(y)] for x, y in zone]
    st.pile_reference_sha256 = files.put(image)
    cam = _camera(s, st)
    with cam.lock:
        cam.reference, cam.reference_sha, cam.pile_since = None, None, None
    audit.record(
        s,
        ctx.actor,
        "waste.station.pile_reference",
        "waste_station",
        st.id,
        community_id=ctx.community_id,
    )
    return st


def camera_frame(
    s: Session, files: FileStore, station: Station, image: bytes, now: datetime | None = None
) -> dict[str, Any]:
    """A frame from the station camera. Outside the delivery hours, motion (MOG2 background
    subtraction, ``linli.vision.analytics.MotionDetector``) means someone is leaving garbage:
    a supervision record with the snapshot (one per few minutes of activity). With a
    reference picture, garbage lying beside the bins for ``PILE_PERSIST`` raises an alarm."""
    now = now or utcnow()
    if len(image) > MAX_PHOTO_BYTES:
        raise _t_error("photo_too_large", ValidationFailed, status=413, field="frame")
    import cv2

    grey = _grey(image)
    cam = _camera(s, station)
    out: dict[str, Any] = {"motion": 0.0, "pile": None, "supervision_id": None, "alarm_id": None}
    with cam.lock:
        measures = cam.detector.update(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
        cam.frames += 1
        motion = measures["station"].fraction if cam.frames > 1 else 0.0
        out["motion"] = round(motion, 4)
        if station.pile_reference_sha256 and cam.reference_sha != station.pile_reference_sha256:
            try:
                cam.reference = _grey(files.get(station.pile_reference_sha256))
                cam.reference_sha = station.pile_reference_sha256
            except (OSError, ValueError, AppError):
                cam.reference = None
        pile = None
        if cam.reference is not None:
            g = grey
            if g.shape != cam.reference.shape:
                g = cv2.resize(g, (cam.reference.shape[1], cam.reference.shape[0]))
            pile = pile_fraction(cam.reference, g, _zone_mask(g.shape, station.pile_zone))
            out["pile"] = round(pile, 4)
    local = local_time(_tz(s, station), now)
    outside = not in_hours(station.hours, local)
    out["outside_hours"] = outside
    if outside and motion >= MOTION_FRACTION:
        last = s.scalar(
            select(Supervision)
            .where(
                Supervision.station_id == station.id,
                Supervision.kind == "outside_hours_drop",
                Supervision.at >= now - SUPERVISION_MERGE,
            )
            .order_by(Supervision.at.desc())
        )
        if last is None:
            rec = Supervision(
                community_id=station.community_id,
                station_id=station.id,
                kind="outside_hours_drop",
                at=now,
                snapshot_sha256=files.put(image),
                score=round(motion, 4),
            )
            s.add(rec)
            s.flush()
            events.emit(
                s,
                "waste.supervision.recorded",
                {"id": rec.id, "station_id": station.id, "kind": rec.kind},
                community_id=station.community_id,
            )
            out["supervision_id"] = rec.id
        else:
            if motion > last.score:
                last.score = round(motion, 4)
                last.snapshot_sha256 = files.put(image)
            out["supervision_id"] = last.id
    if pile is not None:
        key = f"waste:station:{station.id}:pile"
        if pile >= PILE_FRACTION and motion < MOTION_FRACTION:
            with cam.lock:
                cam.pile_since = cam.pile_since or now
                since = cam.pile_since
            if now - since >= PILE_PERSIST:
                alarm, created = iot.raise_alarm(
                    s,
                    community_id=station.community_id,
                    dedup_key=key,
                    kind="waste.pile",
                    severity="minor",
                    message=N_("Garbage is piled beside the bins at %(station)s."),
                    params={"station": station.name},
                    value=round(pile * 100, 1),
                    source="waste",
                    at=now,
                    work_order={
                        "category": "sanitation",
                        "title": f"清理垃圾堆放 / Clear piled garbage: {station.name}",
                        "building_id": station.building_id,
                        "location": station.location or station.name,
                    },
                )
                out["alarm_id"] = alarm.id
                if created:
                    rec = Supervision(
                        community_id=station.community_id,
                        station_id=station.id,
                        kind="pile_beside_bins",
                        at=now,
                        snapshot_sha256=files.put(image),
                        score=round(pile, 4),
                        alarm_id=alarm.id,
                    )
                    s.add(rec)
                    s.flush()
                    out["supervision_id"] = rec.id
        elif pile < PILE_FRACTION / 2:
            with cam.lock:
                cam.pile_since = None
            iot.clear_alarm_by_key(s, station.community_id, key, "waste-camera", at=now)
    return out


def list_supervision(s: Session, ctx: Ctx, limit: int = 200) -> list[Supervision]:
    ctx.require(Perm.WASTE_READ)
    q = (
        select(Supervision)
        .where(Supervision.community_id == ctx.community_id)
        .order_by(Supervision.at.desc())
        .limit(limit)
    )
    return list(s.scalars(q))


def handle_supervision(s: Session, ctx: Ctx, record_id: int, note: str | None) -> Supervision:
    ctx.require(Perm.WASTE_MANAGE)
    r = s.get(Supervision, record_id)
    if r is None or r.community_id != ctx.community_id:
        raise NotFound("Record not found.", code="supervision_not_found")
    r.status, r.handled_by = "handled", ctx.actor.name
    r.note = (note or "").strip()[:300] or r.note
    audit.record(
        s,
        ctx.actor,
        "waste.supervision.handled",
        "waste_supervision",
        r.id,
        community_id=ctx.community_id,
    )
    return r


# -- statistics ---------------------------------------------------------------------------------


def _day_bounds(tz: str, start: date, end: date) -> tuple[datetime, datetime]:
    z = ZoneInfo(tz)
    a = datetime(start.year, start.month, start.day, tzinfo=z).astimezone(UTC)
    b = datetime(end.year, end.month, end.day, tzinfo=z).astimezone(UTC) + timedelta(days=1)
    return a, b


def statistics(s: Session, ctx: Ctx, start: date, end: date) -> dict[str, Any]:
    """Daily weight per category, recycling rate, participation per building, the most
    contaminated categories and deliveries outside the hours, for days ``start``..``end``."""
    ctx.require(Perm.WASTE_READ)
    if end < start:
        raise ValidationFailed("The end of the range must be after its start.", field="end")
    if (end - start).days > 366:
        raise ValidationFailed("The range is too long (366 days at most).", field="start")
    lo, hi = _day_bounds(ctx.timezone, start, end)
    z = ZoneInfo(ctx.timezone)
    # only the columns needed (rows, not ORM objects: a year of deposits stays light)
    deps = list(
        s.execute(
            select(
                Deposit.at,
                Deposit.category,
                Deposit.weight_kg,
                Deposit.status,
                Deposit.outside_hours,
                Deposit.building_id,
                Deposit.household_id,
                Deposit.inspection,
            ).where(
                Deposit.community_id == ctx.community_id,
                Deposit.at >= lo,
                Deposit.at < hi,
            )
        )
    )
    valid = [d for d in deps if d.status == "valid"]
    daily: dict[str, dict[str, float]] = {}
    d0 = start
    while d0 <= end:
        daily[d0.isoformat()] = {c: 0.0 for c in BIN_CATEGORIES}
        d0 += timedelta(days=1)
    totals = {c: 0.0 for c in BIN_CATEGORIES}
    for d in valid:
        day = d.at.astimezone(z).date().isoformat()
        if day in daily:
            daily[day][d.category] += d.weight_kg or 0.0
        totals[d.category] += d.weight_kg or 0.0
    total = sum(totals.values())
    recycled = totals["recyclable"] + totals["kitchen"]
    # participation: households of each building with a valid deposit in the range
    hh_q = (
        select(Unit.building_id, func.count(Household.id))
        .join(Household, Household.unit_id == Unit.id)
        .where(Unit.community_id == ctx.community_id)
        .group_by(Unit.building_id)
    )
    households = {int(b): int(n) for b, n in s.execute(hh_q)}
    active: dict[int, set[int]] = defaultdict(set)
    for d in valid:
        if d.building_id is not None and d.household_id is not None:
            active[d.building_id].add(d.household_id)
    buildings = {
        b.id: b.name
        for b in s.scalars(select(Building).where(Building.community_id == ctx.community_id))
    }
    participation = [
        {
            "building_id": bid,
            "building": name,
            "households": households.get(bid, 0),
            "participating": len(active.get(bid, set())),
            "rate": round(len(active.get(bid, set())) / households[bid], 4)
            if households.get(bid)
            else None,
        }
        for bid, name in sorted(buildings.items(), key=lambda kv: kv[1])
    ]
    contamination: list[dict[str, Any]] = []
    for c in BIN_CATEGORIES:
        insp = [d for d in valid if d.category == c and d.inspection != "pending"]
        bad = sum(1 for d in insp if d.inspection == "contaminated")
        if insp:
            contamination.append(
                {
                    "category": c,
                    "inspected": len(insp),
                    "contaminated": bad,
                    "rate": round(bad / len(insp), 4),
                }
            )
    contamination.sort(key=lambda r: (-float(r["rate"]), -int(r["contaminated"])))
    sup = s.scalar(
        select(func.count(Supervision.id)).where(
            Supervision.community_id == ctx.community_id,
            Supervision.kind == "outside_hours_drop",
            Supervision.at >= lo,
            Supervision.at < hi,
        )
    )
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "daily": [
            {
                "date": k,
                **{c: round(v, 3) for c, v in cats.items()},
                "total": round(sum(cats.values()), 3),
            }
            for k, cats in daily.items()
        ],
        "totals": {c: round(v, 3) for c, v in totals.items()},
        "total_kg": round(total, 3),
        "deposits": len(valid),
        "lid_failed": sum(1 for d in deps if d.status == "lid_failed"),
        "recycling_rate": round(recycled / total, 4) if total else None,
        "recyclable_rate": round(totals["recyclable"] / total, 4) if total else None,
        "participation": participation,
        "contamination": contamination,
        "outside_hours_deposits": sum(1 for d in valid if d.outside_hours),
        "outside_hours_supervision": int(sup or 0),
    }


def statistics_csv(stats: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["date", *(f"{c}_kg" for c in BIN_CATEGORIES), "total_kg"])
    for row in stats["daily"]:
        vals = [row[c] for c in BIN_CATEGORIES]
        w.writerow([row["date"], *vals, round(sum(vals), 3)])
    w.writerow([])
    w.writerow(["total", *(stats["totals"][c] for c in BIN_CATEGORIES), stats["total_kg"]])
    w.writerow(["recycling_rate", stats["recycling_rate"]])
    w.writerow(["outside_hours_deposits", stats["outside_hours_deposits"]])
    w.writerow(["outside_hours_supervision", stats["outside_hours_supervision"]])
    w.writerow([])
    w.writerow(["building", "households", "participating", "participation_rate"])
    for p in stats["participation"]:
        w.writerow([p["building"], p["households"], p["participating"], p["rate"]])
    w.writerow([])
    w.writerow(["category", "inspected", "contaminated", "contamination_rate"])
    for c in stats["contamination"]:
        w.writerow([c["category"], c["inspected"], c["contaminated"], c["rate"]])
    return buf.getvalue()


# -- periodic ------------------------------------------------------------------------------------


def periodic(
    db: Database, settings: Settings, files: FileStore, now: datetime | None = None
) -> None:
    """Called from the app's periodic loop: the overflow forecast of every bin, and the MQTT
    terminal bridge kept running (when MQTT is enabled). A failure here is logged and does not
    stop the other housekeeping of the loop."""
    try:
        with db.session() as s:
            check_overflow(s, now)
    except Exception:
        log.exception("waste overflow check failed")
    if settings.mqtt_enabled:
        try:
            from linli.waste.mqtt import ensure_bridge

            ensure_bridge(db, settings, files)
        except Exception:
            log.exception("waste terminal bridge failed to start")
