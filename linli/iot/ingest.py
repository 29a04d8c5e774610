"""Telemetry ingestion: validate, store (raw, roll-ups, latest), run the rules, raise alarms.

One ``Ingestor.process(batch)`` call is one database transaction. Raw samples are unique per
(device, metric, ts) and inserted with ON CONFLICT DO NOTHING ... RETURNING, and roll-ups are
computed only from the rows actually inserted — so a message delivered twice (QoS 1 after a
crash) is stored once and counted once. Bad messages never stop ingestion: they go to the
dead-letter table with a reason and are counted per device.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, bindparam, case, select, update
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.db import Database, UTCDateTime, utcnow
from linli.iot import service
from linli.iot.models import DeadLetter, Device, DeviceProfile, Rule
from linli.iot.rules import CompiledRule, RuleEngine, Transition

TOPIC_PREFIX = "linli/devices/"
MAX_PAYLOAD = 64 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=30)


@dataclass
class Message:
    topic: str
    payload: bytes
    received_at: datetime = field(default_factory=utcnow)


@dataclass
class Rejection:
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class _RuleMeta:
    id: int
    community_id: int
    profile_id: int | None
    device_id: int | None
    name: str
    condition: dict[str, Any]
    severity: str
    message: str | None
    category: str
    create_work_order: bool

    @classmethod
    def of(cls, r: Rule) -> _RuleMeta:
        return cls(
            r.id,
            r.community_id,
            r.profile_id,
            r.device_id,
            r.name,
            dict(r.condition),
            r.severity,
            r.message,
            r.category,
            r.create_work_order,
        )


@dataclass
class _Device:
    id: int
    community_id: int
    key: str
    enabled: bool
    metrics: dict[str, dict[str, Any]]
    rules: list[CompiledRule]
    rule_meta: dict[int, _RuleMeta]
    building_id: int | None
    location: str | None
    name: str
    online: bool


@dataclass
class IngestStats:
    messages: int = 0
    accepted: int = 0
    samples: int = 0
    duplicates: int = 0
    rejected: int = 0
    alarms_raised: int = 0
    alarms_cleared: int = 0
    rejections: list[tuple[str, str, str]] = field(default_factory=list)  # topic, reason, detail


def parse_topic(topic: str) -> tuple[str, str] | None:
    """``linli/devices/<key>/<kind>`` → (key, kind)."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    rest = topic[len(TOPIC_PREFIX) :].split("/", 1)
    if len(rest) != 2 or not rest[0]:
        return None
    return rest[0], rest[1]


def _parse_ts(raw: Any, received: datetime) -> datetime | Rejection:
    if raw is None:
        return received
    try:
        if isinstance(raw, bool):
            raise ValueError
        if isinstance(raw, int | float):
            value = float(raw)
            if value > 1e11:  # milliseconds
                value /= 1000.0
            ts = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(raw, str) and len(raw) <= 40:
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        return Rejection("bad_timestamp", str(raw)[:80])
    if ts - received > MAX_FUTURE:
        return Rejection("future_timestamp", ts.isoformat())
    if received - ts > MAX_PAST:
        return Rejection("too_old", ts.isoformat())
    return ts.astimezone(UTC)


def _value(spec: dict[str, Any], raw: Any) -> float | Rejection:
    kind = spec.get("kind", "number")
    if kind == "bool":
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        if isinstance(raw, int) and raw in (0, 1):
            return float(raw)
        return Rejection("wrong_type", f"{spec['key']}: expected true/false")
    if kind == "enum":
        states = spec.get("states") or []
        if isinstance(raw, str) and raw in states:
            return float(states.index(raw))
        return Rejection("wrong_type", f"{spec['key']}: expected one of {states}")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return Rejection("wrong_type", f"{spec['key']}: expected a number")
    v = float(raw)
    if math.isnan(v) or math.isinf(v):
        return Rejection("wrong_type", f"{spec['key']}: not a finite number")
    lo, hi = spec.get("min"), spec.get("max")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return Rejection("out_of_range", f"{spec['key']}={v} outside [{lo}, {hi}]")
    return v


def _bucket(ts: datetime, period: str) -> datetime:
    if period == "m":
        return ts.replace(second=0, microsecond=0)
    return ts.replace(minute=0, second=0, microsecond=0)


class Ingestor:
    def __init__(self, db: Database, *, cache_seconds: float = 30.0) -> None:
        self.db = db
        self.engine = RuleEngine()
        self.cache_seconds = cache_seconds
        self._devices: dict[str, _Device] = {}
        self._by_id: dict[int, _Device] = {}
        self._loaded_at = 0.0
        self._seeded = False
        self._sqlite = db.engine.dialect.name == "sqlite"

    # -- device cache ----------------------------------------------------------------------

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _load(self, s: Session) -> None:
        if time.monotonic() - self._loaded_at < self.cache_seconds and self._devices:
            return
        profiles = {p.id: p for p in s.scalars(select(DeviceProfile))}
        all_rules = [
            _RuleMeta.of(r)
            for r in s.scalars(select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.id))
        ]
        by_profile: dict[tuple[int, int | None], list[_RuleMeta]] = defaultdict(list)
        by_device: dict[int, list[_RuleMeta]] = defaultdict(list)
        for r in all_rules:
            if r.device_id is not None:
                by_device[r.device_id].append(r)
            else:
                by_profile[(r.community_id, r.profile_id)].append(r)
        devices: dict[str, _Device] = {}
        for d in s.scalars(select(Device)):
            prof = profiles[d.profile_id]
            merged: dict[str, _RuleMeta] = {
                r.name: r for r in by_profile.get((d.community_id, d.profile_id), [])
            }
            for r in by_device.get(
                d.id, []
            ):  # device rules override profile rules of the same name
                merged[r.name] = r
            rules = list(merged.values())
            devices[d.key] = _Device(
                id=d.id,
                community_id=d.community_id,
                key=d.key,
                enabled=d.enabled,
                metrics={m["key"]: m for m in prof.metrics},
                rules=[
                    CompiledRule(r.id, r.name, r.condition, r.severity, r.message) for r in rules
                ],
                rule_meta={r.id: r for r in rules},
                building_id=d.building_id,
                location=d.location,
                name=d.name,
                online=d.online,
            )
        self._devices = devices
        self._by_id = {d.id: d for d in devices.values()}
        self._loaded_at = time.monotonic()
        if not self._seeded:
            # open alarms seed the rule state, so a restart does not raise them twice
            for key in s.scalars(
                select(service.Alarm.dedup_key).where(
                    service.Alarm.status.in_(("active", "acknowledged"))
                )
            ):
                parts = key.split(":")
                if len(parts) == 4 and parts[0] == "rule" and parts[2] == "device":
                    self.engine.mark_active(int(parts[1]), int(parts[3]))
            self._seeded = True

    # -- the batch ---------------------------------------------------------------------------

    def process(self, messages: Iterable[Message]) -> IngestStats:
        stats = IngestStats()
        with self.db.session() as s:
            self._load(s)
            self._process(s, list(messages), stats)
        return stats

    def _reject(
        self,
        s: Session,
        stats: IngestStats,
        msg: Message,
        dev: _Device | None,
        rej: Rejection,
        counts: dict[int, int],
    ) -> None:
        stats.rejected += 1
        stats.rejections.append((msg.topic, rej.reason, rej.detail))
        s.add(
            DeadLetter(
                community_id=dev.community_id if dev else None,
                device_id=dev.id if dev else None,
                topic=msg.topic[:300],
                payload=msg.payload[:2000].decode("utf-8", "replace"),
                reason=rej.reason,
                detail=rej.detail[:500],
                received_at=msg.received_at,
            )
        )
        if dev is not None:
            counts[dev.id] += 1

    def _process(self, s: Session, messages: list[Message], stats: IngestStats) -> None:
        rows: dict[tuple[int, str, datetime], float] = {}
        rejected_per_device: dict[int, int] = defaultdict(int)
        accepted_per_device: dict[int, int] = defaultdict(int)
        last_seen: dict[int, datetime] = {}
        status_changes: dict[int, bool] = {}
        acks: list[tuple[_Device, dict[str, Any]]] = []
        for msg in messages:
            stats.messages += 1
            parsed = parse_topic(msg.topic)
            dev = self._devices.get(parsed[0]) if parsed else None
            if parsed is None:
                self._reject(
                    s,
                    stats,
                    msg,
                    None,
                    Rejection("bad_topic", msg.topic[:100]),
                    rejected_per_device,
                )
                continue
            if dev is None:
                self._reject(
                    s,
                    stats,
                    msg,
                    None,
                    Rejection("unknown_device", parsed[0][:64]),
                    rejected_per_device,
                )
                continue
            if not dev.enabled:
                self._reject(s, stats, msg, dev, Rejection("device_disabled"), rejected_per_device)
                continue
            if len(msg.payload) > MAX_PAYLOAD:
                self._reject(
                    s,
                    stats,
                    msg,
                    dev,
                    Rejection("too_large", f"{len(msg.payload)} bytes"),
                    rejected_per_device,
                )
                continue
            try:
                doc = json.loads(msg.payload)
            except (ValueError, UnicodeDecodeError):
                self._reject(
                    s, stats, msg, dev, Rejection("malformed", "not JSON"), rejected_per_device
                )
                continue
            if not isinstance(doc, dict):
                self._reject(
                    s,
                    stats,
                    msg,
                    dev,
                    Rejection("malformed", "not a JSON object"),
                    rejected_per_device,
                )
                continue
            kind = parsed[1]
            if kind == "status":
                online = doc.get("online")
                if isinstance(online, bool):
                    status_changes[dev.id] = online
                    stats.accepted += 1
                else:
                    self._reject(
                        s,
                        stats,
                        msg,
                        dev,
                        Rejection("malformed", "status needs online: true/false"),
                        rejected_per_device,
                    )
                continue
            if kind == "commands/ack":
                acks.append((dev, doc))
                stats.accepted += 1
                continue
            if kind != "telemetry":
                self._reject(
                    s, stats, msg, dev, Rejection("bad_topic", kind[:50]), rejected_per_device
                )
                continue
            ts = _parse_ts(doc.get("ts"), msg.received_at)
            if isinstance(ts, Rejection):
                self._reject(s, stats, msg, dev, ts, rejected_per_device)
                continue
            values = doc.get("values", {k: v for k, v in doc.items() if k not in ("ts", "seq")})
            if not isinstance(values, dict) or not values:
                self._reject(
                    s, stats, msg, dev, Rejection("malformed", "no values"), rejected_per_device
                )
                continue
            good: list[tuple[str, float]] = []
            bad: Rejection | None = None
            for k, raw in values.items():
                spec = dev.metrics.get(k)
                if spec is None:
                    bad = Rejection("unknown_metric", str(k)[:40])
                    break
                v = _value(spec, raw)
                if isinstance(v, Rejection):
                    bad = v
                    break
                good.append((k, v))
            if bad is not None:  # the whole message is refused: never a bad value stored as good
                self._reject(s, stats, msg, dev, bad, rejected_per_device)
                continue
            for k, v in good:
                rows[(dev.id, k, ts)] = v
            stats.accepted += 1
            accepted_per_device[dev.id] += 1
            if dev.id not in last_seen or ts > last_seen[dev.id]:
                last_seen[dev.id] = max(ts, last_seen.get(dev.id, ts))
        inserted = self._store(s, rows)
        stats.samples = len(inserted)
        stats.duplicates = len(rows) - len(inserted)
        self._rollup(s, inserted)
        self._latest(s, inserted)
        self._devices_seen(s, accepted_per_device, rejected_per_device, last_seen, status_changes)
        self._run_rules(s, inserted, stats)
        for dev, doc in acks:
            cid = doc.get("id")
            if isinstance(cid, int):
                service.ack_command(
                    s,
                    s.get(Device, dev.id),
                    cid,
                    bool(doc.get("ok", True)),  # type: ignore[arg-type]
                    doc.get("result") if isinstance(doc.get("result"), dict) else None,
                )

    # -- storage: plain DB-API statements, the hot path of ingestion -------------------------

    def _fmt(self, ts: datetime) -> Any:
        # SQLite stores datetimes as text in SQLAlchemy's format; PostgreSQL takes datetimes.
        return ts.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else ts

    def _store(
        self, s: Session, rows: dict[tuple[int, str, datetime], float]
    ) -> list[tuple[int, str, datetime, float]]:
        """Insert raw samples; returns only those that were new (duplicates are skipped)."""
        if not rows:
            return []
        cur = s.connection().connection.cursor()
        ph = "?" if self._sqlite else "%s"
        keyed = {(d, m, self._fmt(t)): (d, m, t, v) for (d, m, t), v in rows.items()}
        items = list(keyed.items())
        out: list[tuple[int, str, datetime, float]] = []
        chunk = 2000
        for i in range(0, len(items), chunk):
            part = items[i : i + chunk]
            values = ",".join([f"({ph},{ph},{ph},{ph})"] * len(part))
            params: list[Any] = []
            for (_d, _m, tsf), (d, m, _t, v) in part:
                params.extend((d, m, tsf, v))
            cur.execute(
                f"INSERT INTO telemetry (device_id, metric, ts, value) VALUES {values} "
                "ON CONFLICT (device_id, metric, ts) DO NOTHING RETURNING device_id, metric, ts",
                params,
            )
            for d, m, tsf in cur.fetchall():
                if not self._sqlite:
                    tsf = tsf.astimezone(UTC)
                    key = (d, m, tsf)
                    hit = keyed.get(key)
                else:
                    hit = keyed.get((d, m, tsf))
                if hit is not None:
                    out.append(hit)
        return out

    def _rollup(self, s: Session, inserted: list[tuple[int, str, datetime, float]]) -> None:
        if not inserted:
            return
        agg: dict[tuple[int, str, str, datetime], list[float]] = {}
        for d, m, ts, v in inserted:
            for period in ("m", "h"):
                k = (d, m, period, _bucket(ts, period))
                a = agg.get(k)
                if a is None:
                    agg[k] = [v, v, v, 1]
                else:
                    if v < a[0]:
                        a[0] = v
                    if v > a[1]:
                        a[1] = v
                    a[2] += v
                    a[3] += 1
        ph = "?" if self._sqlite else "%s"
        least, greatest = ("min", "max") if self._sqlite else ("LEAST", "GREATEST")
        sql = (
            "INSERT INTO telemetry_rollups "
            "(device_id, metric, period, bucket, vmin, vmax, vsum, count) "
            f"VALUES ({ph},{ph},{ph},{ph},{ph},{ph},{ph},{ph}) "
            "ON CONFLICT (device_id, metric, period, bucket) DO UPDATE SET "
            f"vmin = {least}(telemetry_rollups.vmin, excluded.vmin), "
            f"vmax = {greatest}(telemetry_rollups.vmax, excluded.vmax), "
            "vsum = telemetry_rollups.vsum + excluded.vsum, "
            "count = telemetry_rollups.count + excluded.count"
        )
        params = [
            (d, m, p, self._fmt(b), a[0], a[1], a[2], int(a[3])) for (d, m, p, b), a in agg.items()
        ]
        s.connection().connection.cursor().executemany(sql, params)

    def _latest(self, s: Session, inserted: list[tuple[int, str, datetime, float]]) -> None:
        if not inserted:
            return
        newest: dict[tuple[int, str], tuple[datetime, float]] = {}
        for d, m, ts, v in inserted:
            cur = newest.get((d, m))
            if cur is None or ts > cur[0]:
                newest[(d, m)] = (ts, v)
        ph = "?" if self._sqlite else "%s"
        sql = (
            "INSERT INTO telemetry_latest (device_id, metric, ts, value) "
            f"VALUES ({ph},{ph},{ph},{ph}) ON CONFLICT (device_id, metric) "
            "DO UPDATE SET ts = excluded.ts, value = excluded.value "
            "WHERE telemetry_latest.ts < excluded.ts"
        )
        params = [(d, m, self._fmt(ts), v) for (d, m), (ts, v) in newest.items()]
        s.connection().connection.cursor().executemany(sql, params)

    def _devices_seen(
        self,
        s: Session,
        accepted: dict[int, int],
        rejected: dict[int, int],
        last_seen: dict[int, datetime],
        status: dict[int, bool],
    ) -> None:
        """Counters, last-seen time and online state of every device in the batch: one
        executemany UPDATE, whatever the number of devices."""
        params = []
        for dev_id in set(accepted) | set(rejected) | set(status):
            online = status.get(dev_id, True if dev_id in last_seen else None)
            dev = self._by_id.get(dev_id)
            if online is not None and dev is not None and dev.online != online:
                dev.online = online
                events.emit(
                    s,
                    f"iot.device.{'online' if online else 'offline'}",
                    {"id": dev_id, "key": dev.key},
                    community_id=dev.community_id,
                )
            params.append(
                {
                    "did": dev_id,
                    "acc": accepted.get(dev_id, 0),
                    "rej": rejected.get(dev_id, 0),
                    "seen": last_seen.get(dev_id),
                    "onl": online,
                }
            )
        if not params:
            return
        t = Device.__table__
        seen = bindparam("seen", type_=UTCDateTime())
        onl = bindparam("onl", type_=Boolean())
        stmt = (
            update(t)
            .where(t.c.id == bindparam("did"))
            .values(
                accepted_count=t.c.accepted_count + bindparam("acc"),
                rejected_count=t.c.rejected_count + bindparam("rej"),
                last_seen_at=case(
                    (
                        seen.is_not(None)
                        & (t.c.last_seen_at.is_(None) | (t.c.last_seen_at < seen)),
                        seen,
                    ),
                    else_=t.c.last_seen_at,
                ),
                online=case((onl.is_(None), t.c.online), else_=onl),
            )
        )
        s.connection().execute(stmt, params)

    def _run_rules(
        self, s: Session, inserted: list[tuple[int, str, datetime, float]], stats: IngestStats
    ) -> None:
        by_device: dict[int, list[tuple[str, datetime, float]]] = defaultdict(list)
        for d, m, ts, v in inserted:
            by_device[d].append((m, ts, v))
        by_id = self._by_id
        for dev_id, samples in by_device.items():
            dev = by_id.get(dev_id)
            if dev is None or not dev.rules:
                continue
            samples.sort(key=lambda x: x[1])
            for t in self.engine.evaluate(dev_id, dev.rules, samples):
                self._apply(s, dev, t, stats)

    def _apply(self, s: Session, dev: _Device, t: Transition, stats: IngestStats) -> None:
        rule = dev.rule_meta.get(t.rule_id)
        if rule is None:
            return
        key = f"rule:{rule.id}:device:{dev.id}"
        if t.action == "raise":
            message = rule.message or f"{dev.name}: {rule.name}"
            wo = None
            if rule.create_work_order:
                wo = {
                    "category": rule.category,
                    "title": message,
                    "description": f"{rule.name} ({dev.key})",
                    "building_id": dev.building_id,
                    "location": dev.location,
                }
            _, created = service.raise_alarm(
                s,
                community_id=dev.community_id,
                dedup_key=key,
                kind=rule.name,
                severity=rule.severity,
                message=message,
                device_id=dev.id,
                rule_id=rule.id,
                value=t.value,
                at=t.at,
                work_order=wo,
            )
            stats.alarms_raised += int(created)
        else:
            if service.clear_alarm_by_key(s, dev.community_id, key, "rule", t.at) is not None:
                stats.alarms_cleared += 1

    # -- heartbeat ------------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> IngestStats:
        """Missing-data rules (offline devices) and command time-outs; run every few seconds."""
        now = now or utcnow()
        stats = IngestStats()
        with self.db.session() as s:
            self._load(s)
            seen = dict(s.execute(select(Device.id, Device.last_seen_at)).all())
            created = dict(s.execute(select(Device.id, Device.created_at)).all())
            items = []
            for dev in self._devices.values():
                if any(r.kind == "missing" for r in dev.rules):
                    # a device never heard from counts from its registration
                    items.append((dev.id, seen.get(dev.id) or created.get(dev.id), dev.rules))
            for t in self.engine.sweep_missing(now, items):
                dev = self._by_id[t.device_id]
                self._apply(s, dev, t, stats)
                if t.action == "raise" and dev.online:
                    dev.online = False
                    s.execute(update(Device).where(Device.id == dev.id).values(online=False))
                    events.emit(
                        s,
                        "iot.device.offline",
                        {"id": dev.id, "key": dev.key},
                        community_id=dev.community_id,
                    )
            service.expire_commands(s, now)
        return stats


SYSTEM = audit.Actor.system("ingest")
