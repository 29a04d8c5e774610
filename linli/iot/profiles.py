"""Built-in device profiles for community components and their default alarm rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.iot.models import DeviceProfile


def _m(
    key: str,
    unit: str = "",
    lo: float | None = None,
    hi: float | None = None,
    kind: str = "number",
    states: list[str] | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {"key": key, "unit": unit, "kind": kind}
    if lo is not None:
        d["min"] = lo
    if hi is not None:
        d["max"] = hi
    if states:
        d["states"] = states
    return d


B = "bool"

#: key -> (English name, Chinese name, category, report interval s, metrics, default rules)
BUILTIN: dict[str, tuple[str, str, str, int, list[dict[str, Any]], list[dict[str, Any]]]] = {
    "manhole_cover": (
        "Manhole cover",
        "井盖",
        "facility",
        300,
        [_m("tilt", "°", 0, 90), _m("displacement", "mm", 0, 500), _m("battery", "%", 0, 100)],
        [
            {
                "name": "Cover tilted or moved",
                "severity": "critical",
                "category": "facility",
                "condition": {
                    "kind": "any",
                    "conditions": [
                        {"kind": "threshold", "metric": "tilt", "op": ">", "value": 15, "clear": 5},
                        {
                            "kind": "threshold",
                            "metric": "displacement",
                            "op": ">",
                            "value": 20,
                            "clear": 5,
                        },
                    ],
                },
            },
            {
                "name": "Battery low",
                "severity": "warning",
                "category": "facility",
                "condition": {
                    "kind": "threshold",
                    "metric": "battery",
                    "op": "<",
                    "value": 15,
                    "clear": 25,
                },
            },
        ],
    ),
    "fire_hydrant": (
        "Fire hydrant",
        "消防栓",
        "fire_safety",
        300,
        [_m("pressure", "MPa", 0, 2.5), _m("leak", "", kind=B)],
        [
            {
                "name": "Water pressure low",
                "severity": "major",
                "category": "fire_safety",
                "condition": {
                    "kind": "duration",
                    "metric": "pressure",
                    "op": "<",
                    "value": 0.14,
                    "seconds": 120,
                    "clear": 0.18,
                },
            },
            {
                "name": "Hydrant leaking",
                "severity": "major",
                "category": "water",
                "condition": {"kind": "threshold", "metric": "leak", "op": "==", "value": 1},
            },
        ],
    ),
    "smoke_detector": (
        "Smoke detector",
        "烟感",
        "fire_safety",
        600,
        [_m("smoke", "", kind=B), _m("battery", "%", 0, 100)],
        [
            {
                "name": "Smoke detected",
                "severity": "critical",
                "category": "fire_safety",
                "condition": {"kind": "threshold", "metric": "smoke", "op": "==", "value": 1},
            },
            {
                "name": "Battery low",
                "severity": "warning",
                "category": "fire_safety",
                "condition": {
                    "kind": "threshold",
                    "metric": "battery",
                    "op": "<",
                    "value": 15,
                    "clear": 25,
                },
            },
        ],
    ),
    "water_leak": (
        "Water-leak sensor",
        "水浸传感器",
        "water",
        600,
        [_m("leak", "", kind=B)],
        [
            {
                "name": "Water leak",
                "severity": "major",
                "category": "water",
                "condition": {"kind": "threshold", "metric": "leak", "op": "==", "value": 1},
            }
        ],
    ),
    "street_light": (
        "Street light",
        "路灯",
        "lighting",
        300,
        [_m("on", "", kind=B), _m("fault", "", kind=B), _m("power", "W", 0, 1000)],
        [
            {
                "name": "Light fault",
                "severity": "minor",
                "category": "lighting",
                "condition": {"kind": "threshold", "metric": "fault", "op": "==", "value": 1},
            }
        ],
    ),
    "elevator": (
        "Elevator",
        "电梯",
        "elevator",
        30,
        [
            _m("running", "", kind=B),
            _m("fault_code", "", 0, 999),
            _m("trapped", "", kind=B),
            _m("floor", "", -5, 100),
        ],
        [
            {
                "name": "Passenger trapped",
                "severity": "critical",
                "category": "elevator",
                "condition": {"kind": "threshold", "metric": "trapped", "op": "==", "value": 1},
            },
            {
                "name": "Elevator fault",
                "severity": "major",
                "category": "elevator",
                "condition": {"kind": "threshold", "metric": "fault_code", "op": ">", "value": 0},
            },
        ],
    ),
    "ev_charger": (
        "EV charging point",
        "电动车充电桩",
        "electric",
        60,
        [_m("temperature", "°C", -40, 150), _m("current", "A", 0, 80)],
        [
            {
                "name": "Charger overheating",
                "severity": "critical",
                "category": "electric",
                "condition": {
                    "kind": "duration",
                    "metric": "temperature",
                    "op": ">",
                    "value": 65,
                    "seconds": 60,
                    "clear": 55,
                },
            },
            {
                "name": "Over-current",
                "severity": "major",
                "category": "electric",
                "condition": {
                    "kind": "threshold",
                    "metric": "current",
                    "op": ">",
                    "value": 32,
                    "clear": 28,
                },
            },
        ],
    ),
    "bin_level": (
        "Bin fill-level sensor",
        "垃圾桶满溢传感器",
        "sanitation",
        300,
        [_m("distance", "cm", 0, 300), _m("fill", "%", 0, 100)],
        [
            {
                "name": "Bin nearly full",
                "severity": "minor",
                "category": "sanitation",
                "condition": {
                    "kind": "threshold",
                    "metric": "fill",
                    "op": ">=",
                    "value": 90,
                    "clear": 60,
                },
            }
        ],
    ),
    "door_contact": ("Door contact", "门磁", "security", 600, [_m("open", "", kind=B)], []),
    "water_meter": (
        "Smart water meter",
        "智能水表",
        "water",
        300,
        [_m("flow", "L/min", 0, 200), _m("total", "m³", 0, 1e7)],
        [],
    ),
    "gateway": (
        "Gateway",
        "网关",
        "facility",
        60,
        [_m("rssi", "dBm", -130, 0), _m("uptime", "s", 0, 1e10)],
        [],
    ),
}

OFFLINE_FACTOR = 3  # a device is offline after three missed reports


def ensure_builtin_profiles(s: Session) -> dict[str, DeviceProfile]:
    """Create or update the built-in profiles (shared by every community). Idempotent."""
    existing = {
        p.key: p
        for p in s.scalars(select(DeviceProfile).where(DeviceProfile.community_id.is_(None)))
    }
    for key, (name, name_zh, category, interval, metrics, _rules) in BUILTIN.items():
        p = existing.get(key)
        if p is None:
            p = DeviceProfile(community_id=None, key=key)
            s.add(p)
            existing[key] = p
        p.name, p.name_zh, p.category, p.report_interval_s, p.metrics = (
            name,
            name_zh,
            category,
            interval,
            metrics,
        )
    s.flush()
    return existing


def default_rules(key: str) -> list[dict[str, Any]]:
    return list(BUILTIN[key][5]) if key in BUILTIN else []
