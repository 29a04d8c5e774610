"""FIWARE Smart Data Models: WasteContainer and Device entities in and out.

Three forms are read and written:

* ``keyvalues`` — ``{"id": ..., "type": ..., "binCapacity": 43, "location": {GeoJSON}}``;
* ``normalized`` — NGSI-LD: ``{"type": "Property", "value": ...}``, ``GeoProperty``,
  ``Relationship`` with ``object``, date-times as ``{"@type": "DateTime", "@value": ...}``
  and an ``@context``;
* ``ngsiv2`` — NGSI v2 normalized: ``{"type": "Number" | "Text" | "DateTime" | "geo:json" |
  "Relationship" | ..., "value": ...}``.

Mapping to our registry:

* **WasteContainer** → a device of profile ``bin_level``: ``fillingLevel`` (0..1) becomes a
  ``fill`` reading in %, ``name`` the device name, and every other attribute (``location`` as
  GeoJSON, the ``ref…`` relationships, ``binCapacity``…) is kept in the device's attributes.
* **Device** (dataModel.Device) ↔ our device: ``controlledProperty`` ↔ the profile's metrics,
  ``refDeviceModel`` ``urn:ngsi-ld:DeviceModel:linli:<profile>`` ↔ the profile,
  ``deviceState`` ↔ ok/alarm/offline, ``dateLastValueReported`` ↔ last seen, ``value``
  (``metric=value;…``, URL-encoded) ↔ the latest values, ``batteryLevel`` (0..1) ↔ battery %.

What an import brings is kept as it came (with the attribute types of its form under
``attributes["fiware"]``), so exporting an imported entity gives it back; values that arrived
later (telemetry after the import) replace the snapshot on export.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core import i18n
from linli.core.db import utcnow
from linli.core.errors import ValidationFailed
from linli.core.roles import Perm
from linli.core.web import Ctx
from linli.iot import service
from linli.iot.models import Device, DeviceProfile, LatestValue
from linli.iot.schemas import MAX_ATTRIBUTES_BYTES

TYPES = ("WasteContainer", "Device")
FORMS = ("keyvalues", "normalized", "ngsiv2")
META = "fiware"
MAX_ENTITIES = 1000
LD_CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CONTEXTS: dict[str, list[str]] = {
    "WasteContainer": [
        "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/context.jsonld"
    ],
    "Device": [
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
    ],
}
DEVICE_MODEL_PREFIX = "urn:ngsi-ld:DeviceModel:linli:"
GEO_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
LD_TYPES = {"Property", "GeoProperty", "Relationship", "LanguageProperty"}
ISO_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
#: our metric -> Smart Data Models controlledProperty
CONTROLLED: dict[str, str] = {
    "fill": "fillingLevel",
    "distance": "depth",
    "temperature": "temperature",
    "pressure": "pressure",
    "smoke": "smoke",
    "power": "power",
    "current": "electricityConsumption",
    "flow": "waterFlow",
    "total": "waterConsumption",
    "open": "gateOpening",
    "on": "light",
    "displacement": "motion",
}
CONTROLLED_BACK = {v: k for k, v in CONTROLLED.items()}
#: names whose value the import maps onto our model instead of keeping as an attribute
RESERVED = {"id", "type", "@context", "name"}

#: what is wrong with an entity (shown to the person importing)
FIWARE_MESSAGES: dict[str, str] = {
    "not_entities": "Send one entity (a JSON object) or a list of entities.",
    "too_many": "At most %(n)s entities at a time.",
    "not_object": "An entity must be a JSON object.",
    "no_id": "The entity has no id (text).",
    "long_id": "The entity id is longer than 256 characters.",
    "bad_type": "Unsupported entity type %(type)s: use WasteContainer or Device.",
    "mixed": "The attribute mixes the normalized and the key-value form.",
    "bad_attr": "The attribute is not a valid %(form)s attribute.",
    "no_value": "The attribute has no value.",
    "bad_geo": "Must be a GeoJSON Point with [longitude, latitude].",
    "bad_fill": "Must be a number from 0 to 1.",
    "bad_battery": "Must be a number from 0 to 1 (or -1 when unknown).",
    "bad_datetime": "Must be a date and time (ISO 8601).",
    "bad_text": "Must be text.",
    "bad_list": "Must be a list of texts.",
    "bad_name": "The name must be text of 1 to 100 characters.",
    "unknown_profile": "Unknown device profile %(profile)s.",
    "which_profile": (
        "Cannot tell the device profile: give refDeviceModel "
        "urn:ngsi-ld:DeviceModel:linli:<profile> or the profile parameter."
    ),
    "other_profile": "This entity is already registered as a device of another profile.",
    "duplicate": "The same entity id appears twice.",
    "too_large": "The entity is too large (16 KB of attributes at most).",
}


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, where: str, code: str, **params: Any) -> None:
        text = i18n.gettext(FIWARE_MESSAGES[code])
        self.items.append(
            {"field": where, "code": code, "message": text % params if params else text}
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(
                "The entities are not valid: %(n)s problems, listed in errors.",
                params={"n": len(self.items)},
                code="invalid_entities",
                errors=self.items,
            )


# -- the three forms --------------------------------------------------------------------------


def _is_geojson(v: Any) -> bool:
    return isinstance(v, dict) and v.get("type") in GEO_TYPES and "coordinates" in v


def _is_datetime_text(v: Any) -> bool:
    if not isinstance(v, str) or not ISO_DT.match(v):
        return False
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _parse_dt(v: str) -> datetime:
    ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)


def _attr_form(v: Any) -> str:
    """keyvalues | normalized (NGSI-LD) | ngsiv2 for one attribute value."""
    if isinstance(v, dict) and isinstance(v.get("type"), str):
        if v["type"] in LD_TYPES and ("value" in v or "object" in v or "languageMap" in v):
            return "ngsiv2" if v["type"] == "Relationship" and "object" not in v else "normalized"
        if "value" in v and not _is_geojson(v):
            return "ngsiv2"
    return "keyvalues"


def read_entity(
    entity: dict[str, Any], where: str, problems: _Problems
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(key-value attributes, how they came: form, attribute types, metadata, context)."""
    names = [k for k in entity if k not in ("id", "type", "@context")]
    forms = {k: _attr_form(entity[k]) for k in names}
    typed = {f for f in forms.values() if f != "keyvalues"}
    if len(typed) > 1:
        problems.add(where, "mixed")
    form = typed.pop() if len(typed) == 1 else "keyvalues"
    kv: dict[str, Any] = {}
    types: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    for k in names:
        v = entity[k]
        at = f"{where}.{k}"
        if form == "keyvalues":
            kv[k] = v
            continue
        if forms[k] == "keyvalues":
            problems.add(at, "bad_attr", form=form)
            continue
        t = v["type"]
        extra = {x: y for x, y in v.items() if x not in ("type", "value", "object", "languageMap")}
        if extra:
            meta[k] = extra
        if form == "normalized":
            if t == "Relationship":
                if "object" not in v:
                    problems.add(at, "no_value")
                    continue
                kv[k] = v["object"]
            elif t == "LanguageProperty":
                kv[k] = v.get("languageMap")
            else:
                if "value" not in v:
                    problems.add(at, "no_value")
                    continue
                val = v["value"]
                if isinstance(val, dict) and val.get("@type") == "DateTime" and "@value" in val:
                    val = val["@value"]
                    t = "DateTime"
                kv[k] = val
            types[k] = t
        else:
            kv[k] = v["value"]
            types[k] = t
    info: dict[str, Any] = {"form": form, "types": types}
    if meta:
        info["meta"] = meta
    if isinstance(entity.get("@context"), str | list):
        info["@context"] = entity["@context"]
    return kv, info


def _ld_attr(name: str, v: Any, hint: str | None) -> dict[str, Any]:
    if hint == "Relationship" or (
        hint is None and name.startswith("ref") and isinstance(v, str | list)
    ):
        return {"type": "Relationship", "object": v}
    if hint == "LanguageProperty":
        return {"type": "LanguageProperty", "languageMap": v}
    if hint in ("GeoProperty", "geo:json") or (hint is None and _is_geojson(v)):
        return {"type": "GeoProperty", "value": v}
    if hint == "DateTime" or (hint is None and _is_datetime_text(v)):
        return {"type": "Property", "value": {"@type": "DateTime", "@value": v}}
    return {"type": "Property", "value": v}


def _v2_type(name: str, v: Any) -> str:
    if name.startswith("ref") and isinstance(v, str | list):
        return "Relationship"
    if _is_geojson(v):
        return "geo:json"
    if _is_datetime_text(v):
        return "DateTime"
    if isinstance(v, bool):
        return "Boolean"
    if isinstance(v, int | float):
        return "Number"
    if isinstance(v, str):
        return "Text"
    return "StructuredValue"


_LD_TO_V2 = {"GeoProperty": "geo:json", "DateTime": "DateTime", "Relationship": "Relationship"}
_V2_TO_LD = {"geo:json": "GeoProperty", "DateTime": "DateTime", "Relationship": "Relationship"}


def write_entity(
    eid: str, etype: str, kv: dict[str, Any], info: dict[str, Any], form: str
) -> dict[str, Any]:
    """An entity in ``form`` from key-value attributes and what is known of their types."""
    out: dict[str, Any] = {"id": eid, "type": etype}
    src_form = info.get("form", "keyvalues")
    types: dict[str, str] = info.get("types", {})
    meta: dict[str, dict[str, Any]] = info.get("meta", {})
    for k, v in kv.items():
        if form == "keyvalues":
            out[k] = v
        elif form == "normalized":
            hint = types.get(k) if src_form == "normalized" else _V2_TO_LD.get(types.get(k, ""))
            if src_form == "normalized" and hint == "Property":
                out[k] = {"type": "Property", "value": v}
            else:
                out[k] = _ld_attr(k, v, hint)
            if src_form == "normalized" and k in meta:
                out[k].update(meta[k])
        else:
            if src_form == "ngsiv2" and k in types:
                t = types[k]
            elif src_form == "normalized" and types.get(k) in _LD_TO_V2:
                t = _LD_TO_V2[types[k]]
            else:
                t = _v2_type(k, v)
            out[k] = {"type": t, "value": v}
            if src_form == "ngsiv2" and k in meta:
                out[k].update(meta[k])
    if form == "normalized":
        out["@context"] = info.get("@context") or list(CONTEXTS[etype])
    return out


# -- import ------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    index: int
    eid: str
    etype: str
    name: str | None
    attributes: dict[str, Any]
    info: dict[str, Any]
    profile: DeviceProfile | None = None
    values: dict[str, Any] = field(default_factory=dict)
    observed: datetime | None = None


@dataclass
class ImportPlan:
    created: list[tuple[Device, str, str]] = field(default_factory=list)  # device, secret, eid
    updated: list[tuple[Device, str]] = field(default_factory=list)
    #: readings to ingest once the devices are committed: [{"device", "ts", "values"}]
    readings: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "created": [
                {"id": d.id, "key": d.key, "name": d.name, "entity": eid, "secret": secret}
                for d, secret, eid in self.created
            ],
            "updated": [
                {"id": d.id, "key": d.key, "name": d.name, "entity": eid} for d, eid in self.updated
            ],
        }


def _check_point(v: Any) -> bool:
    if not isinstance(v, dict) or v.get("type") != "Point":
        return False
    c = v.get("coordinates")
    if not isinstance(c, list) or len(c) not in (2, 3):
        return False
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in c):
        return False
    return -180 <= c[0] <= 180 and -90 <= c[1] <= 90


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _decode_value(text: str) -> dict[str, str]:
    """``value`` of a Device: ``l%3D0.22%3Bt%3D21.2`` → {"l": "0.22", "t": "21.2"}."""
    out: dict[str, str] = {}
    for part in unquote(text).split(";"):
        k, sep, v = part.partition("=")
        if sep and k.strip():
            out[k.strip()] = v.strip()
    return out


def _encode_value(values: dict[str, float]) -> str:
    return quote(";".join(f"{k}={_fmt(v)}" for k, v in sorted(values.items())), safe="")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(round(v, 6))


def _profile_for_device(
    kv: dict[str, Any],
    profiles: dict[str, DeviceProfile],
    wanted: str | None,
    where: str,
    problems: _Problems,
) -> DeviceProfile | None:
    ref = kv.get("refDeviceModel")
    if isinstance(ref, str) and ref.startswith(DEVICE_MODEL_PREFIX):
        key = ref[len(DEVICE_MODEL_PREFIX) :]
        if key not in profiles:
            problems.add(f"{where}.refDeviceModel", "unknown_profile", profile=key)
            return None
        return profiles[key]
    if wanted:
        if wanted not in profiles:
            problems.add("profile", "unknown_profile", profile=wanted)
            return None
        return profiles[wanted]
    props = kv.get("controlledProperty")
    if isinstance(props, list) and props and all(isinstance(p, str) for p in props):
        want = {CONTROLLED_BACK.get(p, p) for p in props}
        fits = [p for p in profiles.values() if want <= {m["key"] for m in p.metrics}]
        fits.sort(key=lambda p: len(p.metrics))
        if len(fits) == 1 or (len(fits) > 1 and len(fits[0].metrics) < len(fits[1].metrics)):
            return fits[0]
    problems.add(where, "which_profile")
    return None


def _parse(
    entity: Any,
    i: int,
    profiles: dict[str, DeviceProfile],
    wanted_profile: str | None,
    problems: _Problems,
) -> _Parsed | None:
    where = f"[{i}]"
    if not isinstance(entity, dict):
        problems.add(where, "not_object")
        return None
    eid, etype = entity.get("id"), entity.get("type")
    bad = len(problems.items)
    if not isinstance(eid, str) or not eid.strip():
        problems.add(f"{where}.id", "no_id")
    elif len(eid) > 256:
        problems.add(f"{where}.id", "long_id")
    if etype not in TYPES:
        problems.add(f"{where}.type", "bad_type", type=str(etype)[:50])
    if len(problems.items) > bad:
        return None
    assert isinstance(eid, str) and isinstance(etype, str)
    kv, info = read_entity(entity, where, problems)
    name = kv.pop("name", None)
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 100):
        problems.add(f"{where}.name", "bad_name")
    if "location" in kv and not _check_point(kv["location"]):
        problems.add(f"{where}.location", "bad_geo")
    p = _Parsed(i, eid.strip(), etype, name, kv, info)
    observed_key = "dateObserved" if etype == "WasteContainer" else "dateLastValueReported"
    obs = kv.get(observed_key)
    if obs is not None:
        if not _is_datetime_text(obs):
            problems.add(f"{where}.{observed_key}", "bad_datetime")
        else:
            p.observed = _parse_dt(obs)
    for k in ("dateLastEmptying", "dateUpdated", "dateCreated", "dateInstalled", "dateFirstUsed"):
        if k in kv and not _is_datetime_text(kv[k]):
            problems.add(f"{where}.{k}", "bad_datetime")
    if etype == "WasteContainer":
        p.profile = profiles.get("bin_level")
        level = kv.get("fillingLevel")
        if level is not None:
            if not _number(level) or not 0 <= level <= 1:
                problems.add(f"{where}.fillingLevel", "bad_fill")
            else:
                p.values["fill"] = round(float(level) * 100, 6)
        return p
    # a Device
    for k in ("deviceState", "serialNumber", "firmwareVersion", "description"):
        if k in kv and not isinstance(kv[k], str):
            problems.add(f"{where}.{k}", "bad_text")
    for k in ("controlledProperty", "category"):
        v = kv.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            problems.add(f"{where}.{k}", "bad_list")
    value = kv.get("value")
    if value is not None and not isinstance(value, str):
        problems.add(f"{where}.value", "bad_text")
    battery = kv.get("batteryLevel")
    if battery is not None and not (_number(battery) and (0 <= battery <= 1 or battery == -1)):
        problems.add(f"{where}.batteryLevel", "bad_battery")
    p.profile = _profile_for_device(kv, profiles, wanted_profile, where, problems)
    if p.profile is None:
        return p
    metrics = {m["key"]: m for m in p.profile.metrics}
    if isinstance(value, str):
        decoded = _decode_value(value)
        readings: dict[str, Any] = {}
        for k, raw in decoded.items():
            metric = k if k in metrics else CONTROLLED_BACK.get(k)
            if metric is None or metric not in metrics:
                readings = {}
                break  # a vendor's own encoding: keep the text, ingest nothing
            low = raw.lower()
            try:
                num = 1.0 if low == "true" else 0.0 if low == "false" else float(raw)
            except ValueError:
                readings = {}
                break
            kind = metrics[metric].get("kind", "number")
            readings[metric] = bool(num) if kind == "bool" else num
        p.values.update(readings)
    if (
        isinstance(battery, int | float)
        and _number(battery)
        and battery >= 0
        and "battery" in metrics
    ):
        p.values["battery"] = round(float(battery) * 100, 6)
    return p


def _key_for(s: Session, eid: str, etype: str) -> str:
    base = eid.removeprefix("urn:ngsi-ld:")
    if etype == "Device":
        base = base.removeprefix("Device:")
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.") or "entity"
    if not base[0].isalnum():
        base = "e" + base
    base = base[:64]
    if len(base) < 3:
        base = (base + "-" + etype.lower())[:64]
    key = base
    while s.scalar(select(Device.id).where(Device.key == key)) is not None:
        key = f"{base[:55]}-{secrets.token_hex(4)}"
    return key


def _existing(devices: list[Device], eid: str, etype: str) -> Device | None:
    for d in devices:
        m = (d.attributes or {}).get(META)
        if isinstance(m, dict) and m.get("id") == eid and m.get("type") == etype:
            return d
    for d in devices:
        if eid == f"urn:ngsi-ld:{etype}:{d.key}":
            return d
    return None


def import_entities(s: Session, ctx: Ctx, doc: Any, *, profile: str | None = None) -> ImportPlan:
    """Validate every entity first (nothing is saved if any is wrong), then register or
    update the devices. The readings to ingest are in the plan (after the commit)."""
    ctx.require(Perm.IOT_MANAGE)
    problems = _Problems()
    entities = [doc] if isinstance(doc, dict) else doc
    if not isinstance(entities, list) or not entities:
        problems.add("body", "not_entities")
        problems.raise_if_any()
    if len(entities) > MAX_ENTITIES:
        problems.add("body", "too_many", n=MAX_ENTITIES)
        problems.raise_if_any()
    profiles = {p.key: p for p in service.profiles(s, ctx)}
    now = utcnow()
    parsed: list[_Parsed] = []
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(entities):
        p = _parse(e, i, profiles, profile, problems)
        if p is None:
            continue
        if (p.eid, p.etype) in seen:
            problems.add(f"[{i}].id", "duplicate")
        seen.add((p.eid, p.etype))
        parsed.append(p)
    devices = service.list_devices(s, ctx)
    for p in parsed:
        if len(json.dumps(p.attributes, ensure_ascii=False, default=str)) > MAX_ATTRIBUTES_BYTES:
            problems.add(f"[{p.index}]", "too_large")
        d = _existing(devices, p.eid, p.etype)
        if d is not None and p.profile is not None and d.profile_id != p.profile.id:
            problems.add(f"[{p.index}].type", "other_profile")
    problems.raise_if_any()

    plan = ImportPlan()
    for p in parsed:
        assert p.profile is not None
        snapshot_at = p.observed or now
        meta = dict(p.info, id=p.eid, type=p.etype, snapshot_at=snapshot_at.isoformat())
        if p.name is None:
            meta["name_absent"] = True
        attributes = dict(p.attributes, **{META: meta})
        d = _existing(devices, p.eid, p.etype)
        name = (p.name or "").strip() or str(p.attributes.get("serialNumber") or p.eid)[:100]
        if d is None:
            d, secret = service.create_device(
                s,
                ctx,
                name=name,
                profile_id=p.profile.id,
                key=_key_for(s, p.eid, p.etype),
                attributes=attributes,
            )
            plan.created.append((d, secret, p.eid))
            devices.append(d)
        else:
            service.update_device(s, ctx, d.id, name=name, attributes=attributes)
            plan.updated.append((d, p.eid))
        if p.values:
            plan.readings.append(
                {"device": d.key, "ts": snapshot_at.isoformat(), "values": p.values}
            )
    s.flush()
    return plan


# -- export ------------------------------------------------------------------------------------


def _latest(s: Session, device_ids: list[int]) -> dict[int, dict[str, tuple[datetime, float]]]:
    out: dict[int, dict[str, tuple[datetime, float]]] = {}
    if not device_ids:
        return out
    for lv in s.scalars(select(LatestValue).where(LatestValue.device_id.in_(device_ids))):
        out.setdefault(lv.device_id, {})[lv.metric] = (lv.ts, lv.value)
    return out


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_entities(s: Session, ctx: Ctx, etype: str, form: str) -> list[dict[str, Any]]:
    """This community's devices as entities of ``etype`` in ``form``."""
    ctx.require(Perm.IOT_READ)
    if etype not in TYPES:
        raise ValidationFailed("Unknown entity type.", field="type")
    if form not in FORMS:
        raise ValidationFailed("Unknown format.", field="format")
    profiles = {p.id: p for p in service.profiles(s, ctx)}
    devices = service.list_devices(
        s, ctx, profile_key="bin_level" if etype == "WasteContainer" else None
    )
    latest = _latest(s, [d.id for d in devices])
    states = service.device_states(s, ctx, devices)
    out = []
    for d in devices:
        attrs = dict(d.attributes or {})
        raw_meta = attrs.pop(META, None)
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        own = meta.get("type") == etype
        if not own:
            meta = {}
            if etype == "Device":
                # a WasteContainer's attributes describe the container, not the sensor
                attrs = {k: v for k, v in attrs.items() if k == "location"}
        eid = meta.get("id") or f"urn:ngsi-ld:{etype}:{d.key}"
        snapshot_at = _parse_dt(meta["snapshot_at"]) if meta.get("snapshot_at") else None
        live = latest.get(d.id, {})
        newest = max((ts for ts, _ in live.values()), default=None)
        fresh = newest is not None and (snapshot_at is None or newest > snapshot_at)
        kv: dict[str, Any] = {}
        if not meta.get("name_absent") or not own:
            kv["name"] = d.name
        kv.update(attrs)
        profile = profiles.get(d.profile_id)
        if etype == "WasteContainer":
            if fresh and "fill" in live:
                ts, v = live["fill"]
                kv["fillingLevel"] = round(v / 100, 6)
                kv["dateObserved"] = _iso(ts)
        else:
            metric_keys = [m["key"] for m in (profile.metrics if profile else [])]
            if not own:  # what an imported entity said about itself is given back as it was
                kv["category"] = ["sensor"]
                kv["controlledProperty"] = [
                    CONTROLLED.get(k, k) for k in metric_keys if k != "battery"
                ]
                kv["refDeviceModel"] = DEVICE_MODEL_PREFIX + (profile.key if profile else "")
            if not own or fresh:
                kv["deviceState"] = states.get(d.id, "offline")
            if fresh or (not own and live):
                values = {m: v for m, (_, v) in live.items()}
                kv["value"] = _encode_value(values)
                if newest is not None:
                    kv["dateLastValueReported"] = _iso(newest)
                if "battery" in values:
                    kv["batteryLevel"] = round(values["battery"] / 100, 6)
        out.append(write_entity(eid, etype, kv, meta, form))
    return out
