"""Liveness from a short burst of frames (presentation-attack detection for gate terminals).

A terminal sends a burst of frames (typically 5-15 over about one second). A live face gives
itself away in two ways a printed photo or a still picture on a screen cannot imitate:

* **a blink**: the eyes close and reopen while the rest of the face stays put. Eye openness is
  the eye aspect ratio of the 68-point landmarks (Soukupová & Čech 2016), measured *after*
  mapping each frame's landmarks onto the first frame with a homography fitted on the non-eye
  landmarks, so that tilting a photo (which squashes the eyes in the image) is not a blink;
* **non-planar motion**: the landmarks of a flat picture move, whatever the hand does with it,
  by a homography (the image of a plane under perspective). A real head turning or talking
  moves the nose, the jaw contour and the mouth relative to each other, which no homography
  explains. The score is the RMS landmark residual after the best homography, in units of the
  distance between the eyes; we take the second-largest value over the burst so that one bad
  landmark fit cannot make a photo "live".

Refusal reasons: ``too_few_frames``, ``no_face``, ``face_lost`` (face missing in too many
frames), ``face_changed`` (the tracked face jumped: someone swapped pictures), ``face_too_small``
(too far for reliable landmarks), ``no_motion`` (nothing moved: a still picture, or a person
who should blink or turn slightly), ``flat_motion`` (it moved like a flat picture),
``challenge_failed``, plus the image reason codes for undecodable frames.

An optional **challenge** (``"blink"``, ``"turn_left"``, ``"turn_right"``) asked by the
terminal at a random moment defeats replayed videos on a screen, which otherwise show real
blinks and real head motion: the burst must show exactly the requested action. ``turn_left``
is the person's own left (on a non-mirrored camera the nose moves to the image's right); pass
``mirrored=True`` when frames are mirrored like a selfie preview.

What this does not catch: a replayed video without a challenge, a 3-D mask, a photo bent
strongly around a vertical axis while held very close. The face should be at least
``MIN_EYE_DISTANCE_PX`` between the eyes (about 70 px wide) and blinks count from
``BLINK_MIN_EYE_DISTANCE_PX``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np

from linli.vision.faces import (
    FRAME_DETECT_PIXELS,
    Box,
    Detection,
    _to_grey,
    detect_faces,
    eye_aspect_ratio,
    eye_distance,
    head_pose,
    landmarks68,
    reason_text,
)
from linli.vision.images import ChannelOrder, DecodedImage, ImageError, ImageSource, decode_image

__all__ = [
    "BLINK_DROP",
    "CHALLENGES",
    "NONPLANAR_MIN",
    "LivenessResult",
    "check_liveness",
    "detect_blink",
]

#: Fewest frames a burst must contain.
MIN_FRAMES = 3
#: The face must be found in at least this fraction of the frames.
MIN_TRACKED_FRACTION = 0.6
#: Landmarks are too noisy below this eye distance (pixels).
MIN_EYE_DISTANCE_PX = 25.0
#: Eye openness is only trusted from this eye distance (pixels).
BLINK_MIN_EYE_DISTANCE_PX = 40.0
#: Homography residual (eye distances) above which the motion is not that of a flat picture.
#: Measured: real head motion in the hamilton clip 0.075-0.21 (second-largest per 0.8 s burst,
#: faces ~90 px), printed-photo-like warps of real frames and photos 0.015-0.05.
NONPLANAR_MIN = 0.06
#: Below this mean landmark displacement (eye distances) nothing moved at all.
MOTION_MIN = 0.02
#: Largest mean grey-level change of the face region between frames below which the burst is a
#: still picture (the same frame repeated, or a picture on a stand).
STILL_PIXEL_CHANGE = 0.5
#: A blink: eye openness falls below this fraction of the open level...
BLINK_DROP = 0.70
#: ...and is back above this fraction before and after the closed frame.
BLINK_RECOVER = 0.85
#: The open eye aspect ratio must be at least this for a blink to be measurable.
MIN_OPEN_EAR = 0.18
#: A requested head turn must change the yaw by at least this many degrees.
TURN_MIN_DEG = 12.0
#: Between consecutive tracked frames the face may not move more than this many face widths.
MAX_JUMP = 0.8

CHALLENGES = ("blink", "turn_left", "turn_right")

_EYES = list(range(36, 48))
_STABLE = [i for i in range(68) if i not in _EYES]


class LivenessResult(NamedTuple):
    """``(ok, reason, details)``; ``reason`` is None when live, else a code of REASONS."""

    ok: bool
    reason: str | None
    details: dict[str, Any]

    @property
    def message(self) -> str | None:
        return reason_text(self.reason) if self.reason else None


def _fail(reason: str, details: dict[str, Any]) -> LivenessResult:
    return LivenessResult(False, reason, details)


def _homography_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance (pixels) between ``dst`` and ``src`` mapped by the best homography."""
    h, _ = cv2.findHomography(src.astype(np.float64), dst.astype(np.float64), 0)
    if h is None:
        return float("inf")
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1))))


def _rectified_ear(points: np.ndarray, ref: np.ndarray) -> float:
    """Eye aspect ratio after mapping ``points`` onto ``ref`` by a homography fitted on the
    landmarks outside the eyes (so the tilt of a flat picture does not change it)."""
    h, _ = cv2.findHomography(
        points[_STABLE].astype(np.float64), ref[_STABLE].astype(np.float64), 0
    )
    if h is None:
        return eye_aspect_ratio(points)
    mapped = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), h)
    return eye_aspect_ratio(mapped.reshape(-1, 2))


def detect_blink(ears: Sequence[float] | np.ndarray) -> bool:
    """A blink in a series of eye aspect ratios: an open level (80th percentile) of at least
    ``MIN_OPEN_EAR``, one frame below ``BLINK_DROP`` × open, and open again
    (``BLINK_RECOVER`` × open) both before and after it."""
    e = np.asarray(ears, dtype=np.float64)
    if e.size < 3 or not np.all(np.isfinite(e)):
        return False
    ear_open = float(np.percentile(e, 80))
    k = int(np.argmin(e))
    return bool(
        ear_open >= MIN_OPEN_EAR
        and e[k] <= BLINK_DROP * ear_open
        and np.any(e[:k] >= BLINK_RECOVER * ear_open)
        and np.any(e[k + 1 :] >= BLINK_RECOVER * ear_open)
    )


def _pick(dets: list[Detection], prev: Box | None) -> Detection:
    if prev is None:
        return max(dets, key=lambda d: d.box.area)
    px, py = prev.center

    def cost(d: Detection) -> float:
        cx, cy = d.box.center
        return math.hypot(cx - px, cy - py) / max(prev.width, 1.0) - d.box.iou(prev)

    return min(dets, key=cost)


def check_liveness(
    frames: Sequence[ImageSource | DecodedImage],
    *,
    challenge: str | None = None,
    channel_order: ChannelOrder = "rgb",
    mirrored: bool = False,
    min_face: float = 64.0,
    min_frames: int = MIN_FRAMES,
) -> LivenessResult:
    """Decide whether a burst of frames shows a live face. Never raises for bad input.

    ``frames`` are consecutive camera frames (arrays — pass ``channel_order="bgr"`` for
    OpenCV — or encoded images), ideally 5-15 frames over about one second. Returns
    ``(ok, reason, details)``; ``details`` holds the measurements, ``best_frame`` (index of the
    most frontal frame, to be used for identification) and ``box`` (the tracked face there).
    """
    n = len(frames)
    details: dict[str, Any] = {"frames": n, "tracked": 0}
    if challenge is not None and challenge not in CHALLENGES:
        return _fail("unknown_challenge", details)
    if n < min_frames:
        return _fail("too_few_frames", details)

    tracked: list[tuple[int, Box, np.ndarray]] = []
    prev: Box | None = None
    prev_grey: np.ndarray | None = None
    jumps = 0
    diffs: list[float] = []
    for i, frame in enumerate(frames):
        try:
            decoded = (
                frame
                if isinstance(frame, DecodedImage)
                else decode_image(frame, channel_order=channel_order)
            )
        except ImageError as exc:
            details["frame"] = i
            return _fail(exc.code, details)
        rgb = decoded.rgb
        grey = _to_grey(rgb)
        if prev is not None and prev_grey is not None and prev_grey.shape == grey.shape:
            r = prev.expanded(0.2).clipped(grey.shape[1], grey.shape[0])
            ys = slice(int(r.y1), math.ceil(r.y2))
            xs = slice(int(r.x1), math.ceil(r.x2))
            diff = float(np.mean(cv2.absdiff(grey[ys, xs], prev_grey[ys, xs])))
            diffs.append(diff)
            if diff == 0.0 and tracked and tracked[-1][0] == i - 1:
                # the very same picture again: same face, same landmarks
                tracked.append((i, tracked[-1][1], tracked[-1][2]))
                prev_grey = grey
                continue
        prev_grey = grey
        budget = max(FRAME_DETECT_PIXELS, int((rgb.shape[0] * rgb.shape[1]) * 0.5))
        dets: list[Detection] = []
        if prev is not None:
            dets = detect_faces(
                rgb, min_face=min_face, max_detect_pixels=budget, roi=prev.expanded(0.6), grey=grey
            )
        if not dets:
            dets = detect_faces(rgb, min_face=min_face, max_detect_pixels=budget, grey=grey)
        if not dets:
            continue
        det = _pick(dets, prev)
        if prev is not None:
            dx = math.hypot(det.box.center[0] - prev.center[0], det.box.center[1] - prev.center[1])
            ratio = det.box.width / max(prev.width, 1.0)
            if dx > MAX_JUMP * prev.width or not (0.67 <= ratio <= 1.5):
                jumps += 1
        prev = det.box
        tracked.append((i, det.box, landmarks68(rgb, det.box)))

    m = len(tracked)
    details["tracked"] = m
    if m == 0:
        return _fail("no_face", details)
    if m < max(min_frames, math.ceil(MIN_TRACKED_FRACTION * n)):
        return _fail("face_lost", details)

    pts = np.stack([t[2] for t in tracked]).astype(np.float64)
    iods = np.array([eye_distance(p) for p in pts])
    iod = float(np.median(iods))
    details["eye_distance_px"] = round(iod, 1)
    poses = [head_pose(p) for p in pts]
    yaws = np.array([p[0] for p in poses]) * (-1.0 if mirrored else 1.0)
    best = int(np.argmin(np.abs(yaws) - 1e-3 * iods))
    details["best_frame"] = tracked[best][0]
    details["box"] = tracked[best][1].to_list()
    if jumps:
        details["jumps"] = jumps
        return _fail("face_changed", details)
    if iod < MIN_EYE_DISTANCE_PX:
        return _fail("face_too_small", details)

    ref = pts[0]
    residuals = np.array([_homography_residual(ref, p) for p in pts[1:]]) / iod
    ordered = np.sort(residuals)[::-1]
    nonplanar = float(ordered[1] if len(ordered) >= 2 else ordered[0])
    motion = float(max(np.mean(np.linalg.norm(p - ref, axis=1)) for p in pts[1:]) / iod)
    ears = np.array([eye_aspect_ratio(ref)] + [_rectified_ear(p, ref) for p in pts[1:]])
    blink = detect_blink(ears) and iod >= BLINK_MIN_EYE_DISTANCE_PX
    ear_open = float(np.percentile(ears, 80))
    ear_min = float(ears.min())
    pixel_change = float(max(diffs)) if diffs else 0.0
    yaw_change = yaws - yaws[0]
    details.update(
        {
            "nonplanar": round(nonplanar, 4),
            "motion": round(motion, 4),
            "pixel_change": round(pixel_change, 2),
            "blink": blink,
            "ear_open": round(ear_open, 3),
            "ear_min": round(ear_min, 3),
            "yaw_min": round(float(yaws.min()), 1),
            "yaw_max": round(float(yaws.max()), 1),
            "yaw_change_max": round(float(yaw_change.max()), 1),
            "yaw_change_min": round(float(yaw_change.min()), 1),
        }
    )
    moving = nonplanar >= NONPLANAR_MIN
    live = blink or moving
    if not live:
        still = pixel_change < STILL_PIXEL_CHANGE or motion < MOTION_MIN
        return _fail("no_motion" if still else "flat_motion", details)
    if challenge == "blink" and not blink:
        return _fail("challenge_failed", details)
    # a head turn is read from where the nose sits between the jaw sides, which no flat
    # picture can change, and must come with non-planar motion
    if challenge == "turn_left" and not (moving and yaw_change.max() >= TURN_MIN_DEG):
        return _fail("challenge_failed", details)
    if challenge == "turn_right" and not (moving and yaw_change.min() <= -TURN_MIN_DEG):
        return _fail("challenge_failed", details)
    return LivenessResult(True, None, details)
