"""Zone/line geometry, event rules, the camera analyzer and the frame sources.

Rules are tested with synthetic tracks and an explicit time line (no sleeping, no
wall clock). Line crossing and motion are also tested on real frames of
``faces/video/short_hamilton_clip.mp4``:

* **line crossing on real footage** - the clip has no shot in which someone walks
  across the stage (its shots are a full-body view, a close-up, an upper-body view
  and the audience), so a camera pan is simulated over the real upper-body shot:
  for frames 90..204 (every 6th), a 320x360 window slides across the 640x360
  frame. The singer, who is also really moving in those frames, travels through
  the window from right to left and crosses a vertical line at x = 0.5; played
  the other way he crosses left to right. Exactly one crossing, in the right
  direction, must be counted each way, although he dithers near the line.
* **motion** - a real frame with camera-like noise is the background; a real
  patch of the singer is then moved across a zone.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from linli.vision.analytics import (
    AnalyticsEvent,
    CameraAnalyzer,
    CameraConfig,
    ConfigError,
    EventKind,
    Hours,
    Line,
    MotionDetector,
    MotionMeasure,
    RuleEngine,
    Zone,
    point_in_polygon,
    polygon_is_simple,
    segments_intersect,
    signed_distance,
)
from linli.vision.tracking import TrackSnapshot
from linli.vision.video import (
    Backoff,
    CameraPool,
    CameraWorker,
    LatestFrame,
    MjpegParser,
    StreamConfig,
    StreamError,
    classify_url,
    iter_frames,
    redact_url,
)

CLIP = "faces/video/short_hamilton_clip.mp4"
SH = ZoneInfo("Asia/Shanghai")
#: Tuesday 4 March 2025, 23:00 in Shanghai
NIGHT = datetime(2025, 3, 4, 23, 0, tzinfo=SH).timestamp()
#: the same day at noon
NOON = datetime(2025, 3, 4, 12, 0, tzinfo=SH).timestamp()

SQUARE = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]


def person(tid: int, x: float, y: float, ts: float, *, visible: bool = True) -> TrackSnapshot:
    """A confirmed track whose feet (box bottom centre) are at (x, y)."""
    return TrackSnapshot(
        track_id=tid,
        box=(x - 0.03, y - 0.2, x + 0.03, y),
        score=1.0,
        first_ts=ts,
        last_seen_ts=ts,
        hits=5,
        confirmed=True,
        visible=visible,
    )


def engine(**cfg: object) -> RuleEngine:
    return RuleEngine(CameraConfig.from_dict({"camera_id": "cam-1", **cfg}))


# ----------------------------------------------------------------------------- geometry


def test_point_in_polygon_convex_concave_and_edges() -> None:
    sq = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
    assert point_in_polygon((0.4, 0.4), sq)
    assert not point_in_polygon((0.7, 0.4), sq)
    assert point_in_polygon((0.6, 0.4), sq)  # on an edge
    assert point_in_polygon((0.2, 0.2), sq)  # a corner
    u_shape = [
        (0.1, 0.1),
        (0.3, 0.1),
        (0.3, 0.7),
        (0.7, 0.7),
        (0.7, 0.1),
        (0.9, 0.1),
        (0.9, 0.9),
        (0.1, 0.9),
    ]
    assert not point_in_polygon((0.5, 0.4), u_shape)  # in the notch
    assert point_in_polygon((0.2, 0.4), u_shape)
    assert point_in_polygon((0.5, 0.8), u_shape)


def test_segments_and_sides() -> None:
    assert segments_intersect((0, 0), (1, 1), (0, 1), (1, 0))
    assert not segments_intersect((0, 0), (0.4, 0.4), (0, 1), (1, 0))
    assert segments_intersect((0, 0), (0.5, 0.5), (0, 1), (1, 0))  # touching
    # a line drawn left to right: below it (larger y) is its right-hand side
    assert signed_distance((0.5, 0.8), (0.1, 0.5), (0.9, 0.5)) == pytest.approx(0.3)
    assert signed_distance((0.5, 0.2), (0.1, 0.5), (0.9, 0.5)) == pytest.approx(-0.3)
    assert polygon_is_simple([(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)])
    assert not polygon_is_simple([(0.1, 0.1), (0.5, 0.5), (0.5, 0.1), (0.1, 0.5)])  # bow tie


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("cfg", "code", "mentions"),
    [
        (
            {"zones": [{"id": "roof", "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}]},
            "zone_outside_frame",
            "roof",
        ),
        (
            {"zones": [{"id": "roof", "polygon": [[-0.1, 0.1], [0.9, 0.1], [0.5, 0.5]]}]},
            "zone_outside_frame",
            "(-0.1, 0.1)",
        ),
        (
            {"zones": [{"id": "z", "polygon": [[120, 80], [400, 80], [400, 300]]}]},
            "zone_outside_frame",
            "pixels",
        ),
        (
            {"lines": [{"id": "gate", "a": [0.1, 0.5], "b": [1.5, 0.5]}]},
            "line_outside_frame",
            "gate",
        ),
        ({"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.5]]}]}, "zone_too_few_points", "z"),
        (
            {"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.3, 0.3], [0.5, 0.5]]}]},
            "zone_zero_area",
            "z",
        ),
        (
            {"zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}]},
            "zone_self_intersecting",
            "z",
        ),
        (
            {
                "zones": [{"id": "a", "polygon": SQUARE}],
                "lines": [{"id": "a", "a": [0, 0], "b": [1, 1]}],
            },
            "duplicate_id",
            "a",
        ),
        ({"zones": [{"id": "bad id!", "polygon": SQUARE}]}, "bad_id", "bad id!"),
        (
            {"zones": [{"id": "z", "polygon": SQUARE, "intrusion": {"hours": "25:00-06:00"}}]},
            "bad_hours",
            "25:00",
        ),
        (
            {"zones": [{"id": "z", "polygon": SQUARE, "intrusion": {"hours": ["night"]}}]},
            "bad_hours",
            "night",
        ),
        (
            {"zones": [{"id": "z", "polygon": SQUARE, "loitering": {"seconds": -5}}]},
            "bad_rule",
            "seconds",
        ),
        (
            {"zones": [{"id": "z", "polygon": SQUARE, "gathering": {"max_people": 2.5}}]},
            "bad_rule",
            "max_people",
        ),
        (
            {
                "lines": [
                    {"id": "g", "a": [0.1, 0.5], "b": [0.9, 0.5], "tailgating": {"direction": "up"}}
                ]
            },
            "bad_rule",
            "direction",
        ),
        ({"lines": [{"id": "g", "a": [0.5, 0.5], "b": [0.5, 0.501]}]}, "line_too_short", "g"),
        ({"timezone": "Mars/Olympus"}, "bad_timezone", "Mars"),
        ({"zones": "everywhere"}, "bad_config", ""),
        ({"detector": {"backend": "yolo"}}, "bad_config", "yolo"),
    ],
)
def test_invalid_configs_are_rejected_with_a_code(cfg: dict, code: str, mentions: str) -> None:
    with pytest.raises(ConfigError) as exc:
        CameraConfig.from_dict(cfg)
    assert exc.value.code == code
    assert mentions in exc.value.message


def test_config_round_trips_through_json() -> None:
    raw = {
        "camera_id": "east-gate",
        "timezone": "Asia/Shanghai",
        "anchor": "bottom",
        "zones": [
            {
                "id": "roof",
                "name": "Roof",
                "polygon": SQUARE,
                "intrusion": {"hours": ["22:00-06:00"]},
                "loitering": {"seconds": 90},
                "gathering": {
                    "max_people": 4,
                    "seconds": 10,
                    "hours": [{"start": "20:00", "end": "24:00", "days": ["sat", "sun"]}],
                },
                "motion": {"hours": "23:00-05:00", "min_area": 0.02, "cooldown_s": 60},
            },
        ],
        "lines": [
            {
                "id": "gate-1",
                "a": [0.2, 0.7],
                "b": [0.8, 0.7],
                "tailgating": {"direction": "in", "window_s": 4, "grace_s": 1},
            }
        ],
    }
    cfg = CameraConfig.from_dict(raw)
    again = CameraConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert cfg.zones[0].gathering is not None
    assert cfg.zones[0].gathering.hours.windows[0].days == frozenset({5, 6})


def test_coordinates_a_browser_rounds_at_the_edge_are_accepted() -> None:
    z = Zone("edge", ((0.0, 0.0), (1.0000000001, 0.0), (1.0, 1.0)))
    assert z.polygon[1] == (1.0, 0.0)
    line = Line("l", (0.0, 0.5), (1.0, 0.5))
    assert line.b == (1.0, 0.5)


def test_hours_overnight_and_days() -> None:
    h = Hours.parse(["22:00-06:00"])
    at = lambda hh, d=4: datetime(2025, 3, d, hh, 30, tzinfo=SH)  # noqa: E731
    assert h.active(at(23)) and h.active(at(5)) and not h.active(at(12)) and not h.active(at(21))
    # Friday night only: the early hours of Saturday belong to Friday's window
    fri = Hours.parse([{"start": "22:00", "end": "06:00", "days": ["fri"]}])
    assert fri.active(at(23, 7)) and fri.active(at(3, 8))
    assert not fri.active(at(3, 7)) and not fri.active(at(23, 8))
    assert Hours.parse(None).active(at(12))  # no hours: always
    day = Hours.parse("08:00-18:00")
    assert day.active(at(12)) and not day.active(at(18))


# ----------------------------------------------------------------------------- lines


def test_line_crossing_counts_with_direction() -> None:
    eng = engine(anchor="bottom", lines=[{"id": "door", "a": [0.1, 0.5], "b": [0.9, 0.5]}])
    events: list[AnalyticsEvent] = []
    # person 1 walks down the picture (from the left-hand side to the right-hand side: "in")
    for k, y in enumerate([0.3, 0.4, 0.48, 0.55, 0.65]):
        events += eng.update([person(1, 0.5, y, NIGHT + k)], NIGHT + k)
    # person 2 walks up the picture: "out"
    for k, y in enumerate([0.8, 0.6, 0.45, 0.3]):
        events += eng.update([person(2, 0.3, y, NIGHT + 10 + k)], NIGHT + 10 + k)
    crossings = [(e.track_id, e.direction, e.line_id) for e in events]
    assert crossings == [(1, "in", "door"), (2, "out", "door")]
    assert all(e.kind == EventKind.LINE_CROSSING for e in events)
    assert eng.line_counts == {"door": {"in": 1, "out": 1}}
    assert events[0].ts == NIGHT + 3


def test_jitter_on_the_line_counts_once() -> None:
    eng = engine(
        anchor="bottom", line_margin=0.02, lines=[{"id": "door", "a": [0.1, 0.5], "b": [0.9, 0.5]}]
    )
    ys = [0.3, 0.45, 0.51, 0.49, 0.515, 0.485, 0.53, 0.6, 0.7]
    events: list[AnalyticsEvent] = []
    for k, y in enumerate(ys):
        events += eng.update([person(1, 0.5, y, NIGHT + k)], NIGHT + k)
    assert [e.direction for e in events] == ["in"]
    # a real return trip still counts
    for k, y in enumerate([0.6, 0.45, 0.3]):
        events += eng.update([person(1, 0.5, y, NIGHT + 20 + k)], NIGHT + 20 + k)
    assert [e.direction for e in events] == ["in", "out"]


def test_passing_beside_a_line_segment_is_not_a_crossing() -> None:
    eng = engine(anchor="bottom", lines=[{"id": "gate", "a": [0.4, 0.5], "b": [0.6, 0.5]}])
    events: list[AnalyticsEvent] = []
    for k, y in enumerate([0.3, 0.45, 0.55, 0.7]):  # crosses y = 0.5 at x = 0.8
        events += eng.update([person(1, 0.8, y, NIGHT + k)], NIGHT + k)
    assert events == []
    # tracks that coast (not seen in this frame) do not move across lines
    eng.update([person(2, 0.5, 0.3, NIGHT + 10)], NIGHT + 10)
    assert eng.update([person(2, 0.5, 0.7, NIGHT + 11, visible=False)], NIGHT + 11) == []


# ----------------------------------------------------------------------------- zones


def test_intrusion_only_in_set_hours_and_once_per_visit() -> None:
    cfg = {"zones": [{"id": "roof", "polygon": SQUARE, "intrusion": {"hours": "22:00-06:00"}}]}
    day = engine(**cfg)
    assert day.update([person(1, 0.4, 0.4, NOON)], NOON) == []
    night = engine(**cfg)
    out = night.update([person(1, 0.4, 0.4, NIGHT)], NIGHT)
    assert [(e.kind, e.track_id, e.zone_id) for e in out] == [(EventKind.INTRUSION, 1, "roof")]
    assert out[0].box == pytest.approx((0.37, 0.2, 0.43, 0.4))
    assert night.update([person(1, 0.45, 0.4, NIGHT + 1)], NIGHT + 1) == []
    # a short step outside (shorter than exit_grace_s) is the same visit
    assert night.update([person(1, 0.7, 0.4, NIGHT + 2)], NIGHT + 2) == []
    assert night.update([person(1, 0.45, 0.4, NIGHT + 3)], NIGHT + 3) == []
    # leaving for longer, then coming back, is a new intrusion
    night.update([person(1, 0.8, 0.8, NIGHT + 4)], NIGHT + 4)
    assert night.update([person(1, 0.8, 0.8, NIGHT + 8)], NIGHT + 8) == []
    out = night.update([person(1, 0.4, 0.4, NIGHT + 9)], NIGHT + 9)
    assert [e.kind for e in out] == [EventKind.INTRUSION]


def test_intrusion_when_hours_begin_while_someone_is_inside() -> None:
    eng = engine(zones=[{"id": "z", "polygon": SQUARE, "intrusion": {"hours": "22:00-06:00"}}])
    t = datetime(2025, 3, 4, 21, 59, 58, tzinfo=SH).timestamp()
    assert eng.update([person(1, 0.4, 0.4, t)], t) == []
    out = eng.update([person(1, 0.4, 0.4, t + 3)], t + 3)
    assert [e.kind for e in out] == [EventKind.INTRUSION]


def test_loitering_after_dwell_time() -> None:
    eng = engine(zones=[{"id": "lobby", "polygon": SQUARE, "loitering": {"seconds": 60}}])
    events: list[AnalyticsEvent] = []
    for k in range(0, 90, 5):  # person 1 stays 90 s; person 2 passes through in 20 s
        tracks = [person(1, 0.3 + 0.001 * k, 0.4, NIGHT + k)]
        if k <= 20:
            tracks.append(person(2, 0.25 + 0.015 * k, 0.5, NIGHT + k))
        else:
            tracks.append(person(2, 0.9, 0.9, NIGHT + k))
        events += eng.update(tracks, NIGHT + k)
    assert [(e.kind, e.track_id) for e in events] == [(EventKind.LOITERING, 1)]
    assert events[0].ts == NIGHT + 60
    assert events[0].details["dwell_s"] == pytest.approx(60)


def test_gathering_more_than_n_people_for_some_time() -> None:
    eng = engine(
        zones=[{"id": "yard", "polygon": SQUARE, "gathering": {"max_people": 3, "seconds": 10}}]
    )

    def crowd(n: int, ts: float) -> list[TrackSnapshot]:
        return [person(i + 1, 0.25 + 0.05 * i, 0.4, ts) for i in range(n)] + [
            person(99, 0.9, 0.9, ts)  # outside the zone: never counted
        ]

    events: list[AnalyticsEvent] = []
    for k in range(0, 30, 2):
        events += eng.update(crowd(3, NIGHT + k), NIGHT + k)
    assert events == []  # exactly max_people is not a gathering
    for k in range(30, 60, 2):
        events += eng.update(crowd(5, NIGHT + k), NIGHT + k)
    assert [(e.kind, e.count, e.ts) for e in events] == [(EventKind.GATHERING, 5, NIGHT + 40)]
    assert events[0].details["track_ids"] == [1, 2, 3, 4, 5]
    # the crowd thins out, then gathers again: a new event
    events += eng.update(crowd(2, NIGHT + 60), NIGHT + 60)
    for k in range(62, 80, 2):
        events += eng.update(crowd(4, NIGHT + k), NIGHT + k)
    assert [e.ts for e in events] == [NIGHT + 40, NIGHT + 72]


def test_dropped_tracks_are_forgotten() -> None:
    eng = engine(zones=[{"id": "z", "polygon": SQUARE, "intrusion": {}}])
    assert len(eng.update([person(1, 0.4, 0.4, NIGHT)], NIGHT)) == 1
    eng.update([], NIGHT + 1)
    assert eng._visits == {} and eng._sides == {}


# ----------------------------------------------------------------------------- motion


def test_motion_rule_hours_warmup_and_cooldown() -> None:
    eng = engine(
        motion_warmup_frames=2,
        zones=[
            {
                "id": "store",
                "polygon": SQUARE,
                "motion": {"hours": "22:00-06:00", "min_area": 0.05, "cooldown_s": 30},
            }
        ],
    )
    still = {"store": MotionMeasure(0.001, None)}
    moving = {"store": MotionMeasure(0.2, (0.3, 0.3, 0.4, 0.5))}
    assert eng.update([], NIGHT, moving) == []  # warm-up
    assert eng.update([], NIGHT + 1, moving) == []
    assert eng.update([], NIGHT + 2, still) == []
    out = eng.update([], NIGHT + 3, moving)
    assert [(e.kind, e.zone_id, e.box) for e in out] == [
        (EventKind.MOTION, "store", (0.3, 0.3, 0.4, 0.5))
    ]
    assert eng.update([], NIGHT + 10, moving) == []  # cooling down
    assert len(eng.update([], NIGHT + 40, moving)) == 1
    day = engine(
        motion_warmup_frames=0,
        zones=[{"id": "store", "polygon": SQUARE, "motion": {"hours": "22:00-06:00"}}],
    )
    assert day.update([], NOON, moving) == []


@pytest.fixture(scope="module")
def clip(shared_data: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(shared_data / CLIP))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) > 250
    return frames


def test_motion_after_hours_on_real_frames(clip: list[np.ndarray]) -> None:
    background = clip[150]
    patch = clip[150][40:300, 150:330].copy()  # the singer: real texture and colours
    rng = np.random.default_rng(0)

    def noisy(img: np.ndarray) -> np.ndarray:
        return np.clip(img.astype(np.int16) + rng.normal(0, 2.0, img.shape), 0, 255).astype(
            np.uint8
        )

    cfg = {
        "zones": [
            {
                "id": "right",
                "polygon": [[0.55, 0.0], [1.0, 0.0], [1.0, 1.0], [0.55, 1.0]],
                "motion": {"hours": "22:00-06:00", "min_area": 0.02, "cooldown_s": 5},
            }
        ]
    }
    for start, expect in ((NIGHT, True), (NOON, False)):
        an = CameraAnalyzer(cfg)
        assert an.motion is not None and not an.needs_people
        events: list[AnalyticsEvent] = []
        for k in range(20):  # a still scene with sensor noise
            events += an.process(noisy(background), start + k * 0.5)
        assert events == []
        for k in range(8):  # something moves through the zone
            img = background.copy()
            x = 380 + 25 * k
            w = min(patch.shape[1], 640 - x)
            img[60:320, x : x + w] = patch[:, :w]
            events += an.process(noisy(img), start + 10 + k * 0.5)
        kinds = {e.kind for e in events}
        assert (kinds == {EventKind.MOTION}) is expect
        if expect:
            box = events[0].box
            assert box is not None and box[0] >= 0.5  # where the patch was


def test_motion_detector_measures_only_its_zones(clip: list[np.ndarray]) -> None:
    left = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    right = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
    md = MotionDetector([left, right])
    bg = clip[150]
    for _ in range(10):
        md.update(bg)
    img = bg.copy()
    img[100:250, 420:560] = 255 - img[100:250, 420:560]
    m = md.update(img)
    assert m["right"].fraction > 0.1
    assert m["left"].fraction < 0.01


# ----------------------------------------------------------------------------- tailgating


def gate_engine() -> RuleEngine:
    return engine(
        anchor="bottom",
        lines=[
            {
                "id": "gate",
                "a": [0.1, 0.5],
                "b": [0.9, 0.5],
                "tailgating": {"direction": "in", "window_s": 5, "grace_s": 2},
            }
        ],
    )


def walk_through(eng: RuleEngine, tid: int, x: float, t0: float) -> list[AnalyticsEvent]:
    out: list[AnalyticsEvent] = []
    for k, y in enumerate([0.3, 0.45, 0.56, 0.7]):
        out += eng.update([person(tid, x, y, t0 + 0.5 * k)], t0 + 0.5 * k)
    return out


def test_tailgating_two_people_one_grant() -> None:
    eng = gate_engine()
    eng.record_access_grant("gate", NIGHT)
    events = walk_through(eng, 1, 0.4, NIGHT + 0.5)  # crosses at NIGHT + 1.5
    events += walk_through(eng, 2, 0.6, NIGHT + 1.5)  # right behind: crosses at NIGHT + 2.5
    for k in range(1, 6):
        events += eng.update([], NIGHT + 3 + k)
    tail = [e for e in events if e.kind == EventKind.TAILGATING]
    assert [(e.track_id, e.line_id, e.ts) for e in tail] == [(2, "gate", NIGHT + 2.5)]
    assert tail[0].details["passes"] == 2 and tail[0].details["grants"] == 1
    assert sum(e.kind == EventKind.LINE_CROSSING for e in events) == 2


def test_no_tailgating_when_every_passage_has_a_grant() -> None:
    eng = gate_engine()
    eng.record_access_grant("gate", NIGHT, count=2)  # e.g. a resident with a visitor
    events = walk_through(eng, 1, 0.4, NIGHT + 0.5)
    events += walk_through(eng, 2, 0.6, NIGHT + 1.5)
    # a grant that reaches us a little after the passage (network delay) still counts
    events += walk_through(eng, 3, 0.5, NIGHT + 30)  # crosses at NIGHT + 31
    events += eng.update([], NIGHT + 31.5)
    eng.record_access_grant("gate", NIGHT + 32)
    for k in range(5):
        events += eng.update([], NIGHT + 33 + k)
    # walking out does not need a grant
    for k, y in enumerate([0.7, 0.56, 0.45, 0.3]):
        events += eng.update([person(4, 0.5, y, NIGHT + 50 + k)], NIGHT + 50 + k)
    events += eng.flush(NIGHT + 60)
    assert not [e for e in events if e.kind == EventKind.TAILGATING]
    assert eng.line_counts == {"gate": {"in": 3, "out": 1}}


def test_an_old_grant_does_not_cover_a_later_passage() -> None:
    eng = gate_engine()
    eng.record_access_grant("gate", NIGHT)
    events = walk_through(eng, 1, 0.4, NIGHT + 20)
    events += eng.flush(NIGHT + 30)
    assert [e.kind for e in events if e.kind == EventKind.TAILGATING] == [EventKind.TAILGATING]
    with pytest.raises(ConfigError) as exc:
        eng.record_access_grant("nope", NIGHT)
    assert exc.value.code == "unknown_line"


# ----------------------------------------------------------------------------- analyzer


def test_events_are_json_ready() -> None:
    eng = engine(zones=[{"id": "z", "polygon": SQUARE, "intrusion": {}}])
    (ev,) = eng.update([person(7, 0.4, 0.4, NIGHT)], NIGHT)
    d = json.loads(json.dumps(ev.to_dict()))
    assert d["kind"] == "intrusion" and d["track_id"] == 7 and d["zone_id"] == "z"
    assert d["camera_id"] == "cam-1" and d["time"].startswith("2025-03-04T15:00:00")


def _pan(clip: list[np.ndarray], reverse: bool) -> Iterator[np.ndarray]:
    idx = list(range(90, 206, 6))
    for k, i in enumerate(idx):
        frac = k / (len(idx) - 1)
        x0 = round((1 - frac if reverse else frac) * (640 - 320))
        yield clip[i][:, x0 : x0 + 320]


@pytest.mark.parametrize(("reverse", "expected"), [(False, "in"), (True, "out")])
def test_line_crossing_on_real_footage(
    clip: list[np.ndarray], reverse: bool, expected: str
) -> None:
    cfg = {
        "camera_id": "stage",
        "anchor": "center",
        "lines": [{"id": "mid", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
    }
    an = CameraAnalyzer(cfg)
    events: list[AnalyticsEvent] = []
    seen_ids: set[int] = set()
    for k, frame in enumerate(_pan(clip, reverse)):
        events += an.process(frame, NIGHT + k * 0.2)
        seen_ids.update(t.track_id for t in an.last_tracks)
    assert [(e.kind, e.line_id, e.direction) for e in events] == [
        (EventKind.LINE_CROSSING, "mid", expected)
    ]
    other = "out" if expected == "in" else "in"
    assert an.line_counts == {"mid": {expected: 1, other: 0}}
    assert len(seen_ids) == 1  # one person, one identity, all the way


def test_analyzer_accepts_external_detections_and_datetimes() -> None:
    from linli.vision.people import PersonDetection

    an = CameraAnalyzer(
        {"zones": [{"id": "z", "polygon": SQUARE, "intrusion": {}}], "tracker": {"min_hits": 1}}
    )
    det = PersonDetection(box=(0.35, 0.2, 0.45, 0.5), score=1.0, source="hog")
    out = an.process_detections([det], datetime(2025, 3, 4, 15, 0, tzinfo=ZoneInfo("UTC")))
    assert [e.kind for e in out] == [EventKind.INTRUSION]
    assert out[0].ts == NIGHT


# ----------------------------------------------------------------------------- frame sources


def test_urls_are_classified_or_rejected() -> None:
    assert classify_url("/data/cam.mp4") == "file"
    assert classify_url("file:///data/cam.mp4") == "file"
    assert classify_url("http://10.0.0.5/mjpg/video.mjpg") == "http"
    assert classify_url("rtsp://admin:secret@10.0.0.5:554/Streaming/Channels/101") == "rtsp"
    for bad in ("", "   ", "ftp://cam/x", "http://", "rtsp:///nohost", "javascript://x"):
        with pytest.raises(StreamError) as exc:
            classify_url(bad)
        assert exc.value.code == "bad_url"
    assert "secret" not in redact_url("rtsp://admin:secret@10.0.0.5:554/x")
    with pytest.raises(StreamError) as e2:
        CameraWorker("gopher://cam")
    assert e2.value.code == "bad_url"


def test_missing_and_malformed_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StreamError) as e1:
        next(iter_frames(str(tmp_path / "nope.mp4")))
    assert e1.value.code == "file_not_found" and "nope.mp4" in e1.value.message
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(StreamError) as e2:
        next(iter_frames(str(text)))
    assert e2.value.code == "cannot_open"


def test_file_sampling_at_the_configured_rate(shared_data: Path) -> None:
    frames = list(iter_frames(str(shared_data / CLIP), fps=2.0, start_ts=1000.0))
    assert 18 <= len(frames) <= 20  # 9.2 s at 2 fps
    ts = [f.ts for f in frames]
    assert ts[0] == 1000.0
    assert all(0.45 < b - a < 0.55 for a, b in pairwise(ts))
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[0].image.shape == (360, 640, 3)
    looped = list(
        islice(
            iter_frames(str(shared_data / CLIP), fps=2.0, loop=True, start_ts=0.0, max_width=320),
            30,
        )
    )
    assert len(looped) == 30 and looped[-1].ts > 9.5
    assert looped[0].image.shape == (180, 320, 3)


def test_a_file_that_dies_midway_ends_with_stream_lost(
    clip: list[np.ndarray], tmp_path: Path
) -> None:
    import cv2

    path = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 360))
    for img in clip[82:122]:
        writer.write(img)
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the recorder lost power
    got: list[int] = []
    with pytest.raises(StreamError) as exc:
        for f in iter_frames(str(path), fps=math.inf):
            got.append(f.index)
    assert exc.value.code == "stream_lost"
    assert 5 < len(got) < 40


def test_mjpeg_parser_splits_jpegs_across_chunks() -> None:
    a = b"\xff\xd8" + b"A" * 100 + b"\xff\xd9"
    b = b"\xff\xd8" + b"B\xff\x00" * 50 + b"\xff\xd9"
    stream = (
        b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + a + b"\r\n--frame\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + b + b"\r\n"
    )
    p = MjpegParser()
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += p.feed(stream[i : i + 7])
    assert out == [a, b]
    small = MjpegParser(max_bytes=1000)
    with pytest.raises(StreamError) as exc:
        small.feed(b"\xff\xd8" + b"x" * 2000)
    assert exc.value.code == "malformed_stream"


# -- a real HTTP camera on the loopback interface, serving real frames


class _Camera(BaseHTTPRequestHandler):
    jpegs: list[bytes] = []
    closing = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _multipart(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()

    def _part(self, data: bytes) -> None:
        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
        self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode())
        self.wfile.write(data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        try:
            if self.path == "/dying":  # six frames, then the camera reboots
                self._multipart()
                for data in self.jpegs[:6]:
                    self._part(data)
                    time.sleep(0.02)
            elif self.path == "/live":
                self._multipart()
                k = 0
                while not self.closing.is_set():
                    self._part(self.jpegs[k % len(self.jpegs)])
                    k += 1
                    time.sleep(0.03)
            elif self.path == "/snapshot.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(self.jpegs[0])))
                self.end_headers()
                self.wfile.write(self.jpegs[0])
            elif self.path == "/login":
                body = b"<html>please log in</html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/garbage":
                self._multipart()
                for _ in range(20):
                    self._part(b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9")
            elif self.path == "/silent":
                self.closing.wait(10)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def camera_server(clip: list[np.ndarray]) -> Iterator[str]:
    import cv2

    _Camera.jpegs = [cv2.imencode(".jpg", img)[1].tobytes() for img in clip[82:210:8]]
    _Camera.closing = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Camera)
    server.daemon_threads = True
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Camera.closing.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_http_errors_are_clear(camera_server: str, closed_port: int) -> None:
    cases = {
        f"http://127.0.0.1:{closed_port}/video": "connect_failed",
        f"{camera_server}/missing": "http_error",
        f"{camera_server}/login": "unsupported_content",
        f"{camera_server}/garbage": "malformed_stream",
        f"rtsp://127.0.0.1:{closed_port}/stream": "connect_failed",
    }
    for url, code in cases.items():
        with pytest.raises(StreamError) as exc:
            next(iter_frames(url, fps=25, open_timeout_s=2, read_timeout_s=2))
        assert exc.value.code == code, url
        assert exc.value.message


def test_a_camera_that_never_answers_times_out(camera_server: str) -> None:
    with pytest.raises(StreamError) as exc:
        next(iter_frames(f"{camera_server}/silent", open_timeout_s=1, read_timeout_s=0.5))
    assert exc.value.code == "timeout"


def test_mjpeg_stream_that_dies_midway(camera_server: str) -> None:
    got = []
    with pytest.raises(StreamError) as exc:
        for f in iter_frames(f"{camera_server}/dying", fps=math.inf):
            got.append(f)
    assert exc.value.code == "stream_lost"
    assert len(got) == 6
    assert got[0].image.shape == (360, 640, 3)
    assert got[0].ts <= got[-1].ts


def test_snapshot_url_is_polled(camera_server: str) -> None:
    frames = list(islice(iter_frames(f"{camera_server}/snapshot.jpg", fps=50), 3))
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[2].image.shape == (360, 640, 3)


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_worker_reconnects_after_the_stream_dies(camera_server: str) -> None:
    w = CameraWorker(
        StreamConfig(f"{camera_server}/dying", camera_id="c1", fps=math.inf),
        backoff=Backoff(initial_s=0.05, max_s=0.2, jitter=0.0),
    )
    w.start()
    try:
        assert wait_until(lambda: w.status().connects >= 3)
        st = w.status()
        assert st.last_error_code == "stream_lost"
        assert st.frames >= 12 and st.failures >= 2
        assert w.running
        latest = w.latest()
        assert latest is not None and latest.camera_id == "c1"
    finally:
        assert w.stop(timeout=5)
    assert w.status().state == "stopped"


def test_one_bad_camera_does_not_affect_the_others(camera_server: str, closed_port: int) -> None:
    analysed: list[int] = []

    def analyse(frame: object) -> None:
        analysed.append(1)
        if len(analysed) == 2:
            raise RuntimeError("a bug in the analysis")

    pool = CameraPool()
    try:
        pool.add("good", StreamConfig(f"{camera_server}/live", fps=10), on_frame=analyse)
        pool.add(
            "dead",
            f"http://127.0.0.1:{closed_port}/video",
            backoff=Backoff(initial_s=0.05, max_s=0.1, jitter=0.0),
        )
        pool.add(
            "broken",
            StreamConfig(f"{camera_server}/login"),
            backoff=Backoff(initial_s=0.05, max_s=0.1, jitter=0.0),
        )
        good, dead, broken = pool.get("good"), pool.get("dead"), pool.get("broken")
        assert good is not None and dead is not None and broken is not None
        assert wait_until(
            lambda: (
                good.status().processed >= 5
                and dead.status().failures >= 3
                and broken.status().failures >= 3
            )
        )
        assert good.status().last_error_code is None
        assert good.status().state == "streaming"
        assert good.status().callback_errors == 1  # reported, and the worker went on
        assert dead.status().last_error_code == "connect_failed"
        assert broken.status().last_error_code == "unsupported_content"
        assert all(w.running for w in (good, dead, broken))
        assert {s.camera_id for s in pool.statuses()} == {"good", "dead", "broken"}
    finally:
        pool.stop_all(timeout=5)
    assert pool.statuses() == []


def test_file_worker_finishes_and_latest_frame_is_shared(shared_data: Path) -> None:
    w = CameraWorker(StreamConfig(str(shared_data / CLIP), fps=4, realtime=False))
    w.start()
    try:
        assert wait_until(lambda: w.status().state == "finished")
        st = w.status()
        assert 36 <= st.frames <= 38 and st.failures == 0
        latest = w.latest()
        assert latest is not None and latest.index == st.frames - 1
    finally:
        w.stop()


def test_latest_frame_wait_and_backoff() -> None:
    lf = LatestFrame()
    assert lf.get() is None and lf.wait_newer(0, timeout=0.0) == (None, 0)
    f = np.zeros((2, 2, 3), np.uint8)
    from linli.vision.video import Frame

    def writer() -> None:
        for i in range(50):
            lf.put(Frame(f, float(i), i))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lf.seq == 200
    got, seq = lf.wait_newer(150, timeout=0.0)
    assert got is not None and seq == 200
    b = Backoff(initial_s=1, max_s=30, factor=2, jitter=0)
    assert [b.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_watch_camera_turns_a_live_stream_into_events(camera_server: str) -> None:
    from linli.vision.analytics import watch_camera

    events: list[AnalyticsEvent] = []
    cfg = {
        "camera_id": "hall",
        "motion_warmup_frames": 3,
        "zones": [
            {
                "id": "all",
                "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "motion": {"min_area": 0.01, "cooldown_s": 0},
            }
        ],
    }
    worker, analyzer = watch_camera(
        StreamConfig(f"{camera_server}/live", fps=10), cfg, events.append
    )
    try:
        assert wait_until(lambda: len(events) >= 2)
        assert analyzer.frames >= 5
        st = worker.status()
        assert st.camera_id == "hall" and st.state == "streaming" and st.callback_errors == 0
    finally:
        assert worker.stop(timeout=5)
    assert {e.kind for e in events} == {EventKind.MOTION}
    assert {e.camera_id for e in events} == {"hall"}
