"""Facility monitoring logic: devices, rules, alarms, telemetry queries, commands."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.i18n import platform_language, render, render_in
from linli.core.roles import Perm
from linli.core.security import token_hash, token_matches
from linli.core.web import Ctx
from linli.iot.models import (
    Alarm,
    Command,
    DeadLetter,
    Device,
    DeviceProfile,
    LatestValue,
    Rule,
    Telemetry,
    TelemetryRollup,
)
from linli.iot.profiles import default_rules, ensure_builtin_profiles
from linli.iot.rules import RuleError, validate_condition
from linli.people.models import Building
from linli.workorders import service as workorders

SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2, "warning": 3, "info": 4}


# -- profiles and devices -----------------------------------------------------------------


def profiles(s: Session, ctx: Ctx) -> list[DeviceProfile]:
    ensure_builtin_profiles(s)
    q = select(DeviceProfile).where(
        (DeviceProfile.community_id.is_(None)) | (DeviceProfile.community_id == ctx.community_id)
    )
    return list(s.scalars(q.order_by(DeviceProfile.key)))


def get_profile(s: Session, ctx: Ctx, profile_id: int) -> DeviceProfile:
    p = s.get(DeviceProfile, profile_id)
    if p is None or p.community_id not in (None, ctx.community_id):
        raise NotFound("Device profile not found.", field="profile_id")
    return p


def profile_by_key(s: Session, ctx: Ctx, key: str) -> DeviceProfile:
    for p in profiles(s, ctx):
        if p.key == key:
            return p
    raise NotFound("Device profile not found.", field="profile")


def list_devices(s: Session, ctx: Ctx, profile_key: str | None = None) -> list[Device]:
    ctx.require(Perm.IOT_READ)
    q = select(Device).where(Device.community_id == ctx.community_id)
    if profile_key:
        q = q.join(DeviceProfile, Device.profile_id == DeviceProfile.id).where(
            DeviceProfile.key == profile_key
        )
    return list(s.scalars(q.order_by(Device.name)))


def get_device(s: Session, ctx: Ctx, device_id: int) -> Device:
    ctx.require(Perm.IOT_READ)
    d = s.get(Device, device_id)
    if d is None or d.community_id != ctx.community_id:
        raise NotFound("Device not found.", code="device_not_found")
    return d


def _ensure_profile_rules(s: Session, community_id: int, profile: DeviceProfile) -> None:
    have = s.scalar(
        select(func.count()).where(Rule.community_id == community_id, Rule.profile_id == profile.id)
    )
    if have:
        return
    for r in default_rules(profile.key):
        s.add(
            Rule(
                community_id=community_id,
                profile_id=profile.id,
                name=r["name"],
                condition=r["condition"],
                severity=r["severity"],
                category=r["category"],
                create_work_order=True,
            )
        )
    s.add(
        Rule(
            community_id=community_id,
            profile_id=profile.id,
            name="Device offline",
            condition={"kind": "missing", "seconds": profile.report_interval_s * 3},
            severity="minor",
            category=profile.category,
            create_work_order=profile.category in ("fire_safety", "elevator"),
        )
    )
    s.flush()


def create_device(
    s: Session,
    ctx: Ctx,
    *,
    name: str,
    profile_id: int,
    key: str | None = None,
    building_id: int | None = None,
    location: str | None = None,
    map_x: float | None = None,
    map_y: float | None = None,
    attributes: dict[str, Any] | None = None,
    secret: str | None = None,
) -> tuple[Device, str]:
    """Register a device. Returns it with its MQTT secret (shown once; stored hashed)."""
    ctx.require(Perm.IOT_MANAGE)
    profile = get_profile(s, ctx, profile_id)
    if building_id is not None:
        b = s.get(Building, building_id)
        if b is None or b.community_id != ctx.community_id:
            raise NotFound("Building not found.", field="building_id")
    key = key or f"{profile.key[:12]}-{secrets.token_hex(4)}"
    if s.scalar(select(Device.id).where(Device.key == key)) is not None:
        raise Conflict("A device with this key already exists.", field="key")
    secret = secret or secrets.token_urlsafe(18)
    d = Device(
        community_id=ctx.community_id,
        profile_id=profile.id,
        key=key,
        name=name,
        secret_hash=token_hash(secret),  # random secret: a fast hash is enough
        building_id=building_id,
        location=location,
        map_x=map_x,
        map_y=map_y,
        attributes=attributes or {},
    )
    s.add(d)
    s.flush()
    _ensure_profile_rules(s, ctx.community_id, profile)
    audit.record(
        s,
        ctx.actor,
        "device.created",
        "device",
        d.id,
        community_id=ctx.community_id,
        details={"key": key, "profile": profile.key},
    )
    events.emit(s, "iot.device.created", {"id": d.id, "key": key}, community_id=ctx.community_id)
    return d, secret


def check_device_secret(s: Session, key: str, secret: str) -> Device | None:
    d = s.scalar(select(Device).where(Device.key == key))
    if d is None or not d.enabled or not token_matches(secret, d.secret_hash):
        return None
    return d


# -- rules ---------------------------------------------------------------------------------


def rules_for_device(s: Session, device: Device) -> list[Rule]:
    """Profile rules of the community, with device rules of the same name overriding them."""
    q = select(Rule).where(
        Rule.community_id == device.community_id,
        Rule.enabled.is_(True),
        ((Rule.profile_id == device.profile_id) & Rule.device_id.is_(None))
        | (Rule.device_id == device.id),
    )
    by_name: dict[str, Rule] = {}
    for r in s.scalars(q.order_by(Rule.id)):
        if r.device_id is not None or r.name not in by_name:
            by_name[r.name] = r
    return list(by_name.values())


def list_rules(s: Session, ctx: Ctx) -> list[Rule]:
    ctx.require(Perm.IOT_READ)
    return list(
        s.scalars(select(Rule).where(Rule.community_id == ctx.community_id).order_by(Rule.id))
    )


def save_rule(
    s: Session,
    ctx: Ctx,
    *,
    name: str,
    condition: dict[str, Any],
    severity: str,
    profile_id: int | None = None,
    device_id: int | None = None,
    category: str = "facility",
    create_work_order: bool = True,
    message: str | None = None,
    rule_id: int | None = None,
) -> Rule:
    ctx.require(Perm.IOT_MANAGE)
    if (profile_id is None) == (device_id is None):
        raise ValidationFailed("A rule is for a profile or for one device.", field="profile_id")
    if severity not in SEVERITY_ORDER:
        raise ValidationFailed("Unknown severity.", field="severity")
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("Give the rule a name (100 characters at most).", field="name")
    if device_id is not None:
        profile = s.get(DeviceProfile, get_device(s, ctx, device_id).profile_id)
    else:
        assert profile_id is not None
        profile = get_profile(s, ctx, profile_id)
    assert profile is not None
    try:
        validate_condition(condition, [m["key"] for m in profile.metrics])
    except RuleError as exc:
        raise ValidationFailed(
            "The condition is not valid: %(reason)s", params={"reason": str(exc)}, field="condition"
        ) from None
    if rule_id is None:
        rule = Rule(community_id=ctx.community_id)
        s.add(rule)
    else:
        found = s.get(Rule, rule_id)
        if found is None or found.community_id != ctx.community_id:
            raise NotFound("Rule not found.")
        rule = found
    rule.name, rule.condition, rule.severity = name.strip(), condition, severity
    rule.profile_id, rule.device_id, rule.category = profile_id, device_id, category
    rule.create_work_order, rule.message = create_work_order, message
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "rule.saved",
        "rule",
        rule.id,
        community_id=ctx.community_id,
        details={"condition": condition},
    )
    events.emit(s, "iot.rule.saved", {"id": rule.id}, community_id=ctx.community_id)
    return rule


# -- alarms --------------------------------------------------------------------------------


def raise_alarm(
    s: Session,
    *,
    community_id: int,
    dedup_key: str,
    kind: str,
    severity: str,
    message: str,
    device_id: int | None = None,
    rule_id: int | None = None,
    value: float | None = None,
    source: str = "iot",
    at: datetime | None = None,
    work_order: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[Alarm, bool]:
    """Raise an alarm, or count one more occurrence of the open alarm with the same key.
    Returns (alarm, created). With ``work_order`` (category, title…) a work order is opened
    for a new alarm. Every module raises its alarms here (cameras, care, waste, flow…).

    With ``params`` the ``message`` is a msgid marked with ``N_()`` and ``%(name)s``
    placeholders: the stored text (and a work order's default title) is rendered in the
    platform's default language, and pages show it in each reader's language through
    :func:`alarm_text`. A message without ``params`` is stored as given."""
    at = at or utcnow()
    details = dict(details or {})
    if params is not None:
        details["msg"] = {"id": message, "params": params}
        message = render_in(platform_language(), message, params)
    open_alarm = s.scalar(
        select(Alarm).where(
            Alarm.community_id == community_id,
            Alarm.dedup_key == dedup_key,
            Alarm.status.in_(("active", "acknowledged")),
        )
    )
    if open_alarm is not None:
        open_alarm.occurrences += 1
        open_alarm.last_seen_at = at
        open_alarm.value = value if value is not None else open_alarm.value
        return open_alarm, False
    alarm = Alarm(
        community_id=community_id,
        device_id=device_id,
        rule_id=rule_id,
        dedup_key=dedup_key,
        source=source,
        kind=kind,
        severity=severity,
        message=message[:300],
        value=value,
        started_at=at,
        last_seen_at=at,
        details=details,
    )
    nested = s.begin_nested()
    s.add(alarm)
    try:
        s.flush()
    except IntegrityError:
        # another process opened the same alarm a moment ago (the partial unique index)
        nested.rollback()
        other = s.scalar(
            select(Alarm).where(
                Alarm.community_id == community_id,
                Alarm.dedup_key == dedup_key,
                Alarm.status.in_(("active", "acknowledged")),
            )
        )
        if other is None:
            raise
        other.occurrences += 1
        other.last_seen_at = at
        return other, False
    nested.commit()
    if work_order is not None:
        device = s.get(Device, device_id) if device_id else None
        wo = workorders.create_order(
            s,
            community_id,
            workorders.NewOrder(
                category=work_order.get("category", "facility"),
                title=work_order.get("title", message)[:200],
                severity=severity,
                description=work_order.get("description"),
                building_id=work_order.get("building_id")
                or (device.building_id if device else None),
                grid_id=work_order.get("grid_id"),
                location=work_order.get("location") or (device.location if device else None),
                source="alarm",
                source_ref=f"alarm:{alarm.id}",
                requester_resident_id=work_order.get("requester_resident_id"),
            ),
            audit.Actor.system("alarms"),
            now=at,
        )
        alarm.work_order_id = wo.id
    events.emit(s, "iot.alarm.raised", alarm_payload(alarm), community_id=community_id)
    return alarm, True


#: alarm kind -> its title (a msgid); each domain registers the kinds it raises
ALARM_KINDS: dict[str, str] = {}


def register_alarm_kind(kind: str, title: str) -> None:
    """Name an alarm kind for the console: ``register_alarm_kind("care.inactive",
    N_("No sign of activity"))`` at import time of the domain that raises it."""
    ALARM_KINDS[kind] = title


def alarm_kind_title(kind: str) -> str:
    """The title of an alarm kind in the reader's language (a rule's name for rule alarms)."""
    from linli.core.i18n import gettext

    return gettext(ALARM_KINDS.get(kind, kind))


def alarm_text(a: Alarm) -> str:
    """The alarm's message in the reader's language when it was raised with ``params``."""
    msg = (a.details or {}).get("msg")
    if isinstance(msg, dict) and isinstance(msg.get("id"), str):
        try:
            return render(msg["id"], dict(msg.get("params") or {}))
        except (KeyError, ValueError, TypeError):
            return a.message
    return a.message


def alarm_payload(a: Alarm) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "severity": a.severity,
        "status": a.status,
        "message": alarm_text(a),
        "device_id": a.device_id,
        "value": a.value,
        "started_at": a.started_at.isoformat(),
        "work_order_id": a.work_order_id,
    }


def clear_alarm_by_key(
    s: Session, community_id: int, dedup_key: str, by: str, at: datetime | None = None
) -> Alarm | None:
    a = s.scalar(
        select(Alarm).where(
            Alarm.community_id == community_id,
            Alarm.dedup_key == dedup_key,
            Alarm.status.in_(("active", "acknowledged")),
        )
    )
    if a is None:
        return None
    a.status = "cleared"
    a.cleared_at = at or utcnow()
    a.cleared_by = by
    events.emit(s, "iot.alarm.cleared", alarm_payload(a), community_id=community_id)
    return a


def get_alarm(s: Session, ctx: Ctx, alarm_id: int) -> Alarm:
    ctx.require(Perm.IOT_READ)
    a = s.get(Alarm, alarm_id)
    if a is None or a.community_id != ctx.community_id:
        raise NotFound("Alarm not found.", code="alarm_not_found")
    return a


def acknowledge(s: Session, ctx: Ctx, alarm_id: int) -> Alarm:
    ctx.require(Perm.ALARMS_HANDLE)
    a = get_alarm(s, ctx, alarm_id)
    if a.status != "active":
        raise Conflict("Only an active alarm can be acknowledged.", code="bad_transition")
    a.status = "acknowledged"
    a.acknowledged_at = utcnow()
    a.acknowledged_by = ctx.user_id
    audit.record(s, ctx.actor, "alarm.acknowledged", "alarm", a.id, community_id=ctx.community_id)
    events.emit(s, "iot.alarm.acknowledged", alarm_payload(a), community_id=ctx.community_id)
    return a


def clear(s: Session, ctx: Ctx, alarm_id: int) -> Alarm:
    ctx.require(Perm.ALARMS_HANDLE)
    a = get_alarm(s, ctx, alarm_id)
    if a.status == "cleared":
        raise Conflict("The alarm is already cleared.", code="bad_transition")
    a.status = "cleared"
    a.cleared_at = utcnow()
    a.cleared_by = ctx.actor.name
    audit.record(s, ctx.actor, "alarm.cleared", "alarm", a.id, community_id=ctx.community_id)
    events.emit(s, "iot.alarm.cleared", alarm_payload(a), community_id=ctx.community_id)
    return a


def list_alarms(
    s: Session, ctx: Ctx, *, status: str | None = None, open_only: bool = False, limit: int = 200
) -> list[Alarm]:
    ctx.require(Perm.IOT_READ)
    q = select(Alarm).where(Alarm.community_id == ctx.community_id)
    if open_only:
        q = q.where(Alarm.status.in_(("active", "acknowledged")))
    elif status:
        q = q.where(Alarm.status == status)
    rows = list(s.scalars(q.order_by(Alarm.id.desc()).limit(limit)))
    rows.sort(key=lambda a: (a.status == "cleared", SEVERITY_ORDER.get(a.severity, 9), -a.id))
    return rows


# -- telemetry queries -----------------------------------------------------------------------


def latest(s: Session, ctx: Ctx, device_id: int) -> dict[str, tuple[datetime, float]]:
    get_device(s, ctx, device_id)
    q = select(LatestValue).where(LatestValue.device_id == device_id)
    return {lv.metric: (lv.ts, lv.value) for lv in s.scalars(q)}


def series(
    s: Session,
    ctx: Ctx,
    device_id: int,
    metric: str,
    start: datetime,
    end: datetime,
    max_points: int = 1500,
) -> dict[str, Any]:
    """Chart data for any range: raw samples for short ranges, 1-minute roll-ups up to a few
    days, 1-hour roll-ups beyond — so a query stays fast with months of data."""
    get_device(s, ctx, device_id)
    if end <= start:
        raise ValidationFailed("The end of the range must be after its start.", field="end")
    if (end - start) > timedelta(days=800):
        raise ValidationFailed("The range is too long (800 days at most).", field="start")
    span = (end - start).total_seconds()
    if span <= 6 * 3600:
        q = (
            select(Telemetry.ts, Telemetry.value)
            .where(
                Telemetry.device_id == device_id,
                Telemetry.metric == metric,
                Telemetry.ts >= start,
                Telemetry.ts < end,
            )
            .order_by(Telemetry.ts)
        )
        pts = [[t.isoformat(), v, v, v] for t, v in s.execute(q)]
        if pts:
            return {"resolution": "raw", "points": pts[-max_points * 4 :]}
        # older than the raw retention (or nothing yet): the roll-ups may still have it
    period = "m" if span <= 3 * 86400 else "h"
    return _rollup_series(s, device_id, metric, start, end, max_points, period)


def _rollup_series(
    s: Session,
    device_id: int,
    metric: str,
    start: datetime,
    end: datetime,
    max_points: int,
    period: str,
) -> dict[str, Any]:
    q2 = (
        select(
            TelemetryRollup.bucket,
            TelemetryRollup.vmin,
            TelemetryRollup.vmax,
            TelemetryRollup.vsum,
            TelemetryRollup.count,
        )
        .where(
            and_(
                TelemetryRollup.device_id == device_id,
                TelemetryRollup.metric == metric,
                TelemetryRollup.period == period,
                TelemetryRollup.bucket >= start,
                TelemetryRollup.bucket < end,
            )
        )
        .order_by(TelemetryRollup.bucket)
    )
    rows = s.execute(q2).all()
    if not rows and period == "m":  # past the 1-minute retention: hours
        return _rollup_series(s, device_id, metric, start, end, max_points, "h")
    step = max(1, len(rows) // max_points + (1 if len(rows) % max_points else 0))
    pts = []
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        total = sum(r[4] for r in chunk)
        pts.append(
            [
                chunk[0][0].isoformat(),
                sum(r[3] for r in chunk) / total if total else None,
                min(r[1] for r in chunk),
                max(r[2] for r in chunk),
            ]
        )
    return {"resolution": "1m" if period == "m" else "1h", "step": step, "points": pts}


@dataclass
class Purged:
    raw: int = 0
    minute: int = 0
    hour: int = 0
    dead_letters: int = 0


def purge_telemetry(
    s: Session,
    *,
    raw_days: int,
    minute_days: int,
    hour_days: int = 0,
    dead_letter_days: int = 30,
    now: datetime | None = None,
) -> Purged:
    """Retention: raw samples older than ``raw_days``, 1-minute roll-ups older than
    ``minute_days``, 1-hour roll-ups older than ``hour_days`` (0 keeps them) and dead letters
    older than ``dead_letter_days`` are deleted. Raw samples go one (device, metric) at a
    time, each a range of the primary key, so no index on time alone is needed and no
    statement holds many locks; the caller commits."""
    now = now or utcnow()
    out = Purged()
    cuts = {"m": now - timedelta(days=minute_days)}
    if hour_days > 0:
        cuts["h"] = now - timedelta(days=hour_days)
    raw_cut = now - timedelta(days=raw_days)
    for device_id, metric in s.execute(select(LatestValue.device_id, LatestValue.metric)).all():
        res = s.execute(
            delete(Telemetry).where(
                Telemetry.device_id == device_id,
                Telemetry.metric == metric,
                Telemetry.ts < raw_cut,
            )
        )
        out.raw += res.rowcount or 0  # type: ignore[attr-defined]
        for period, cut in cuts.items():
            res = s.execute(
                delete(TelemetryRollup).where(
                    TelemetryRollup.device_id == device_id,
                    TelemetryRollup.metric == metric,
                    TelemetryRollup.period == period,
                    TelemetryRollup.bucket < cut,
                )
            )
            n = res.rowcount or 0  # type: ignore[attr-defined]
            if period == "m":
                out.minute += n
            else:
                out.hour += n
    res = s.execute(
        delete(DeadLetter).where(DeadLetter.received_at < now - timedelta(days=dead_letter_days))
    )
    out.dead_letters = res.rowcount or 0  # type: ignore[attr-defined]
    return out


def dead_letters(s: Session, ctx: Ctx, limit: int = 200) -> list[DeadLetter]:
    ctx.require(Perm.IOT_READ)
    q = select(DeadLetter).where(DeadLetter.community_id == ctx.community_id)
    return list(s.scalars(q.order_by(DeadLetter.id.desc()).limit(limit)))


# -- commands --------------------------------------------------------------------------------

CommandSender = Callable[[Device, Command], bool]
_sender: CommandSender | None = None


def set_command_sender(sender: CommandSender | None) -> None:
    """The MQTT connection registers how commands reach devices."""
    global _sender
    _sender = sender


def send_command(
    s: Session, ctx: Ctx, device_id: int, name: str, params: dict[str, Any], timeout_s: int = 10
) -> Command:
    ctx.require(Perm.DEVICES_COMMAND)
    d = get_device(s, ctx, device_id)
    return issue_command(s, d, name, params, ctx.actor, timeout_s)


def issue_command(
    s: Session,
    d: Device,
    name: str,
    params: dict[str, Any],
    actor: audit.Actor,
    timeout_s: int = 10,
) -> Command:
    """Record a command and publish it (``linli/<community>/devices/<key>/commands``). Other
    modules (gates, barriers, bin lids) call this with a system actor."""
    if not name or len(name) > 50:
        raise ValidationFailed("A command needs a name (50 characters at most).", field="name")
    if not 1 <= timeout_s <= 3600:
        raise ValidationFailed("The timeout is from 1 to 3600 seconds.", field="timeout_s")
    cmd = Command(
        community_id=d.community_id,
        device_id=d.id,
        name=name,
        params=params,
        requested_by=actor.name,
        timeout_s=timeout_s,
        status="pending",
    )
    s.add(cmd)
    s.flush()
    if _sender is not None and _sender(d, cmd):
        cmd.status = "sent"
        cmd.sent_at = utcnow()
    audit.record(
        s,
        actor,
        "device.command",
        "device",
        d.id,
        community_id=d.community_id,
        details={"command": name, "id": cmd.id},
    )
    events.emit(
        s,
        "iot.command.issued",
        {"id": cmd.id, "device_id": d.id, "name": name},
        community_id=d.community_id,
    )
    return cmd


def ack_command(
    s: Session, device: Device, command_id: int, ok: bool, result: dict[str, Any] | None
) -> Command | None:
    cmd = s.get(Command, command_id)
    if cmd is None or cmd.device_id != device.id or cmd.status not in ("pending", "sent"):
        return None
    cmd.status = "acked" if ok else "failed"
    cmd.acked_at = utcnow()
    cmd.result = result
    events.emit(
        s,
        f"iot.command.{'acked' if ok else 'failed'}",
        {"id": cmd.id, "device_id": device.id, "name": cmd.name},
        community_id=cmd.community_id,
    )
    return cmd


def expire_commands(s: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    n = 0
    for cmd in s.scalars(select(Command).where(Command.status.in_(("pending", "sent")))):
        started = cmd.sent_at or cmd.created_at
        if (now - started).total_seconds() > cmd.timeout_s:
            cmd.status = "timeout"
            events.emit(
                s,
                "iot.command.timeout",
                {"id": cmd.id, "device_id": cmd.device_id, "name": cmd.name},
                community_id=cmd.community_id,
            )
            n += 1
    return n


def to_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- registry upkeep, states and queries for the web side ----------------------------------

DEVICE_STATES = ("ok", "alarm", "offline")


def update_device(s: Session, ctx: Ctx, device_id: int, **changes: Any) -> Device:
    """Change a device's name, place, attributes or enabled flag (only the keys given)."""
    ctx.require(Perm.IOT_MANAGE)
    d = get_device(s, ctx, device_id)
    allowed = {"name", "building_id", "location", "map_x", "map_y", "attributes", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed("These fields cannot be changed here.", field=sorted(unknown)[0])
    if changes.get("building_id") is not None:
        b = s.get(Building, changes["building_id"])
        if b is None or b.community_id != ctx.community_id:
            raise NotFound("Building not found.", field="building_id")
    for k, v in changes.items():
        setattr(d, k, v if k != "attributes" else dict(v or {}))
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "device.updated",
        "device",
        d.id,
        community_id=ctx.community_id,
        details={"fields": sorted(changes)},
    )
    events.emit(s, "iot.device.updated", {"id": d.id, "key": d.key}, community_id=ctx.community_id)
    return d


def device_states(
    s: Session, ctx: Ctx, devices: list[Device], now: datetime | None = None
) -> dict[int, str]:
    """ok | alarm | offline for each device: an open alarm (other than the device's own
    "no data" alarm) wins; then a disabled, silent or never-heard device is offline."""
    now = now or utcnow()
    ids = [d.id for d in devices]
    if not ids:
        return {}
    alarmed: set[int] = set()
    q = (
        select(Alarm.device_id, Rule.condition)
        .outerjoin(Rule, Alarm.rule_id == Rule.id)
        .where(
            Alarm.community_id == ctx.community_id,
            Alarm.device_id.in_(ids),
            Alarm.status.in_(("active", "acknowledged")),
        )
    )
    for dev_id, cond in s.execute(q):
        if not (isinstance(cond, dict) and cond.get("kind") == "missing"):
            alarmed.add(dev_id)
    intervals = dict(s.execute(select(DeviceProfile.id, DeviceProfile.report_interval_s)).all())
    out: dict[int, str] = {}
    for d in devices:
        interval = intervals.get(d.profile_id, 60)
        stale = d.last_seen_at is None or (now - d.last_seen_at).total_seconds() > interval * 3
        if d.id in alarmed:
            out[d.id] = "alarm"
        elif not d.enabled or not d.online or stale:
            out[d.id] = "offline"
        else:
            out[d.id] = "ok"
    return out


def list_commands(s: Session, ctx: Ctx, device_id: int, limit: int = 50) -> list[Command]:
    get_device(s, ctx, device_id)
    q = select(Command).where(Command.device_id == device_id).order_by(Command.id.desc())
    return list(s.scalars(q.limit(limit)))


def get_command(s: Session, ctx: Ctx, command_id: int) -> Command:
    ctx.require(Perm.IOT_READ)
    c = s.get(Command, command_id)
    if c is None or c.community_id != ctx.community_id:
        raise NotFound("Command not found.", code="command_not_found")
    return c


def save_profile(
    s: Session,
    ctx: Ctx,
    *,
    key: str,
    name: str,
    name_zh: str,
    category: str,
    metrics: list[dict[str, Any]],
    report_interval_s: int,
    profile_id: int | None = None,
) -> DeviceProfile:
    """A community's own device profile (the built-in ones are shared and read-only)."""
    ctx.require(Perm.IOT_MANAGE)
    builtin = ensure_builtin_profiles(s)
    if profile_id is None:
        if key in builtin:
            raise Conflict("A built-in profile has this key.", field="key")
        taken = s.scalar(
            select(DeviceProfile.id).where(
                DeviceProfile.community_id == ctx.community_id, DeviceProfile.key == key
            )
        )
        if taken is not None:
            raise Conflict("A profile with this key already exists.", field="key")
        p = DeviceProfile(community_id=ctx.community_id, key=key)
        s.add(p)
    else:
        p = get_profile(s, ctx, profile_id)
        if p.community_id is None:
            raise Forbidden("Built-in profiles cannot be changed.", code="builtin_profile")
        if p.key != key:
            raise ValidationFailed("The key of a profile cannot be changed.", field="key")
    p.name, p.name_zh, p.category = name, name_zh, category
    p.metrics, p.report_interval_s = metrics, report_interval_s
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "device_profile.saved",
        "device_profile",
        p.id,
        community_id=ctx.community_id,
        details={"key": key},
    )
    return p
