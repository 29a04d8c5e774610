"""Multi-object tracking across frames: IoU + centre distance, Hungarian assignment.

A SORT-like tracker that works on normalised boxes and *time* (seconds), not frame
counts, because cameras are sampled at a configurable and sometimes irregular rate
(2 fps is typical). Each step:

1. every live track predicts its box at ``ts`` from its recent velocity;
2. a cost matrix combines ``1 - IoU`` and the centre distance in box diagonals;
   pairs that neither overlap enough nor lie close enough are forbidden;
3. :func:`scipy.optimize.linear_sum_assignment` finds the cheapest matching;
4. matched tracks take the detection's box; unmatched detections start tentative
   tracks; a track is *confirmed* after ``min_hits`` matches; a tentative one
   unseen for ``tentative_max_age_s`` is dropped (a detector that misses every
   other frame still confirms its people), a confirmed one lives on unseen for
   ``max_age_s`` seconds.

When the caller passes appearance features (:func:`appearance`, a colour histogram
of the person box), their Bhattacharyya distance is added to the cost and very
different-looking pairs are forbidden: this keeps identities apart when two people
pass close to each other, and across a camera's scene change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from linli.vision.people import Box, PersonDetection, VisionInputError, box_iou

_FORBIDDEN = 1e6


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Settings of :class:`Tracker`."""

    #: a confirmed track unseen for longer than this is deleted
    max_age_s: float = 2.0
    #: matches needed before a track is confirmed (reported to the rules)
    min_hits: int = 2
    #: a tentative (not yet confirmed) track unseen for longer than this is deleted
    tentative_max_age_s: float = 1.0
    #: a pair may match when IoU >= min_iou ...
    min_iou: float = 0.1
    #: ... or when the centres are closer than this many box diagonals
    max_distance: float = 1.0
    #: weight of the centre distance in the cost (the IoU term weighs 1)
    distance_weight: float = 0.5
    #: fraction of the measured velocity used to predict (damps jitter)
    velocity_damping: float = 0.7
    #: weight of the appearance distance (0..1) in the cost, when features are given
    appearance_weight: float = 0.5
    #: pairs whose appearance distance exceeds this never match
    max_appearance_distance: float = 0.6

    def __post_init__(self) -> None:
        if self.max_age_s < 0 or self.min_hits < 1 or not 0 <= self.min_iou <= 1:
            raise VisionInputError("bad_detector_config", "tracker settings out of range")
        if self.max_distance < 0 or self.distance_weight < 0:
            raise VisionInputError("bad_detector_config", "tracker settings out of range")


@dataclass(frozen=True, slots=True)
class TrackSnapshot:
    """A track as the rules see it after an update."""

    track_id: int
    box: Box
    score: float
    first_ts: float
    last_seen_ts: float
    hits: int
    confirmed: bool
    #: True when a detection was matched to this track at this update
    visible: bool

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)

    @property
    def bottom_center(self) -> tuple[float, float]:
        """The foot point: where a standing person touches the ground."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2.0, y2)


@dataclass(slots=True)
class _Track:
    track_id: int
    box: Box
    score: float
    first_ts: float
    last_seen_ts: float
    hits: int = 1
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)  # centre velocity, normalised units / second
    feature: np.ndarray | None = None

    def predict(self, ts: float, damping: float) -> Box:
        dt = max(0.0, ts - self.last_seen_ts)
        dx, dy = self.velocity[0] * dt * damping, self.velocity[1] * dt * damping
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


def _center(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)


def appearance(image: np.ndarray, box: Box) -> np.ndarray | None:
    """Hue-saturation histogram (16x4 bins, sums to 1) of the middle of a person box.

    ``image`` is the BGR frame the normalised ``box`` refers to. The outer fifth on
    each side is left out, as it is mostly background.
    """
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    cx1, cx2 = int((x1 + 0.2 * bw) * w), int((x2 - 0.2 * bw) * w)
    cy1, cy2 = int((y1 + 0.1 * bh) * h), int((y2 - 0.1 * bh) * h)
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return None
    crop = image[cy1:cy2, cx1:cx2]
    if crop.shape[0] * crop.shape[1] > 4096:  # a small copy is plenty for 64 bins
        f = math.sqrt(4096 / (crop.shape[0] * crop.shape[1]))
        crop = cv2.resize(
            crop,
            (max(2, int(crop.shape[1] * f)), max(2, int(crop.shape[0] * f))),
            interpolation=cv2.INTER_AREA,
        )
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    total = float(hist.sum())
    return (hist / total).astype(np.float32) if total > 0 else None


def appearance_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya (Hellinger) distance of two normalised histograms, 0..1."""
    bc = float(np.sum(np.sqrt(np.asarray(a, np.float64) * np.asarray(b, np.float64))))
    return math.sqrt(max(0.0, 1.0 - min(1.0, bc)))


class Tracker:
    """Keep identities of people across frames.

    ``aspect`` is the frame's width / height: normalised x and y have different
    pixel scales, and distances are measured in a space where they agree.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_ts: float | None = None

    def reset(self) -> None:
        self._tracks.clear()
        self._last_ts = None

    def update(
        self,
        detections: Sequence[PersonDetection | Box],
        ts: float,
        aspect: float = 4.0 / 3.0,
        features: Sequence[np.ndarray | None] | None = None,
    ) -> list[TrackSnapshot]:
        """Match ``detections`` taken at ``ts`` (seconds) and return the live tracks.

        ``features`` (optional, one per detection) are :func:`appearance` histograms.

        Returned are all *confirmed* tracks still alive (``visible`` tells whether
        they were seen in this frame). A ``ts`` earlier than the previous one
        (clock jump, restarted file) resets the tracker.
        """
        cfg = self.config
        if self._last_ts is not None and ts < self._last_ts:
            self.reset()
        self._last_ts = ts
        dets: list[tuple[Box, float]] = []
        for d in detections:
            if isinstance(d, PersonDetection):
                dets.append((d.box, d.score))
            else:
                dets.append((tuple(float(v) for v in d), 1.0))  # type: ignore[arg-type]
        feats: list[np.ndarray | None] = list(features) if features is not None else []
        if len(feats) != len(dets):
            feats = [None] * len(dets)

        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        if self._tracks and dets:
            from scipy.optimize import linear_sum_assignment

            cost = np.full((len(self._tracks), len(dets)), _FORBIDDEN, dtype=np.float64)
            for i, tr in enumerate(self._tracks):
                pred = tr.predict(ts, cfg.velocity_damping)
                pcx, pcy = _center(pred)
                pdiag = math.hypot((pred[2] - pred[0]) * aspect, pred[3] - pred[1])
                for j, (box, _) in enumerate(dets):
                    iou = box_iou(pred, box)
                    dcx, dcy = _center(box)
                    ddiag = math.hypot((box[2] - box[0]) * aspect, box[3] - box[1])
                    scale = max(1e-6, (pdiag + ddiag) / 2.0)
                    dist = math.hypot((dcx - pcx) * aspect, dcy - pcy) / scale
                    if iou < cfg.min_iou and dist > cfg.max_distance:
                        continue
                    c = (1.0 - iou) + cfg.distance_weight * dist
                    fj = feats[j]
                    if tr.feature is not None and fj is not None:
                        app = appearance_distance(tr.feature, fj)
                        if app > cfg.max_appearance_distance:
                            continue
                        c += cfg.appearance_weight * app
                    cost[i, j] = c
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                if cost[i, j] >= _FORBIDDEN:
                    continue
                self._apply(self._tracks[i], dets[j], ts, feats[j])
                matched_tracks.add(i)
                matched_dets.add(j)

        visible_ids = {self._tracks[i].track_id for i in matched_tracks}
        survivors: list[_Track] = []
        for i, tr in enumerate(self._tracks):
            age = ts - tr.last_seen_ts
            limit = cfg.max_age_s if tr.confirmed else min(cfg.max_age_s, cfg.tentative_max_age_s)
            if i in matched_tracks or age <= limit:
                survivors.append(tr)
        for j, (box, score) in enumerate(dets):
            if j in matched_dets:
                continue
            tr = _Track(
                self._next_id, box, score, ts, ts, confirmed=cfg.min_hits <= 1, feature=feats[j]
            )
            self._next_id += 1
            survivors.append(tr)
            visible_ids.add(tr.track_id)
        self._tracks = survivors
        return [
            TrackSnapshot(
                track_id=t.track_id,
                box=t.box,
                score=t.score,
                first_ts=t.first_ts,
                last_seen_ts=t.last_seen_ts,
                hits=t.hits,
                confirmed=t.confirmed,
                visible=t.track_id in visible_ids,
            )
            for t in self._tracks
            if t.confirmed
        ]

    def all_tracks(self) -> list[TrackSnapshot]:
        """Every live track, tentative ones included (for display and debugging)."""
        return [
            TrackSnapshot(
                t.track_id,
                t.box,
                t.score,
                t.first_ts,
                t.last_seen_ts,
                t.hits,
                t.confirmed,
                t.last_seen_ts == self._last_ts,
            )
            for t in self._tracks
        ]

    def _apply(
        self, tr: _Track, det: tuple[Box, float], ts: float, feature: np.ndarray | None
    ) -> None:
        box, score = det
        if feature is not None:
            tr.feature = feature if tr.feature is None else 0.7 * tr.feature + 0.3 * feature
        dt = ts - tr.last_seen_ts
        if dt > 1e-6:
            (ocx, ocy), (ncx, ncy) = _center(tr.box), _center(box)
            vx, vy = (ncx - ocx) / dt, (ncy - ocy) / dt
            # smooth the velocity; a first measurement is taken as is
            if tr.hits >= 2:
                vx = 0.5 * vx + 0.5 * tr.velocity[0]
                vy = 0.5 * vy + 0.5 * tr.velocity[1]
            tr.velocity = (vx, vy)
        tr.box = box
        tr.score = score
        tr.last_seen_ts = ts
        tr.hits += 1
        if tr.hits >= self.config.min_hits:
            tr.confirmed = True
