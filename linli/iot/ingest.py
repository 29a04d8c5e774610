"""Telemetry ingestion: validate, store (raw, roll-ups, latest), run the rules, raise alarms.

One ``Ingestor.process(batch)`` call is one database transaction. Raw samples are unique per
(device, metric, ts), and roll-ups, latest values and rules see only the rows actually
inserted — so a message delivered twice (QoS 1 after a crash) is stored once and counted
once. Bad messages never stop ingestion: they go to the dead-letter table with a reason and
are counted per device.

This is the hot path of facility monitoring (tens of thousands of messages a second on one
core), so storage bypasses the ORM: one ``executemany`` (SQLite) or one ``unnest`` statement
(PostgreSQL) per table per batch, with roll-ups and latest values aggregated in Python first.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.db import Database, utcnow
from linli.core.i18n import N_
from linli.iot import service
from linli.iot.models import DeadLetter, Device, DeviceProfile, Rule
from linli.iot.rules import CompiledRule, RuleEngine, Transition

log = logging.getLogger(__name__)

TOPIC_PREFIX = "linli/devices/"
MAX_PAYLOAD = 64 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=30)
_MAX_FUTURE_S = MAX_FUTURE.total_seconds()
_MAX_PAST_S = MAX_PAST.total_seconds()

#: why a message was refused (``DeadLetter.reason``)
REASONS = (
    "bad_topic",
    "unknown_device",
    "device_disabled",
    "too_large",
    "malformed",
    "bad_timestamp",
    "future_timestamp",
    "too_old",
    "unknown_metric",
    "wrong_type",
    "out_of_range",
)


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
    #: metric -> (kind, min, max, states) for the validation loop
    checks: dict[str, tuple[str, float | None, float | None, list[str]]] = field(
        default_factory=dict
    )


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

    def add(self, other: IngestStats, *, keep_rejections: int = 0) -> None:
        self.messages += other.messages
        self.accepted += other.accepted
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.alarms_raised += other.alarms_raised
        self.alarms_cleared += other.alarms_cleared
        room = keep_rejections - len(self.rejections)
        if room > 0:
            self.rejections.extend(other.rejections[:room])


def parse_topic(topic: str) -> tuple[str, str] | None:
    """``linli/devices/<key>/<kind>`` → (key, kind)."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    rest = topic[len(TOPIC_PREFIX) :].split("/", 1)
    if len(rest) != 2 or not rest[0]:
        return None
    return rest[0], rest[1]


def _parse_ts(raw: Any, received: datetime) -> datetime | Rejection:
    """A sample's time: epoch seconds or milliseconds, or ISO 8601; the reception time when
    absent. Refused when unreadable, more than 5 minutes ahead or more than 30 days old."""
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
    try:
        v = float(raw)
    except OverflowError:
        return Rejection("out_of_range", f"{spec['key']}: too large")
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


def _sqlite_ts(ts: datetime) -> str:
    """SQLAlchemy's SQLite text form of a UTC datetime ("YYYY-MM-DD HH:MM:SS.ffffff").
    Raw samples are unique on this text, so it must match what the ORM writes exactly."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(" ", "microseconds")  # (naive: twice as fast)


def _pg_ts(ts: datetime) -> str:
    """A UTC timestamp literal for PostgreSQL (text arrays adapt much faster than datetimes)."""
    return _sqlite_ts(ts) + "+00"


_BIG = 2**53
_INFINITIES = (math.inf, -math.inf)

#: samples on their way to the database: (device id, metric, time key) -> (value, time); the
#: time key is the text SQLite stores, or the datetime itself for PostgreSQL
_Rows = dict[tuple[int, str, Any], tuple[float, datetime]]


class Ingestor:
    """Validates and stores batches of device messages. Thread-safe: one batch at a time.

    Devices, profiles and rules are cached and reloaded every ``cache_seconds`` (or after
    :meth:`invalidate`); a message from a key the cache does not know triggers a reload, at
    most once a second, so a device registered a moment ago is not refused."""

    def __init__(
        self, db: Database, *, cache_seconds: float = 30.0, seen_interval: float = 0.0
    ) -> None:
        self.db = db
        self.engine = RuleEngine()
        self.cache_seconds = cache_seconds
        #: write a device's counters and last-seen time at most this often (seconds); the
        #: rest waits in memory for the next write or :meth:`flush`. 0: every batch.
        self.seen_interval = seen_interval
        self._seen_pending: dict[int, tuple[int, datetime | None]] = {}
        self._seen_written: dict[int, float] = {}
        self._staged: tuple[dict[int, tuple[int, datetime | None]], dict[int, float]] | None = None
        self._tuned: set[int] = set()
        self._devices: dict[str, _Device] = {}
        self._by_id: dict[int, _Device] = {}
        self._topics: dict[str, tuple[_Device, str]] = {}
        self._loaded_at = 0.0
        self._sqlite = db.engine.dialect.name == "sqlite"
        #: the text form of a time in raw rows and statements (also the dedup key)
        self._fmt = _sqlite_ts if self._sqlite else _pg_ts
        if self._sqlite:
            sa_event.listen(db.engine, "checkout", self._tune_connection)
        self._lock = threading.RLock()

    # -- device cache ----------------------------------------------------------------------

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _load(self, s: Session, *, force: bool = False) -> None:
        if not force and self._devices and time.monotonic() - self._loaded_at < self.cache_seconds:
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
            for r in by_device.get(d.id, []):  # device rules override profile rules by name
                merged[r.name] = r
            rules = list(merged.values())
            metrics = {m["key"]: m for m in prof.metrics}
            devices[d.key] = _Device(
                id=d.id,
                community_id=d.community_id,
                key=d.key,
                enabled=d.enabled,
                metrics=metrics,
                rules=[
                    CompiledRule(r.id, r.name, r.condition, r.severity, r.message) for r in rules
                ],
                rule_meta={r.id: r for r in rules},
                building_id=d.building_id,
                location=d.location,
                name=d.name,
                online=d.online,
                checks={
                    k: (
                        str(m.get("kind", "number")),
                        m.get("min"),
                        m.get("max"),
                        list(m.get("states") or []),
                    )
                    for k, m in metrics.items()
                },
            )
        self._devices = devices
        self._by_id = {d.id: d for d in devices.values()}
        self._topics = {}
        self._loaded_at = time.monotonic()
        # The open alarms are the truth about which rules are active: a restart does not
        # raise them twice, an alarm cleared by hand is raised again if its condition still
        # holds, and several ingesters sharing the devices converge.
        open_keys: set[tuple[int, int]] = set()
        for key in s.scalars(
            select(service.Alarm.dedup_key).where(
                service.Alarm.status.in_(("active", "acknowledged")),
                service.Alarm.dedup_key.like("rule:%"),
            )
        ):
            parts = key.split(":")
            if (
                len(parts) == 4
                and parts[2] == "device"
                and parts[1].isdigit()
                and parts[3].isdigit()
            ):
                open_keys.add((int(parts[1]), int(parts[3])))
        self.engine.sync_active(open_keys)

    def _route(self, topic: str) -> tuple[_Device, str] | None:
        hit = self._topics.get(topic)
        if hit is not None:
            return hit
        parsed = parse_topic(topic)
        if parsed is None:
            return None
        dev = self._devices.get(parsed[0])
        if dev is None:
            return None
        if len(self._topics) < 200_000:
            self._topics[topic] = (dev, parsed[1])
        return dev, parsed[1]

    # -- the batch ---------------------------------------------------------------------------

    def process(self, messages: Iterable[Message]) -> IngestStats:
        """Ingest messages in one transaction (each with its own reception time)."""
        return self._run([(m.topic, m.payload, m.received_at) for m in messages], None)

    def process_raw(
        self, items: Sequence[Sequence[Any]], received_at: datetime | None = None
    ) -> IngestStats:
        """Ingest messages received at the same moment, in one transaction: each item starts
        with (topic, payload) — the MQTT client's tuples are taken as they are."""
        return self._run(items, received_at or utcnow())

    def _run(self, items: Sequence[Sequence[Any]], received: datetime | None) -> IngestStats:
        stats = IngestStats()
        with self._lock:
            self._staged = None
            try:
                with self.db.session() as s:
                    self._tune(s)
                    self._load(s)
                    if self._needs_reload(items):
                        self._load(s, force=True)
                    self._process(s, items, stats, received)
            except Exception:
                # a device deleted meanwhile, a rule changed…: start the retry from fresh
                self.invalidate()
                raise
            if self._staged is not None:  # committed: the deferred device writes too
                self._seen_pending, written = self._staged
                self._seen_written.update(written)
                self._staged = None
        return stats

    def flush(self) -> None:
        """Write the device counters and last-seen times still waiting in memory."""
        with self._lock:
            if not self._seen_pending:
                return
            with self.db.session() as s:
                self._staged = None
                self._devices_seen(s, {}, {}, {}, {}, force=True)
            if self._staged is not None:
                self._seen_pending, written = self._staged
                self._seen_written.update(written)
                self._staged = None

    def _tune(self, s: Session) -> None:
        self._tune_connection(s.connection().connection.dbapi_connection)

    def _tune_connection(self, raw: Any, *_args: Any) -> None:
        """SQLite: a page cache that holds the hot index pages of a few thousand devices,
        and fewer, larger WAL checkpoints. Every connection of the engine gets it (once):
        under sustained ingestion, a connection left with the default checkpoint threshold
        (the server's event dispatcher, say) would run a checkpoint at each of its commits."""
        if not self._sqlite or raw is None or id(raw) in self._tuned:
            return
        raw.execute("PRAGMA cache_size = -65536")
        raw.execute("PRAGMA wal_autocheckpoint = 8000")
        self._tuned.add(id(raw))

    def _needs_reload(self, items: Sequence[Sequence[Any]]) -> bool:
        if time.monotonic() - self._loaded_at < 1.0:
            return False
        topics = self._topics
        for item in items:
            topic = item[0]
            if topic in topics:
                continue
            parsed = parse_topic(topic)
            if parsed is not None and parsed[0] not in self._devices:
                return True
        return False

    def _reject(
        self,
        s: Session,
        stats: IngestStats,
        topic: str,
        payload: bytes,
        received: datetime,
        dev: _Device | None,
        rej: Rejection,
        counts: dict[int, int],
    ) -> None:
        stats.rejected += 1
        stats.rejections.append((topic, rej.reason, rej.detail))
        s.add(
            DeadLetter(
                community_id=dev.community_id if dev else None,
                device_id=dev.id if dev else None,
                topic=topic[:300],
                payload=payload[:2000].decode("utf-8", "replace"),
                reason=rej.reason,
                detail=rej.detail[:500],
                received_at=received,
            )
        )
        if dev is not None:
            counts[dev.id] += 1

    def _process(
        self,
        s: Session,
        items: Sequence[Sequence[Any]],
        stats: IngestStats,
        fixed_received: datetime | None,
    ) -> None:
        rows: _Rows = {}
        rejected: dict[int, int] = defaultdict(int)
        accepted: dict[int, int] = defaultdict(int)
        heard: dict[int, datetime] = {}
        status_changes: dict[int, bool] = {}
        acks: list[tuple[_Device, dict[str, Any]]] = []
        fmt = self._fmt
        loads = _loads
        topics_get = self._topics.get
        fromtimestamp = datetime.fromtimestamp
        rec_epoch: dict[datetime, float] = {}
        n_accepted = 0

        def reject(dev: _Device | None, rej: Rejection) -> None:
            self._reject(s, stats, topic, payload, received, dev, rej, rejected)

        for item in items:
            topic = item[0]
            payload = item[1]
            received = fixed_received or item[2]
            route = topics_get(topic) or self._route(topic)
            if route is None:
                parsed = parse_topic(topic)
                if parsed is None:
                    reject(None, Rejection("bad_topic", topic[:100]))
                else:
                    reject(None, Rejection("unknown_device", parsed[0][:64]))
                continue
            dev, kind = route
            if not dev.enabled:
                reject(dev, Rejection("device_disabled"))
                continue
            if len(payload) > MAX_PAYLOAD:
                reject(dev, Rejection("too_large", f"{len(payload)} bytes"))
                continue
            try:
                doc = loads(payload)
            except (ValueError, UnicodeDecodeError, RecursionError):
                reject(dev, Rejection("malformed", "not JSON"))
                continue
            if type(doc) is not dict:
                reject(dev, Rejection("malformed", "not a JSON object"))
                continue
            if kind != "telemetry":
                if kind == "status":
                    online = doc.get("online")
                    if not isinstance(online, bool):
                        reject(dev, Rejection("malformed", "status needs online: true/false"))
                        continue
                    status_changes[dev.id] = online
                    if online:
                        heard[dev.id] = received
                elif kind == "commands/ack":
                    acks.append((dev, doc))
                    heard[dev.id] = received
                else:
                    reject(dev, Rejection("bad_topic", kind[:50]))
                    continue
                n_accepted += 1
                accepted[dev.id] += 1
                continue
            # -- telemetry: the time (fast path for epoch seconds) ------------------------
            raw_ts = doc.get("ts")
            if type(raw_ts) is float or (type(raw_ts) is int and 0 <= raw_ts < 2**53):
                epoch = float(raw_ts)
                if epoch > 1e11:  # milliseconds
                    epoch /= 1000.0
                rec = rec_epoch.get(received)
                if rec is None:
                    rec = rec_epoch[received] = received.timestamp()
                if not (rec - _MAX_PAST_S <= epoch <= rec + _MAX_FUTURE_S):
                    reject(dev, _ts_rejection(raw_ts, epoch, rec))
                    continue
                ts = fromtimestamp(epoch, UTC)
                tkey = fmt(ts)
            else:
                parsed_ts = _parse_ts(raw_ts, received)
                if isinstance(parsed_ts, Rejection):
                    reject(dev, parsed_ts)
                    continue
                ts = parsed_ts
                tkey = fmt(ts)
            # -- the values: all valid, or the whole message is refused --------------------
            values = doc.get("values")
            if values is None:
                values = {k: v for k, v in doc.items() if k not in ("ts", "seq")}
            if type(values) is not dict or not values:
                reject(dev, Rejection("malformed", "no values"))
                continue
            good: list[tuple[str, float]] = []
            bad: Rejection | None = None
            checks = dev.checks
            for k, raw in values.items():
                check = checks.get(k)
                if check is None:
                    bad = Rejection("unknown_metric", str(k)[:40])
                    break
                tp = type(raw)
                if check[0] == "number" and (tp is float or (tp is int and -_BIG < raw < _BIG)):
                    v = float(raw)
                    lo, hi = check[1], check[2]
                    if not (
                        v == v
                        and v not in _INFINITIES
                        and (lo is None or v >= lo)
                        and (hi is None or v <= hi)
                    ):
                        r = _value(dev.metrics[k], raw)
                        bad = r if isinstance(r, Rejection) else Rejection("wrong_type", k)
                        break
                    good.append((k, v))
                    continue
                r = _value(dev.metrics[k], raw)
                if isinstance(r, Rejection):
                    bad = r
                    break
                good.append((k, r))
            if bad is not None:  # never a bad value stored as good
                reject(dev, bad)
                continue
            did = dev.id
            for k, v in good:
                rows[(did, k, tkey)] = (v, ts)
            n_accepted += 1
            accepted[did] += 1
            prev = heard.get(did)
            if prev is None or received > prev:
                heard[did] = received
        stats.accepted = n_accepted
        stats.messages = len(items)
        inserted = self._store(s, rows)
        stats.samples = len(inserted)
        stats.duplicates = len(rows) - len(inserted)
        by_device = self._aggregate_and_write(s, inserted) if inserted else {}
        self._devices_seen(s, accepted, rejected, heard, status_changes)
        for dev_id, samples in by_device.items():
            dev = self._by_id[dev_id]
            if len(samples) > 1:
                samples.sort(key=_sample_time)
            for t in self.engine.evaluate(dev_id, dev.rules, samples):
                self._apply(s, dev, t, stats)
        for dev, doc in acks:
            cid = doc.get("id")
            if isinstance(cid, int) and not isinstance(cid, bool):
                device = s.get(Device, dev.id)
                if device is not None:
                    result = doc.get("result")
                    service.ack_command(
                        s,
                        device,
                        cid,
                        bool(doc.get("ok", True)),
                        result if isinstance(result, dict) else None,
                    )

    # -- storage: plain DB-API statements -----------------------------------------------------

    def _cursor(self, s: Session) -> Any:
        return s.connection().connection.cursor()

    def _store(self, s: Session, rows: _Rows) -> _Rows:
        """Insert raw samples; returns only those that were new (duplicates are skipped)."""
        if not rows:
            return rows
        if self._sqlite:
            # The common case, no duplicate: one executemany. A duplicate (a redelivery)
            # makes it fail; the statement below then tells which rows are new.
            nested = s.begin_nested()
            cur = self._cursor(s)  # (after begin_nested: this emits the SAVEPOINT)
            try:
                cur.executemany(
                    "INSERT INTO telemetry (device_id, metric, ts, value) VALUES (?,?,?,?)",
                    sorted((d, m, k, vt[0]) for (d, m, k), vt in rows.items()),
                )
            except sqlite3.IntegrityError:
                nested.rollback()
            else:
                nested.commit()
                return rows
            returned: list[tuple[int, str, Any]] = []
            items = list(rows.items())
            chunk = 2000
            for i in range(0, len(items), chunk):
                part = items[i : i + chunk]
                params: list[Any] = []
                for (d, m, k), (v, _t) in part:
                    params.extend((d, m, k, v))
                cur.execute(
                    "INSERT INTO telemetry (device_id, metric, ts, value) VALUES "
                    + ",".join(["(?,?,?,?)"] * len(part))
                    + " ON CONFLICT (device_id, metric, ts) DO NOTHING"
                    " RETURNING device_id, metric, ts",
                    params,
                )
                returned.extend(cur.fetchall())
        else:
            keys = list(rows)
            pg_params = (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [vt[0] for vt in rows.values()],
            )
            sql = (
                "INSERT INTO telemetry (device_id, metric, ts, value) "
                "SELECT * FROM unnest(%s::integer[], %s::varchar[], %s::timestamptz[],"
                " %s::float8[]) ON CONFLICT (device_id, metric, ts) DO NOTHING"
            )
            # the common case: every row is new, and COPY (the cheapest way in) succeeds;
            # a duplicate (a redelivery) makes it fail, and the statement below, with
            # RETURNING, tells which rows are new
            nested = s.begin_nested()
            cur = self._cursor(s)
            try:
                with cur.copy("COPY telemetry (device_id, metric, ts, value) FROM STDIN") as cp:
                    for (d, m, k), vt in sorted(rows.items()):
                        cp.write_row((d, m, k, vt[0]))
            except psycopg.errors.UniqueViolation:
                nested.rollback()
            else:
                nested.commit()
                return rows
            cur = self._cursor(s)
            cur.execute(sql + " RETURNING device_id, metric, ts", pg_params)
            returned = cur.fetchall()
        if len(returned) == len(rows):
            return rows
        if not self._sqlite:  # PostgreSQL returns datetimes: back to the text keys
            returned = [(d, m, _pg_ts(t.astimezone(UTC))) for d, m, t in returned]
        return {key: rows[key] for key in map(tuple, returned) if key in rows}

    def _aggregate_and_write(
        self, s: Session, inserted: _Rows
    ) -> dict[int, list[tuple[str, datetime, float]]]:
        """One pass over the new samples: 1-minute aggregates (the 1-hour ones are merged from
        them), the newest value of each metric, and the samples the rules must see. Then one
        statement per table. Returns the samples by device, for the rules."""
        sqlite = self._sqlite
        by_id = self._by_id
        minute: dict[tuple[int, str, Any], list[Any]] = {}
        by_device: dict[int, list[tuple[str, datetime, float]]] = {}
        for (d, m, k), (v, ts) in inserted.items():
            mk = (d, m, k[:16])
            a = minute.get(mk)
            if a is None:
                # vmin, vmax, vsum, count, newest time, its value, its key
                minute[mk] = [v, v, v, 1, ts, v, k]
            else:
                if v < a[0]:
                    a[0] = v
                if v > a[1]:
                    a[1] = v
                a[2] += v
                a[3] += 1
                if ts > a[4]:
                    a[4], a[5], a[6] = ts, v, k
            dev = by_id.get(d)
            if dev is not None and dev.rules:
                lst = by_device.get(d)
                if lst is None:
                    by_device[d] = [(m, ts, v)]
                else:
                    lst.append((m, ts, v))
        hour: dict[tuple[int, str, Any], list[float]] = {}
        latest: dict[tuple[int, str], list[Any]] = {}
        for (d, m, b), a in minute.items():
            hk = (d, m, b[:13])
            h = hour.get(hk)
            if h is None:
                hour[hk] = [a[0], a[1], a[2], a[3]]
            else:
                if a[0] < h[0]:
                    h[0] = a[0]
                if a[1] > h[1]:
                    h[1] = a[1]
                h[2] += a[2]
                h[3] += a[3]
            lk = (d, m)
            cur_latest = latest.get(lk)
            if cur_latest is None or a[4] > cur_latest[4]:
                latest[lk] = a
        # a fixed order of rows: concurrent ingesters lock them in the same order, no deadlock
        rollups: list[tuple[int, str, str, Any, float, float, float, int]] = []
        m_end, h_end = (":00.000000", ":00:00.000000") if sqlite else (":00+00", ":00:00+00")
        for (d, m, b), a in sorted(minute.items()):
            rollups.append((d, m, "m", b + m_end, a[0], a[1], a[2], a[3]))
        for (d, m, b), h in sorted(hour.items()):
            rollups.append((d, m, "h", b + h_end, h[0], h[1], h[2], int(h[3])))
        newest = sorted((d, m, a[6], a[5]) for (d, m), a in latest.items())
        cur = self._cursor(s)
        if sqlite:
            cur.executemany(
                "INSERT INTO telemetry_rollups "
                "(device_id, metric, period, bucket, vmin, vmax, vsum, count) "
                "VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT (device_id, metric, period, bucket) DO UPDATE SET "
                "vmin = min(telemetry_rollups.vmin, excluded.vmin), "
                "vmax = max(telemetry_rollups.vmax, excluded.vmax), "
                "vsum = telemetry_rollups.vsum + excluded.vsum, "
                "count = telemetry_rollups.count + excluded.count",
                rollups,
            )
            cur.executemany(
                "INSERT INTO telemetry_latest (device_id, metric, ts, value) VALUES (?,?,?,?) "
                "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, "
                "value = excluded.value WHERE telemetry_latest.ts < excluded.ts",
                newest,
            )
            return by_device
        cur.execute(
            "INSERT INTO telemetry_rollups "
            "(device_id, metric, period, bucket, vmin, vmax, vsum, count) "
            "SELECT * FROM unnest(%s::integer[], %s::varchar[], %s::varchar[],"
            " %s::timestamptz[], %s::float8[], %s::float8[], %s::float8[], %s::integer[]) "
            "ON CONFLICT (device_id, metric, period, bucket) DO UPDATE SET "
            "vmin = LEAST(telemetry_rollups.vmin, excluded.vmin), "
            "vmax = GREATEST(telemetry_rollups.vmax, excluded.vmax), "
            "vsum = telemetry_rollups.vsum + excluded.vsum, "
            "count = telemetry_rollups.count + excluded.count",
            [list(col) for col in zip(*rollups, strict=True)],
        )
        cur.execute(
            "INSERT INTO telemetry_latest (device_id, metric, ts, value) "
            "SELECT * FROM unnest(%s::integer[], %s::varchar[], %s::timestamptz[],"
            " %s::float8[]) "
            "ON CONFLICT (device_id, metric) DO UPDATE SET ts = excluded.ts, "
            "value = excluded.value WHERE telemetry_latest.ts < excluded.ts",
            [list(col) for col in zip(*newest, strict=True)],
        )
        return by_device

    def _devices_seen(
        self,
        s: Session,
        accepted: dict[int, int],
        rejected: dict[int, int],
        heard: dict[int, datetime],
        status: dict[int, bool],
        *,
        force: bool = False,
    ) -> None:
        """Counters, last-seen time (when a message was last accepted from the device) and
        online state of the devices in the batch: one statement, whatever their number.

        With ``seen_interval``, a device whose row was written less than that long ago and
        has nothing but accepted messages waits: its count and time are kept in memory
        (staged, adopted once the batch commits) and written with a later batch."""
        pending = dict(self._seen_pending)
        written: dict[int, float] = {}
        now = time.monotonic()
        interval = self.seen_interval
        last_written = self._seen_written
        ids = set(accepted) | set(rejected) | set(status) | set(heard)
        if pending:
            ids.update(d for d in pending if force or now - last_written.get(d, -1e18) >= interval)
        if not ids:
            return
        params: list[tuple[int, int, int, Any, bool | None]] = []
        for dev_id in sorted(ids):
            online = status.get(dev_id, True if dev_id in heard else None)
            dev = self._by_id.get(dev_id)
            changed = online is not None and dev is not None and dev.online != online
            if changed and dev is not None:
                dev.online = bool(online)
                events.emit(
                    s,
                    f"iot.device.{'online' if online else 'offline'}",
                    {"id": dev_id, "key": dev.key},
                    community_id=dev.community_id,
                )
            acc = accepted.get(dev_id, 0)
            seen = heard.get(dev_id)
            waiting = pending.pop(dev_id, None)
            if waiting is not None:
                acc += waiting[0]
                if waiting[1] is not None and (seen is None or waiting[1] > seen):
                    seen = waiting[1]
            if (
                interval
                and not force
                and not changed
                and dev_id not in rejected
                and dev_id not in status
                and now - last_written.get(dev_id, -1e18) < interval
            ):
                pending[dev_id] = (acc, seen)
                continue
            written[dev_id] = now
            params.append(
                (
                    dev_id,
                    acc,
                    rejected.get(dev_id, 0),
                    self._fmt(seen) if seen is not None else None,
                    online,
                )
            )
        self._staged = (pending, written)
        if not params:
            return
        cur = self._cursor(s)
        if self._sqlite:
            cur.executemany(
                "UPDATE devices SET accepted_count = accepted_count + ?2, "
                "rejected_count = rejected_count + ?3, "
                "last_seen_at = CASE WHEN ?1 IS NULL THEN last_seen_at "
                "WHEN last_seen_at IS NULL OR last_seen_at < ?1 THEN ?1 ELSE last_seen_at END, "
                "online = coalesce(?4, online) WHERE id = ?5",
                [(seen, acc, rej, onl, did) for did, acc, rej, seen, onl in params],
            )
            return
        cur.execute(
            "UPDATE devices AS d SET accepted_count = d.accepted_count + u.acc, "
            "rejected_count = d.rejected_count + u.rej, "
            "last_seen_at = CASE WHEN u.seen IS NULL THEN d.last_seen_at "
            "WHEN d.last_seen_at IS NULL OR d.last_seen_at < u.seen THEN u.seen "
            "ELSE d.last_seen_at END, "
            "online = coalesce(u.onl, d.online) "
            "FROM unnest(%s::integer[], %s::bigint[], %s::integer[], %s::timestamptz[],"
            " %s::boolean[]) AS u(id, acc, rej, seen, onl) WHERE d.id = u.id",
            (
                [p[0] for p in params],
                [p[1] for p in params],
                [p[2] for p in params],
                [p[3] for p in params],
                [p[4] for p in params],
            ),
        )

    # -- rules and alarms -----------------------------------------------------------------------

    def _apply(self, s: Session, dev: _Device, t: Transition, stats: IngestStats) -> None:
        rule = dev.rule_meta.get(t.rule_id)
        if rule is None:
            return
        key = f"rule:{rule.id}:device:{dev.id}"
        if t.action == "raise":
            params: dict[str, Any] | None = None
            if rule.message:
                message = rule.message
            else:
                message = N_("%(device)s: %(rule_msg)s")
                params = {"device": dev.name, "rule_msg": rule.name}
            wo = None
            if rule.create_work_order:
                wo = {
                    "category": rule.category,
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
                params=params,
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
        with self._lock:
            try:
                self.flush()
                with self.db.session() as s:
                    self._sweep(s, now, stats)
            except Exception:
                self.invalidate()
                raise
        return stats

    def _sweep(self, s: Session, now: datetime, stats: IngestStats) -> None:
        self._load(s, force=True)
        seen = {
            i: last or created
            for i, last, created in s.execute(
                select(Device.id, Device.last_seen_at, Device.created_at)
            )
        }
        items = []
        for dev in self._devices.values():
            if dev.enabled and any(r.kind == "missing" for r in dev.rules):
                # a device never heard from counts from its registration
                items.append((dev.id, seen.get(dev.id), dev.rules))
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


_decoder = json.JSONDecoder()
_scan = _decoder.scan_once  # type: ignore[attr-defined]


def _loads(payload: bytes) -> Any:
    """json.loads for bytes, without its encoding detection (payloads are UTF-8)."""
    text = payload.decode()
    try:
        obj, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)  # trailing white space is fine, anything else is refused
    return obj


def _sample_time(sample: tuple[str, datetime, float]) -> datetime:
    return sample[1]


def _ts_rejection(raw: Any, epoch: float, received: float) -> Rejection:
    try:
        shown = datetime.fromtimestamp(epoch, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return Rejection("bad_timestamp", str(raw)[:80])
    if epoch > received:
        return Rejection("future_timestamp", shown)
    return Rejection("too_old", shown)


SYSTEM = audit.Actor.system("ingest")
