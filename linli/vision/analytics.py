"""Zones, lines and the event rules of video analytics; the per-camera analyzer.

Geometry is in **normalised coordinates**: ``(x, y)`` with ``x`` the fraction of the
image width from the left and ``y`` the fraction of the height from the top, both
in 0..1. A zone drawn on a browser snapshot therefore applies at any resolution.
Points outside 0..1 are rejected with :class:`ConfigError` ``zone_outside_frame``
or ``line_outside_frame``.

The rules, evaluated on confirmed tracks (see :mod:`linli.vision.tracking`):

``line_crossing``
    a track's anchor point moves from one side of a line segment to the other.
    Direction ``in`` is from the *left-hand* side of the directed line ``a -> b`` to
    its *right-hand* side as seen on the picture (for a line drawn left to right,
    ``in`` means moving down the picture); ``out`` is the reverse. A hysteresis
    band around the line stops jitter from counting twice.
``intrusion``
    a person inside a restricted zone during its set hours (once per visit).
``loitering``
    a person stays in a zone for ``seconds`` or more (once per visit).
``gathering``
    more than ``max_people`` people in a zone for ``seconds`` (again only after the
    count has dropped back to ``max_people`` or fewer).
``motion``
    foreground (MOG2 background subtraction) covers at least ``min_area`` of a
    zone during its set hours (at most one event per ``cooldown_s``).
``tailgating``
    more people cross a gate line (in the given direction) than access grants were
    recorded for it: each passage consumes one grant from ``window_s`` before it to
    ``grace_s`` after it; a passage left without a grant ``grace_s`` later is an
    event.

Typical use by the safety domain's worker::

    analyzer = CameraAnalyzer(CameraConfig.from_dict(camera.analytics_json))
    for frame in iter_frames(camera.url, fps=2):
        for event in analyzer.process(frame.image, frame.ts):
            publish(event.to_dict())

Time stamps are seconds since the epoch (UTC) or aware datetimes; set hours are
read in the camera's time zone (default Asia/Shanghai). Rules never read the
clock themselves, so tests drive them with any time line.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from linli.vision.people import (
    Box,
    DetectorConfig,
    PersonDetection,
    PersonDetector,
    VisionInputError,
    as_bgr_uint8,
)
from linli.vision.tracking import Tracker, TrackerConfig, TrackSnapshot, appearance

if TYPE_CHECKING:
    from collections.abc import Callable

    from linli.vision.video import Backoff, CameraWorker, StreamConfig

Point = tuple[float, float]
Direction = Literal["in", "out"]

#: tolerance for coordinates a browser rounds slightly outside 0..1
_EDGE_EPS = 1e-6

REASONS: dict[str, str] = {
    "bad_config": "The analytics settings are not valid",
    "bad_id": "Zone and line ids must be 1-64 letters, digits, '-', '_' or '.'",
    "duplicate_id": "Two zones or lines have the same id",
    "zone_outside_frame": (
        "A zone point is outside the frame (coordinates are fractions of the image "
        "width and height, from 0 to 1)"
    ),
    "line_outside_frame": (
        "A line end is outside the frame (coordinates are fractions of the image "
        "width and height, from 0 to 1)"
    ),
    "zone_too_few_points": "A zone needs at least 3 points",
    "zone_zero_area": "A zone has no area (its points lie on one line)",
    "zone_self_intersecting": "A zone's edges cross each other",
    "line_too_short": "A line's two ends are (almost) the same point",
    "bad_hours": "Hours must look like '22:00-06:00', optionally with days",
    "bad_timezone": "Unknown time zone",
    "bad_rule": "A rule setting is out of range",
    "unknown_line": "No such line on this camera",
}


class ConfigError(VisionInputError):
    """Invalid camera analytics settings; ``code`` is a key of :data:`REASONS`."""

    def __init__(self, code: str, detail: str = "", **params: Any) -> None:
        self.code = code
        self.params = params
        base = REASONS.get(code, code)
        self.message = f"{base}: {detail}" if detail else base
        ValueError.__init__(self, self.message)


# --------------------------------------------------------------------------- geometry


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def polygon_area(poly: Sequence[Point]) -> float:
    """Unsigned area (shoelace formula) in normalised units."""
    s = 0.0
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def point_in_polygon(p: Point, poly: Sequence[Point]) -> bool:
    """True when ``p`` is inside ``poly`` or on its boundary (even-odd rule)."""
    x, y = p
    n = len(poly)
    inside = False
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        # on an edge counts as inside
        eps = 1e-12
        if (
            abs(_cross(a, b, p)) < eps
            and min(a[0], b[0]) - eps <= x <= max(a[0], b[0]) + eps
            and min(a[1], b[1]) - eps <= y <= max(a[1], b[1]) + eps
        ):
            return True
        if (a[1] > y) != (b[1] > y):
            xi = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < xi:
                inside = not inside
    return inside


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when segment p1-p2 meets segment q1-q2 (touching counts)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on_seg(a: Point, b: Point, c: Point) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(
            a[1], b[1]
        )

    return (
        (d1 == 0 and on_seg(q1, q2, p1))
        or (d2 == 0 and on_seg(q1, q2, p2))
        or (d3 == 0 and on_seg(p1, p2, q1))
        or (d4 == 0 and on_seg(p1, p2, q2))
    )


def signed_distance(p: Point, a: Point, b: Point) -> float:
    """Distance of ``p`` from the infinite line a->b; > 0 on its right-hand side.

    "Right-hand" as seen on the picture (y grows downwards): for a line drawn from
    left to right, points below it are positive.
    """
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    return _cross(a, b, p) / length if length > 0 else 0.0


def polygon_is_simple(poly: Sequence[Point]) -> bool:
    """True when no two non-adjacent edges of ``poly`` meet."""
    n = len(poly)
    for i in range(n):
        a1, a2 = poly[i], poly[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or (i + 1) % n == j:
                continue
            if segments_intersect(a1, a2, poly[j], poly[(j + 1) % n]):
                return False
    return True


# --------------------------------------------------------------------------- hours

_DAY_NAMES = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_time(h: str, m: str, text: str) -> time:
    hh, mm = int(h), int(m)
    if hh == 24 and mm == 0:
        return time(23, 59, 59, 999999)
    if not (0 <= hh <= 23 and 0 <= mm <= 59):
        raise ConfigError("bad_hours", repr(text))
    return time(hh, mm)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Daily window ``start``-``end`` (local time); ``end <= start`` runs past midnight.

    ``days`` (0 = Monday) are the days on which the window *starts*; the part after
    midnight of an overnight window belongs to the day before.
    """

    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))

    @classmethod
    def parse(cls, spec: Any) -> TimeWindow:
        if isinstance(spec, str):
            text, days_spec = spec, None
        elif isinstance(spec, Mapping):
            text = f"{spec.get('start', '')}-{spec.get('end', '')}"
            days_spec = spec.get("days")
        else:
            raise ConfigError("bad_hours", repr(spec))
        m = _HOURS_RE.match(text)
        if not m:
            raise ConfigError("bad_hours", repr(text))
        start = _parse_time(m.group(1), m.group(2), text)
        end = _parse_time(m.group(3), m.group(4), text)
        days: set[int] = set()
        if days_spec is None:
            days = set(range(7))
        else:
            if isinstance(days_spec, str | int):
                days_spec = [days_spec]
            for d in days_spec:
                if isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6:
                    days.add(d)
                elif isinstance(d, str) and d[:3].lower() in _DAY_NAMES:
                    days.add(_DAY_NAMES[d[:3].lower()])
                else:
                    raise ConfigError("bad_hours", f"day {d!r}")
        return cls(start, end, frozenset(days))

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        wd = local.weekday()
        if self.start < self.end:
            return wd in self.days and self.start <= t < self.end
        # overnight (or the whole day when start == end)
        if t >= self.start:
            return wd in self.days
        return t < self.end and (wd - 1) % 7 in self.days

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M") if self.end != time(23, 59, 59, 999999) else "24:00",
            "days": sorted(self.days),
        }


@dataclass(frozen=True, slots=True)
class Hours:
    """A set of daily windows; empty means *always*."""

    windows: tuple[TimeWindow, ...] = ()

    @classmethod
    def parse(cls, spec: Any) -> Hours:
        if spec is None:
            return cls()
        if isinstance(spec, str | Mapping):
            spec = [spec]
        if not isinstance(spec, Iterable):
            raise ConfigError("bad_hours", repr(spec))
        return cls(tuple(TimeWindow.parse(s) for s in spec))

    @property
    def always(self) -> bool:
        return not self.windows

    def active(self, local: datetime) -> bool:
        return self.always or any(w.contains(local) for w in self.windows)

    def to_list(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.windows]


# --------------------------------------------------------------------------- config


def _num(
    d: Mapping[str, Any],
    key: str,
    default: float,
    *,
    lo: float = 0.0,
    lo_open: bool = False,
    where: str = "",
) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError("bad_rule", f"{where}{key} must be a number")
    if v < lo or (lo_open and v == lo):
        raise ConfigError("bad_rule", f"{where}{key} must be {'>' if lo_open else '>='} {lo}")
    return float(v)


@dataclass(frozen=True, slots=True)
class IntrusionRule:
    hours: Hours = Hours()


@dataclass(frozen=True, slots=True)
class LoiterRule:
    seconds: float = 60.0
    hours: Hours = Hours()


@dataclass(frozen=True, slots=True)
class GatheringRule:
    max_people: int = 5
    seconds: float = 0.0
    hours: Hours = Hours()


@dataclass(frozen=True, slots=True)
class MotionRule:
    hours: Hours = Hours()
    #: fraction of the zone's area that must be moving
    min_area: float = 0.01
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class TailgatingRule:
    direction: Direction = "in"
    window_s: float = 5.0
    grace_s: float = 2.0


_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _check_id(v: Any, kind: str) -> str:
    if not isinstance(v, str) or not _ID_RE.match(v):
        raise ConfigError("bad_id", f"{kind} id {v!r}")
    return v


def _point(v: Any, code: str, owner: str, idx: int) -> Point:
    if (
        not isinstance(v, Sequence)
        or isinstance(v, str)
        or len(v) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in v)
    ):
        raise ConfigError("bad_config", f"{owner} point #{idx + 1} must be [x, y]")
    x, y = float(v[0]), float(v[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ConfigError("bad_config", f"{owner} point #{idx + 1} is not a number")
    if not (-_EDGE_EPS <= x <= 1 + _EDGE_EPS and -_EDGE_EPS <= y <= 1 + _EDGE_EPS):
        hint = ""
        if x > 2 or y > 2:
            hint = "; these look like pixels: divide x by the image width and y by its height"
        raise ConfigError(code, f"{owner} point #{idx + 1} ({x:g}, {y:g}){hint}", point=(x, y))
    return (min(1.0, max(0.0, x)), min(1.0, max(0.0, y)))


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in normalised coordinates, with the rules that watch it."""

    id: str
    polygon: tuple[Point, ...]
    name: str = ""
    intrusion: IntrusionRule | None = None
    loitering: LoiterRule | None = None
    gathering: GatheringRule | None = None
    motion: MotionRule | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "zone")
        owner = f"zone {self.id!r}"
        pts = tuple(_point(p, "zone_outside_frame", owner, i) for i, p in enumerate(self.polygon))
        object.__setattr__(self, "polygon", pts)
        if len(pts) < 3:
            raise ConfigError("zone_too_few_points", owner)
        if not polygon_is_simple(pts):
            raise ConfigError("zone_self_intersecting", owner)
        if polygon_area(pts) < 1e-6:
            raise ConfigError("zone_zero_area", owner)

    def contains(self, p: Point) -> bool:
        return point_in_polygon(p, self.polygon)

    @property
    def area(self) -> float:
        return polygon_area(self.polygon)

    @property
    def needs_people(self) -> bool:
        return any(r is not None for r in (self.intrusion, self.loitering, self.gathering))


@dataclass(frozen=True, slots=True)
class Line:
    """A directed segment ``a -> b`` in normalised coordinates (see module doc for 'in')."""

    id: str
    a: Point
    b: Point
    name: str = ""
    tailgating: TailgatingRule | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "line")
        owner = f"line {self.id!r}"
        a = _point(self.a, "line_outside_frame", owner, 0)
        b = _point(self.b, "line_outside_frame", owner, 1)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        if math.hypot(b[0] - a[0], b[1] - a[1]) < 0.01:
            raise ConfigError("line_too_short", owner)


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """Everything :class:`CameraAnalyzer` needs to know about one camera."""

    camera_id: str = "camera"
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()
    timezone: str = "Asia/Shanghai"
    #: which point of a person box is tested against zones and lines: the feet
    #: ("bottom", right for cameras looking down at a floor) or the box centre
    anchor: Literal["bottom", "center"] = "bottom"
    #: hysteresis band around lines, in normalised units
    line_margin: float = 0.01
    #: a person may leave a zone for this long without ending the visit
    exit_grace_s: float = 2.0
    #: frames fed to the background model before motion events may fire
    motion_warmup_frames: int = 5
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        ids = [z.id for z in self.zones] + [ln.id for ln in self.lines]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError("duplicate_id", ", ".join(dupes))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError("bad_timezone", repr(self.timezone)) from exc
        if self.anchor not in ("bottom", "center"):
            raise ConfigError("bad_config", f"anchor {self.anchor!r}")
        if self.line_margin < 0 or self.exit_grace_s < 0 or self.motion_warmup_frames < 0:
            raise ConfigError("bad_rule", "line_margin, exit_grace_s and warm-up must be >= 0")

    # -- JSON round trip ---------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CameraConfig:
        """Build from JSON-like data (what the browser's zone editor saves).

        Raises :class:`ConfigError` with a stable ``code`` on any problem.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("bad_config", "expected an object")
        try:
            zones = tuple(_zone_from_dict(z) for z in data.get("zones") or ())
            lines = tuple(_line_from_dict(ln) for ln in data.get("lines") or ())
            detector = DetectorConfig(**dict(data.get("detector") or {}))
            tracker = TrackerConfig(**dict(data.get("tracker") or {}))
        except ConfigError:
            raise
        except VisionInputError as exc:
            raise ConfigError("bad_config", exc.message) from exc
        except (TypeError, AttributeError) as exc:
            raise ConfigError("bad_config", str(exc)) from exc
        kwargs: dict[str, Any] = {}
        for key in ("camera_id", "timezone", "anchor"):
            if key in data:
                if not isinstance(data[key], str):
                    raise ConfigError("bad_config", f"{key} must be a string")
                kwargs[key] = data[key]
        for key in ("line_margin", "exit_grace_s"):
            if key in data:
                kwargs[key] = _num(data, key, 0.0)
        if "motion_warmup_frames" in data:
            kwargs["motion_warmup_frames"] = int(_num(data, "motion_warmup_frames", 0))
        return cls(zones=zones, lines=lines, detector=detector, tracker=tracker, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        def rule(r: Any) -> dict[str, Any] | None:
            if r is None:
                return None
            out: dict[str, Any] = {}
            for k in r.__dataclass_fields__:
                v = getattr(r, k)
                out[k] = v.to_list() if isinstance(v, Hours) else v
            return out

        return {
            "camera_id": self.camera_id,
            "timezone": self.timezone,
            "anchor": self.anchor,
            "line_margin": self.line_margin,
            "exit_grace_s": self.exit_grace_s,
            "motion_warmup_frames": self.motion_warmup_frames,
            "zones": [
                {
                    "id": z.id,
                    "name": z.name,
                    "polygon": [list(p) for p in z.polygon],
                    **{
                        k: rule(getattr(z, k))
                        for k in ("intrusion", "loitering", "gathering", "motion")
                        if getattr(z, k) is not None
                    },
                }
                for z in self.zones
            ],
            "lines": [
                {
                    "id": ln.id,
                    "name": ln.name,
                    "a": list(ln.a),
                    "b": list(ln.b),
                    **({"tailgating": rule(ln.tailgating)} if ln.tailgating else {}),
                }
                for ln in self.lines
            ],
            "detector": asdict(self.detector),
            "tracker": asdict(self.tracker),
        }


def _rule_dict(v: Any, where: str) -> Mapping[str, Any] | None:
    if v is None or v is False:
        return None
    if v is True:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError("bad_config", f"{where} must be an object")
    return v


def _zone_from_dict(d: Any) -> Zone:
    if not isinstance(d, Mapping):
        raise ConfigError("bad_config", "a zone must be an object")
    zid = _check_id(d.get("id"), "zone")
    where = f"zone {zid!r} "
    poly = d.get("polygon", d.get("points"))
    if not isinstance(poly, Sequence) or isinstance(poly, str):
        raise ConfigError("bad_config", f"{where}polygon must be a list of [x, y]")
    intrusion = loiter = gathering = motion = None
    if (r := _rule_dict(d.get("intrusion"), where + "intrusion")) is not None:
        intrusion = IntrusionRule(hours=Hours.parse(r.get("hours")))
    if (r := _rule_dict(d.get("loitering"), where + "loitering")) is not None:
        loiter = LoiterRule(
            seconds=_num(r, "seconds", 60.0, lo=0.0, lo_open=True, where=where),
            hours=Hours.parse(r.get("hours")),
        )
    if (r := _rule_dict(d.get("gathering"), where + "gathering")) is not None:
        max_people = _num(r, "max_people", 5, lo=1, where=where)
        if max_people != int(max_people):
            raise ConfigError("bad_rule", f"{where}max_people must be a whole number")
        gathering = GatheringRule(
            max_people=int(max_people),
            seconds=_num(r, "seconds", 0.0, where=where),
            hours=Hours.parse(r.get("hours")),
        )
    if (r := _rule_dict(d.get("motion"), where + "motion")) is not None:
        min_area = _num(r, "min_area", 0.01, lo=0.0, lo_open=True, where=where)
        if min_area > 1:
            raise ConfigError("bad_rule", f"{where}min_area must be <= 1")
        motion = MotionRule(
            hours=Hours.parse(r.get("hours")),
            min_area=min_area,
            cooldown_s=_num(r, "cooldown_s", 30.0, where=where),
        )
    name = d.get("name") or ""
    return Zone(
        id=zid,
        polygon=tuple(poly),
        name=str(name),
        intrusion=intrusion,
        loitering=loiter,
        gathering=gathering,
        motion=motion,
    )


def _line_from_dict(d: Any) -> Line:
    if not isinstance(d, Mapping):
        raise ConfigError("bad_config", "a line must be an object")
    lid = _check_id(d.get("id"), "line")
    where = f"line {lid!r} "
    if "a" not in d or "b" not in d:
        raise ConfigError("bad_config", f"{where}needs ends 'a' and 'b'")
    tailgating = None
    if (r := _rule_dict(d.get("tailgating"), where + "tailgating")) is not None:
        direction = r.get("direction", "in")
        if direction not in ("in", "out"):
            raise ConfigError("bad_rule", f"{where}direction must be 'in' or 'out'")
        tailgating = TailgatingRule(
            direction=direction,
            window_s=_num(r, "window_s", 5.0, lo=0.0, lo_open=True, where=where),
            grace_s=_num(r, "grace_s", 2.0, where=where),
        )
    return Line(id=lid, a=d["a"], b=d["b"], name=str(d.get("name") or ""), tailgating=tailgating)


# --------------------------------------------------------------------------- events


class EventKind(StrEnum):
    LINE_CROSSING = "line_crossing"
    INTRUSION = "intrusion"
    LOITERING = "loitering"
    GATHERING = "gathering"
    MOTION = "motion"
    TAILGATING = "tailgating"


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """One thing the analytics noticed. ``box`` is normalised (x1, y1, x2, y2)."""

    kind: EventKind
    ts: float
    camera_id: str
    track_id: int | None = None
    zone_id: str | None = None
    line_id: str | None = None
    direction: Direction | None = None
    box: Box | None = None
    count: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ts`` also as ISO 8601 UTC)."""
        return {
            "kind": self.kind.value,
            "ts": self.ts,
            "time": datetime.fromtimestamp(self.ts, UTC).isoformat(),
            "camera_id": self.camera_id,
            "track_id": self.track_id,
            "zone_id": self.zone_id,
            "line_id": self.line_id,
            "direction": self.direction,
            "box": list(self.box) if self.box is not None else None,
            "count": self.count,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class MotionMeasure:
    """Foreground in one zone: the moving fraction of its area and where it is."""

    fraction: float
    box: Box | None


def to_epoch(ts: float | datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.timestamp()
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise VisionInputError("bad_frame", f"time stamp {ts!r}")
    return float(ts)


# --------------------------------------------------------------------------- rules


@dataclass(slots=True)
class _Visit:
    enter_ts: float
    outside_since: float | None = None
    intrusion_sent: bool = False
    loiter_sent: bool = False


@dataclass(slots=True)
class _LineSide:
    side: int
    point: Point


@dataclass(slots=True)
class _GatherState:
    above_since: float | None = None
    fired: bool = False


@dataclass(slots=True)
class _Passage:
    ts: float
    track_id: int
    box: Box


@dataclass(slots=True)
class _Gate:
    rule: TailgatingRule
    grants: list[float] = field(default_factory=list)  # unconsumed grant times
    all_grants: list[float] = field(default_factory=list)  # for reporting counts
    passages: list[_Passage] = field(default_factory=list)  # not yet resolved
    all_passages: list[float] = field(default_factory=list)


class RuleEngine:
    """Turns confirmed tracks (and motion measures) into :class:`AnalyticsEvent` s.

    Pure logic: no image, no clock. Feed it :class:`TrackSnapshot` lists in time
    order with :meth:`update`.
    """

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self._tz = ZoneInfo(config.timezone)
        self._visits: dict[tuple[int, str], _Visit] = {}
        self._sides: dict[tuple[int, str], _LineSide] = {}
        self._gather: dict[str, _GatherState] = {z.id: _GatherState() for z in config.zones}
        self._motion_last: dict[str, float] = {}
        self._gates: dict[str, _Gate] = {
            ln.id: _Gate(ln.tailgating) for ln in config.lines if ln.tailgating is not None
        }
        self.line_counts: dict[str, dict[str, int]] = {
            ln.id: {"in": 0, "out": 0} for ln in config.lines
        }
        self.motion_frames = 0
        self._last_ts: float | None = None

    def anchor(self, track: TrackSnapshot) -> Point:
        return track.bottom_center if self.config.anchor == "bottom" else track.center

    def local_time(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self._tz)

    def record_access_grant(self, line_id: str, ts: float | datetime, count: int = 1) -> None:
        """An access control system let ``count`` people through gate ``line_id``."""
        gate = self._gates.get(line_id)
        if gate is None:
            raise ConfigError("unknown_line", f"{line_id!r} has no tailgating rule")
        t = to_epoch(ts)
        for _ in range(max(0, int(count))):
            gate.grants.append(t)
            gate.all_grants.append(t)
        gate.grants.sort()

    def update(
        self,
        tracks: Sequence[TrackSnapshot],
        ts: float | datetime,
        motion: Mapping[str, MotionMeasure] | None = None,
    ) -> list[AnalyticsEvent]:
        now = to_epoch(ts)
        self._last_ts = now
        local = self.local_time(now)
        cam = self.config.camera_id
        events: list[AnalyticsEvent] = []
        live = [t for t in tracks if t.confirmed]
        live_ids = {t.track_id for t in live}

        # forget tracks the tracker dropped
        for key in [k for k in self._visits if k[0] not in live_ids]:
            del self._visits[key]
        for key in [k for k in self._sides if k[0] not in live_ids]:
            del self._sides[key]

        # -- lines
        for ln in self.config.lines:
            for t in live:
                if not t.visible:
                    continue
                ev = self._line_step(ln, t, now)
                if ev is not None:
                    events.append(ev)
                    gate = self._gates.get(ln.id)
                    if gate is not None and ev.direction == gate.rule.direction:
                        gate.passages.append(_Passage(now, t.track_id, t.box))
                        gate.all_passages.append(now)

        # -- zones
        for z in self.config.zones:
            inside_tracks: list[TrackSnapshot] = []
            for t in live:
                key = (t.track_id, z.id)
                inside = z.contains(self.anchor(t))
                visit = self._visits.get(key)
                grace = self.config.exit_grace_s
                if not inside:
                    # a visit ends when the person has been seen outside for > grace
                    if visit is not None:
                        if visit.outside_since is None:
                            visit.outside_since = now
                        elif now - visit.outside_since > grace:
                            del self._visits[key]
                    continue
                inside_tracks.append(t)
                if (
                    visit is not None
                    and visit.outside_since is not None
                    and now - visit.outside_since > grace
                ):
                    visit = None
                if visit is None:
                    visit = _Visit(enter_ts=now)
                    self._visits[key] = visit
                visit.outside_since = None
                if not t.visible:
                    continue
                if (
                    z.intrusion is not None
                    and not visit.intrusion_sent
                    and z.intrusion.hours.active(local)
                ):
                    visit.intrusion_sent = True
                    events.append(
                        AnalyticsEvent(
                            EventKind.INTRUSION, now, cam, t.track_id, zone_id=z.id, box=t.box
                        )
                    )
                lr = z.loitering
                if (
                    lr is not None
                    and not visit.loiter_sent
                    and now - visit.enter_ts >= lr.seconds
                    and lr.hours.active(local)
                ):
                    visit.loiter_sent = True
                    events.append(
                        AnalyticsEvent(
                            EventKind.LOITERING,
                            now,
                            cam,
                            t.track_id,
                            zone_id=z.id,
                            box=t.box,
                            details={
                                "dwell_s": round(now - visit.enter_ts, 3),
                                "since": visit.enter_ts,
                            },
                        )
                    )
            if z.gathering is not None:
                ev = self._gather_step(z, z.gathering, inside_tracks, now, local)
                if ev is not None:
                    events.append(ev)

        # -- motion
        if motion is not None:
            self.motion_frames += 1
            for z in self.config.zones:
                mr = z.motion
                m = motion.get(z.id)
                warming = self.motion_frames <= self.config.motion_warmup_frames
                if mr is None or m is None or warming:
                    continue
                if m.fraction < mr.min_area or not mr.hours.active(local):
                    continue
                last = self._motion_last.get(z.id)
                if last is not None and now - last < mr.cooldown_s and now >= last:
                    continue
                self._motion_last[z.id] = now
                events.append(
                    AnalyticsEvent(
                        EventKind.MOTION,
                        now,
                        cam,
                        zone_id=z.id,
                        box=m.box,
                        details={"fraction": round(m.fraction, 4)},
                    )
                )

        # -- tailgating
        for line_id, gate in self._gates.items():
            events.extend(self._gate_step(line_id, gate, now))
        return events

    def flush(self, ts: float | datetime) -> list[AnalyticsEvent]:
        """Resolve pending gate passages at ``ts`` without new tracks (e.g. stream end)."""
        now = to_epoch(ts)
        out: list[AnalyticsEvent] = []
        for line_id, gate in self._gates.items():
            out.extend(self._gate_step(line_id, gate, now))
        return out

    # -- rule steps -----------------------------------------------------------------

    def _line_step(self, ln: Line, t: TrackSnapshot, now: float) -> AnalyticsEvent | None:
        p = self.anchor(t)
        d = signed_distance(p, ln.a, ln.b)
        if abs(d) <= self.config.line_margin:
            return None  # inside the hysteresis band: no decision
        side = 1 if d > 0 else -1
        key = (t.track_id, ln.id)
        prev = self._sides.get(key)
        self._sides[key] = _LineSide(side, p)
        if prev is None or prev.side == side:
            return None
        # the move crosses the infinite line; count it when it crosses the segment
        if not _crosses_segment(prev.point, p, ln.a, ln.b, self.config.line_margin):
            return None
        direction: Direction = "in" if side > 0 else "out"
        self.line_counts[ln.id][direction] += 1
        return AnalyticsEvent(
            EventKind.LINE_CROSSING,
            now,
            self.config.camera_id,
            t.track_id,
            line_id=ln.id,
            direction=direction,
            box=t.box,
        )

    def _gather_step(
        self, z: Zone, rule: GatheringRule, inside: list[TrackSnapshot], now: float, local: datetime
    ) -> AnalyticsEvent | None:
        st = self._gather[z.id]
        n = len(inside)
        if n <= rule.max_people or not rule.hours.active(local):
            st.above_since = None
            st.fired = False
            return None
        if st.above_since is None:
            st.above_since = now
        if st.fired or now - st.above_since < rule.seconds:
            return None
        st.fired = True
        boxes = [t.box for t in inside]
        union: Box = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        return AnalyticsEvent(
            EventKind.GATHERING,
            now,
            self.config.camera_id,
            zone_id=z.id,
            box=union,
            count=n,
            details={
                "max_people": rule.max_people,
                "since": st.above_since,
                "track_ids": sorted(t.track_id for t in inside),
            },
        )

    def _gate_step(self, line_id: str, gate: _Gate, now: float) -> list[AnalyticsEvent]:
        rule = gate.rule
        out: list[AnalyticsEvent] = []
        still: list[_Passage] = []
        for p in sorted(gate.passages, key=lambda q: q.ts):
            # consume the earliest grant that may belong to this passage
            lo, hi = p.ts - rule.window_s, p.ts + rule.grace_s
            match = next((g for g in gate.grants if lo <= g <= hi), None)
            if match is not None:
                gate.grants.remove(match)
                continue
            if now >= hi:
                passes = sum(1 for x in gate.all_passages if lo <= x <= hi)
                grants = sum(1 for x in gate.all_grants if lo <= x <= hi)
                out.append(
                    AnalyticsEvent(
                        EventKind.TAILGATING,
                        p.ts,
                        self.config.camera_id,
                        p.track_id,
                        line_id=line_id,
                        direction=rule.direction,
                        box=p.box,
                        count=passes,
                        details={"passes": passes, "grants": grants, "window_s": rule.window_s},
                    )
                )
            else:
                still.append(p)
        gate.passages = still
        # forget what can no longer match anything
        horizon = now - rule.window_s - rule.grace_s - 60.0
        gate.grants = [g for g in gate.grants if g >= horizon]
        gate.all_grants = [g for g in gate.all_grants if g >= horizon]
        gate.all_passages = [x for x in gate.all_passages if x >= horizon]
        return out


def _crosses_segment(p1: Point, p2: Point, a: Point, b: Point, margin: float) -> bool:
    """Does the move p1->p2 pass through segment a-b (ends widened by ``margin``)?"""
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    ea = (a[0] - ux * margin, a[1] - uy * margin)
    eb = (b[0] + ux * margin, b[1] + uy * margin)
    return segments_intersect(p1, p2, ea, eb)


# --------------------------------------------------------------------------- motion


class MotionDetector:
    """MOG2 background subtraction measured per zone, on a downscaled grey frame."""

    def __init__(
        self,
        zones: Sequence[Zone],
        width: int = 320,
        history: int = 300,
        var_threshold: float = 25.0,
    ) -> None:
        import cv2

        self.zones = list(zones)
        self.width = width
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=history, varThreshold=var_threshold, detectShadows=True
        )
        self._masks: dict[str, np.ndarray] = {}
        self._size: tuple[int, int] | None = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def _zone_masks(self, w: int, h: int) -> None:
        import cv2

        self._masks = {}
        for z in self.zones:
            m = np.zeros((h, w), np.uint8)
            pts = np.array(
                [[round(x * (w - 1)), round(y * (h - 1))] for x, y in z.polygon], np.int32
            )
            cv2.fillPoly(m, [pts], 255)
            self._masks[z.id] = m
        self._size = (w, h)

    def update(self, frame: np.ndarray) -> dict[str, MotionMeasure]:
        import cv2

        img = as_bgr_uint8(frame)
        h, w = img.shape[:2]
        if w > self.width:
            h = max(1, round(h * self.width / w))
            w = self.width
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        gray = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        if self._size != (w, h):
            self._zone_masks(w, h)
            self._mog.clear()
        fg = self._mog.apply(gray)
        fg = np.where(fg > 200, 255, 0).astype(np.uint8)  # drop shadows (127)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        out: dict[str, MotionMeasure] = {}
        for zid, mask in self._masks.items():
            area = int(np.count_nonzero(mask))
            moving = cv2.bitwise_and(fg, mask)
            n = int(np.count_nonzero(moving))
            box: Box | None = None
            if n:
                x, y, bw, bh = cv2.boundingRect(moving)
                box = (x / w, y / h, (x + bw) / w, (y + bh) / h)
            out[zid] = MotionMeasure(n / area if area else 0.0, box)
        return out


# --------------------------------------------------------------------------- analyzer


class CameraAnalyzer:
    """Detection + tracking + rules for one camera: ``process(frame, ts) -> events``.

    One analyzer per camera, fed in time order. Its methods hold a lock, so access
    grants may be recorded from another thread (e.g. a web request) while a worker
    thread calls :meth:`process`.
    """

    def __init__(
        self,
        config: CameraConfig | Mapping[str, Any],
        *,
        detector: PersonDetector | None = None,
        detect: Callable[[np.ndarray], Sequence[PersonDetection]] | None = None,
    ) -> None:
        self.config = config if isinstance(config, CameraConfig) else CameraConfig.from_dict(config)
        self.rules = RuleEngine(self.config)
        self.tracker = Tracker(self.config.tracker)
        self.needs_people = bool(self.config.lines) or any(
            z.needs_people for z in self.config.zones
        )
        motion_zones = [z for z in self.config.zones if z.motion is not None]
        self.motion = MotionDetector(motion_zones) if motion_zones else None
        self._detect: Callable[[np.ndarray], Sequence[PersonDetection]] | None = detect
        self._detector = detector
        self.last_detections: list[PersonDetection] = []
        self.last_tracks: list[TrackSnapshot] = []
        self.frames = 0
        self._lock = threading.RLock()

    @property
    def detector(self) -> PersonDetector:
        if self._detector is None:
            self._detector = PersonDetector(self.config.detector)
        return self._detector

    def process(self, frame: np.ndarray, ts: float | datetime) -> list[AnalyticsEvent]:
        """Analyse one frame (BGR or grey uint8) taken at ``ts``; return new events."""
        now = to_epoch(ts)
        img = as_bgr_uint8(frame)
        h, w = img.shape[:2]
        with self._lock:
            self.frames += 1
            dets: list[PersonDetection] = []
            if self.needs_people:
                detect = self._detect if self._detect is not None else self.detector.detect
                dets = list(detect(img))
            motion = self.motion.update(img) if self.motion is not None else None
            feats = [appearance(img, d.box) for d in dets]
            return self._step(dets, now, w / h, motion, feats)

    def process_detections(
        self, detections: Sequence[PersonDetection], ts: float | datetime, aspect: float = 4.0 / 3.0
    ) -> list[AnalyticsEvent]:
        """Run tracking and rules on detections made elsewhere (no motion rules)."""
        with self._lock:
            return self._step(list(detections), to_epoch(ts), aspect, None)

    def _step(
        self,
        dets: list[PersonDetection],
        now: float,
        aspect: float,
        motion: Mapping[str, MotionMeasure] | None,
        feats: list[np.ndarray | None] | None = None,
    ) -> list[AnalyticsEvent]:
        self.last_detections = dets
        self.last_tracks = self.tracker.update(dets, now, aspect=aspect, features=feats)
        return self.rules.update(self.last_tracks, now, motion)

    def record_access_grant(self, line_id: str, ts: float | datetime, count: int = 1) -> None:
        """Tell the tailgating rule of ``line_id`` that access was granted at ``ts``."""
        with self._lock:
            self.rules.record_access_grant(line_id, ts, count)

    def flush(self, ts: float | datetime) -> list[AnalyticsEvent]:
        """Resolve pending tailgating checks (call at stream end or on a timer)."""
        with self._lock:
            return self.rules.flush(ts)

    @property
    def line_counts(self) -> dict[str, dict[str, int]]:
        """Crossings so far per line: ``{line_id: {"in": n, "out": m}}``."""
        with self._lock:
            return {k: dict(v) for k, v in self.rules.line_counts.items()}


def watch_camera(
    stream: StreamConfig | str,
    config: CameraConfig | Mapping[str, Any],
    on_event: Callable[[AnalyticsEvent], Any],
    *,
    analyzer: CameraAnalyzer | None = None,
    backoff: Backoff | None = None,
) -> tuple[CameraWorker, CameraAnalyzer]:
    """Start analysing a camera in the background; ``on_event`` gets every event.

    Returns the started :class:`~linli.vision.video.CameraWorker` (``status()``,
    ``latest()``, ``stop()``) and the analyzer (``record_access_grant``,
    ``line_counts``). Frames are analysed in the worker's own thread, newest first:
    when analysis is slower than the sampling rate, frames are skipped, not queued.
    ``on_event`` runs in that thread too; an exception in it is logged and counted
    in ``status().callback_errors``.
    """
    from linli.vision.video import CameraWorker, Frame, StreamConfig

    cfg = config if isinstance(config, CameraConfig) else CameraConfig.from_dict(config)
    an = analyzer or CameraAnalyzer(cfg)
    sc = stream if isinstance(stream, StreamConfig) else StreamConfig(url=stream)
    if not sc.camera_id:
        from dataclasses import replace

        sc = replace(sc, camera_id=cfg.camera_id)

    def on_frame(frame: Frame) -> None:
        for event in an.process(frame.image, frame.ts):
            on_event(event)

    worker = CameraWorker(sc, on_frame=on_frame, backoff=backoff)
    return worker.start(), an
