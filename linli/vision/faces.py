"""Face recognition: detection, alignment, 128-d embedding, quality checks, 1:N search.

Pipeline (all models come from installed packages: ``dlib-bin`` and the weights in
``face_recognition_models``; nothing is downloaded):

1. **decode** the image safely (:mod:`linli.vision.images`: pixel limit checked on the header,
   truncated/corrupt files refused with a reason code);
2. **detect** faces with dlib's HOG detector on a resized grey copy. The HOG window is about
   80 px, so the copy is scaled by ``80 / min_face`` (upsampling when small faces must be found,
   downsampling when only large faces matter) and capped at ``max_detect_pixels``;
3. **landmarks**: the 5-point predictor (used for alignment, as the embedding model expects) and
   the 68-point predictor (pose, eye openness, liveness);
4. **align + embed**: a 150×150 chip aligned on the 5 points (``dlib.get_face_chip``) goes through
   dlib's ResNet (``dlib_face_recognition_resnet_model_v1``) → 128-d float32 embedding;
   faces of the same person are close in Euclidean distance;
5. **quality** (enrollment and access): face size, sharpness (Crété-Roffet no-reference blur
   metric on the aligned chip), pose (yaw/pitch from the 68 landmarks with ``cv2.solvePnP`` on a
   generic head model, roll from the eye line), eye openness, exposure, face inside the image;
6. **identify** 1:N in a :class:`Gallery` (one float32 matrix, one matrix-vector product per
   search) with an operating threshold (:data:`DEFAULT_THRESHOLD`, chosen from measured
   distance distributions, see ``docs/faces.md``) and an ambiguity margin.

Every user-facing refusal is a stable code in :data:`REASONS` with English text (translated by
the caller). Functions that take untrusted input either return a result carrying a reason code
(:func:`check_enrollment_photo`, :func:`identify_image`, :func:`check_liveness`) or raise
:class:`~linli.vision.images.ImageError` (a ``ValueError`` with ``.code``) as documented.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import cv2
import numpy as np

from linli.vision.images import (
    IMAGE_REASONS,
    ChannelOrder,
    DecodedImage,
    ImageError,
    ImageSource,
    decode_image,
)

if TYPE_CHECKING:
    from linli.vision.liveness import LivenessResult

__all__ = [
    "ACCESS_QUALITY",
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "EMBEDDING_DIM",
    "ENROLL_QUALITY",
    "REASONS",
    "Box",
    "EnrollmentCheck",
    "Face",
    "Gallery",
    "Identification",
    "IdentifiedFace",
    "ImageError",
    "ImageIdentification",
    "Match",
    "Quality",
    "QualityThresholds",
    "analyze_frame",
    "analyze_image",
    "check_enrollment_photo",
    "check_liveness",
    "detect_faces",
    "embedding_distance",
    "embedding_from_bytes",
    "embedding_to_bytes",
    "identify_image",
    "reason_text",
    "warm_up",
]

EMBEDDING_DIM = 128
#: Operating threshold on the Euclidean distance between embeddings (dlib's customary 0.6 is
#: too loose for opening doors). Measured on ../shared/data/faces: genuine best-match distances
#: 0.34-0.44 for photos (all genuine pairs <= 0.53, video frames of a moving, talking face at
#: ~90 px up to 0.58) and impostors >= 0.70 for photos (>= 0.62 in the video). See docs/faces.md.
DEFAULT_THRESHOLD = 0.55
#: A match is only accepted when the next *other* person is at least this much farther away.
DEFAULT_MARGIN = 0.05

#: Side of dlib's HOG detection window: faces smaller than this (in the detection image) are
#: not found, so the detection image is scaled by HOG_WINDOW / min_face.
HOG_WINDOW = 80
#: Detection budget for photos (enrollment, identification of stored photos).
PHOTO_DETECT_PIXELS = 2_500_000
#: Detection budget for camera frames: a 640×480 frame is searched at full resolution.
FRAME_DETECT_PIXELS = 640 * 480
#: When counting faces on an enrollment photo, faces narrower than this fraction of the largest
#: face (people in the background, faces on posters) are ignored.
SEVERAL_FACES_MIN_RATIO = 0.5

PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".jfif"}
)

#: Reason codes (stable, machine-readable) and their English text.
REASONS: dict[str, str] = {
    **IMAGE_REASONS,
    "no_face": "No face was found in the image",
    "several_faces": "More than one face is in the photo; use a photo of one person",
    "face_too_small": "The face is too small; come closer or use a larger photo",
    "face_cut_off": "The face is partly outside the image",
    "face_blurred": "The face is blurred; hold still and keep the camera in focus",
    "face_not_frontal": "The face is not turned towards the camera",
    "eyes_closed": "The eyes are closed",
    "bad_exposure": "The face is too dark or too bright",
    "unknown_person": "The face does not match anyone enrolled",
    "ambiguous_match": "The face is too similar to more than one enrolled person",
    "empty_gallery": "Nobody is enrolled yet",
    "matches_other_person": "This face is already enrolled under another person",
    "invalid_person_name": "The person name is not valid",
    # liveness (linli.vision.liveness)
    "too_few_frames": "Not enough camera frames to check that a live person is present",
    "face_lost": "The face was not visible in enough frames",
    "face_changed": "The face changed between frames",
    "no_motion": "No movement was seen; please blink or turn your head slightly",
    "flat_motion": "The face moved like a flat picture (photo or screen)",
    "challenge_failed": "The requested action (blink or head turn) was not seen",
    "unknown_challenge": "Unknown liveness challenge",
}


def reason_text(code: str) -> str:
    """English text for a reason code (the code itself if unknown)."""
    return REASONS.get(code, code)


PersonId: TypeAlias = int | str
Order = Literal["left_to_right", "largest_first"]

# --------------------------------------------------------------------------------------------
# models (loaded lazily, once per process)


class _Models:
    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.sp68 = dlib.shape_predictor(frm.pose_predictor_model_location())
        self.encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        # the DNN keeps per-call buffers: one call at a time
        self.encoder_lock = threading.Lock()
        self._local = threading.local()

    @property
    def detector(self) -> Any:
        # HOG detectors are cheap to create; one per thread avoids sharing scratch state
        det = getattr(self._local, "detector", None)
        if det is None:
            det = self.dlib.get_frontal_face_detector()
            self._local.detector = det
        return det


_MODELS: _Models | None = None
_MODELS_LOCK = threading.Lock()


def _models() -> _Models:
    global _MODELS
    if _MODELS is None:
        with _MODELS_LOCK:
            if _MODELS is None:
                _MODELS = _Models()
    return _MODELS


def warm_up() -> None:
    """Load the models (about 2 s, 130 MB) and run each once, instead of on the first face."""
    m = _models()
    grey = np.zeros((100, 100), dtype=np.uint8)
    m.detector.run(grey, 0, 0.0)
    chip = np.zeros((150, 150, 3), dtype=np.uint8)
    with m.encoder_lock:
        m.encoder.compute_face_descriptor(chip, 0)


# --------------------------------------------------------------------------------------------
# small value types


@dataclass(frozen=True)
class Box:
    """Axis-aligned box; ``x2``/``y2`` are exclusive. Coordinates are pixels (floats)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def scaled(self, factor: float) -> Box:
        return Box(self.x1 * factor, self.y1 * factor, self.x2 * factor, self.y2 * factor)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def clipped(self, width: float, height: float) -> Box:
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def expanded(self, ratio: float) -> Box:
        dx, dy = self.width * ratio, self.height * ratio
        return Box(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_list(self) -> list[int]:
        """``[x1, y1, x2, y2]`` rounded to whole pixels."""
        return [round(self.x1), round(self.y1), round(self.x2), round(self.y2)]


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    detector_index: int  # dlib's sub-detector: 0 front, 1/2 turned, 3/4 front but tilted


@dataclass(frozen=True)
class QualityThresholds:
    """Limits a face must respect. ``min_face_px`` is the width of the detector's face box."""

    min_face_px: float = 100.0
    max_blur: float = 0.60
    max_yaw: float = 35.0
    max_pitch: float = 30.0
    max_roll: float = 30.0
    min_eye_openness: float = 0.08
    min_brightness: float = 35.0
    max_brightness: float = 225.0
    min_contrast: float = 12.0
    max_outside: float = 0.05  # landmarks may overshoot the border by 5% of the face width


#: For enrollment photos (strict: this template will open doors for years).
ENROLL_QUALITY = QualityThresholds()
#: For access frames from a terminal camera (the person is moving; looser, but still refuses
#: faces that are too small, very blurred or turned away).
ACCESS_QUALITY = QualityThresholds(
    min_face_px=80.0,
    max_blur=0.70,
    max_yaw=45.0,
    max_pitch=40.0,
    max_roll=40.0,
    min_eye_openness=0.0,
    min_brightness=25.0,
    max_brightness=235.0,
    min_contrast=8.0,
    max_outside=0.15,
)


@dataclass(frozen=True)
class Quality:
    """Measured quality of one face; ``problems`` holds reason codes, most important first."""

    face_px: float  # face box width in the analysed pixels
    eye_distance_px: float
    blur: float  # 0 = sharp ... 1 = completely blurred (Crété-Roffet)
    yaw: float  # degrees; positive = nose towards the image's right side
    pitch: float  # degrees (up/down; approximate, only the magnitude is used)
    roll: float  # degrees; positive = head tilted clockwise in the image
    eye_openness: float  # eye aspect ratio, about 0.25-0.35 open, < 0.1 closed
    brightness: float  # mean grey level of the face, 0-255
    contrast: float  # standard deviation of the grey level of the face
    outside: float  # how far landmarks go past the border, as a fraction of the face width
    detection_score: float
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def evaluate(self, limits: QualityThresholds) -> tuple[str, ...]:
        """Reason codes this face fails under ``limits`` (empty when acceptable)."""
        out: list[str] = []
        if self.face_px < limits.min_face_px:
            out.append("face_too_small")
        if self.outside > limits.max_outside:
            out.append("face_cut_off")
        if self.blur > limits.max_blur:
            out.append("face_blurred")
        if (
            abs(self.yaw) > limits.max_yaw
            or abs(self.pitch) > limits.max_pitch
            or abs(self.roll) > limits.max_roll
        ):
            out.append("face_not_frontal")
        if self.eye_openness < limits.min_eye_openness:
            out.append("eyes_closed")
        if (
            self.brightness < limits.min_brightness
            or self.brightness > limits.max_brightness
            or self.contrast < limits.min_contrast
        ):
            out.append("bad_exposure")
        return tuple(out)

    def with_limits(self, limits: QualityThresholds) -> Quality:
        return Quality(**{**self.__dict__, "problems": self.evaluate(limits)})

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()
        }
        d["problems"] = list(self.problems)
        d["ok"] = self.ok
        return d


@dataclass
class Face:
    """One analysed face. Coordinates are in the pixels of the original image."""

    box: Box
    score: float
    landmarks: np.ndarray  # (68, 2) float32
    landmarks5: np.ndarray  # (5, 2) float32
    embedding: np.ndarray | None  # (128,) float32, None when not computed
    quality: Quality

    def to_dict(self, *, embedding: bool = False, landmarks: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "box": self.box.to_list(),
            "score": round(self.score, 3),
            "quality": self.quality.to_dict(),
        }
        if landmarks:
            d["landmarks"] = np.round(self.landmarks, 1).tolist()
        if embedding and self.embedding is not None:
            d["embedding"] = [float(x) for x in self.embedding]
        return d


# --------------------------------------------------------------------------------------------
# embeddings


def _as_embedding(embedding: Any) -> np.ndarray:
    arr = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if arr.shape != (EMBEDDING_DIM,):
        raise ValueError(f"an embedding has {EMBEDDING_DIM} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("embedding contains NaN or infinity")
    return arr


def embedding_to_bytes(embedding: Any) -> bytes:
    """Serialise an embedding as 128 little-endian float32 (512 bytes)."""
    return _as_embedding(embedding).astype("<f4").tobytes()


def embedding_from_bytes(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Inverse of :func:`embedding_to_bytes`; raises ``ValueError`` on a malformed blob."""
    raw = bytes(data)
    if len(raw) != EMBEDDING_DIM * 4:
        raise ValueError(f"an embedding blob has {EMBEDDING_DIM * 4} bytes, got {len(raw)}")
    return _as_embedding(np.frombuffer(raw, dtype="<f4").astype(np.float32))


def embedding_distance(a: Any, b: Any) -> float:
    """Euclidean distance between two embeddings (same scale as the thresholds)."""
    return float(np.linalg.norm(_as_embedding(a) - _as_embedding(b)))


# --------------------------------------------------------------------------------------------
# detection


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


def detection_scale(width: int, height: int, *, min_face: float, max_detect_pixels: int) -> float:
    """Scale of the detection image: ``HOG_WINDOW / min_face``, capped by the pixel budget.
    The smallest face found is then ``HOG_WINDOW / scale`` pixels wide."""
    s = HOG_WINDOW / max(float(min_face), 1.0)
    if width * height * s * s > max_detect_pixels:
        s = math.sqrt(max_detect_pixels / max(width * height, 1))
    if abs(s - 1.0) < 0.04:
        s = 1.0
    return s


def detect_faces(
    rgb: np.ndarray,
    *,
    min_face: float = 40.0,
    max_detect_pixels: int = PHOTO_DETECT_PIXELS,
    roi: Box | None = None,
    grey: np.ndarray | None = None,
) -> list[Detection]:
    """Find faces at least ``min_face`` pixels wide (HOG detector).

    The search image is the (grey) input scaled by ``HOG_WINDOW / min_face`` and capped at
    ``max_detect_pixels`` (when capped, the smallest face found is correspondingly larger).
    ``roi`` restricts the search to a region. Boxes are returned in ``rgb`` coordinates.
    """
    g = grey if grey is not None else _to_grey(rgb)
    h, w = g.shape[:2]
    x0 = y0 = 0
    if roi is not None:
        r = roi.clipped(w, h)
        x0, y0 = int(r.x1), int(r.y1)
        x1, y1 = math.ceil(r.x2), math.ceil(r.y2)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        g = g[y0:y1, x0:x1]
        h, w = g.shape[:2]
    s = detection_scale(w, h, min_face=min_face, max_detect_pixels=max_detect_pixels)
    if s != 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sx, sy = size[0] / w, size[1] / h
    else:
        sx = sy = 1.0
    rects, scores, kinds = _models().detector.run(np.ascontiguousarray(g), 0, 0.0)
    out = []
    for r, sc, k in zip(rects, scores, kinds, strict=True):
        box = Box(
            r.left() / sx + x0,
            r.top() / sy + y0,
            (r.right() + 1) / sx + x0,
            (r.bottom() + 1) / sy + y0,
        )
        out.append(Detection(box=box, score=float(sc), detector_index=int(k)))
    return out


# --------------------------------------------------------------------------------------------
# landmarks, pose, quality measures

# Generic head model (mm) for the 68-point indices below, in camera axes (x right, y down,
# z away from the camera) for a face looking at the camera.
_POSE_INDICES = [30, 8, 36, 45, 48, 54]
_POSE_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),  # nose tip
        (0.0, 330.0, 65.0),  # chin
        (-225.0, -170.0, 135.0),  # outer corner of the eye on the image's left
        (225.0, -170.0, 135.0),  # outer corner of the eye on the image's right
        (-150.0, 150.0, 125.0),  # mouth corner, image left
        (150.0, 150.0, 125.0),  # mouth corner, image right
    ],
    dtype=np.float64,
)


def _rect(box: Box) -> Any:
    dlib = _models().dlib
    return dlib.rectangle(round(box.x1), round(box.y1), round(box.x2) - 1, round(box.y2) - 1)


def _shape_array(shape: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def landmarks68(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The 68 landmarks (iBUG order) of the face in ``box``, as a (68, 2) float32 array."""
    return _shape_array(_models().sp68(rgb, _rect(box)))


def eye_aspect_ratio(points68: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (Soukupová & Čech 2016): open ≈ 0.3, closed < 0.1."""
    vals = []
    for a in (36, 42):
        p = points68[a : a + 6].astype(np.float64)
        width = np.linalg.norm(p[0] - p[3])
        if width <= 0:
            return 0.0
        vals.append((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * width))
    return float(np.mean(vals))


def eye_distance(points68: np.ndarray) -> float:
    return float(np.linalg.norm(points68[36:42].mean(0) - points68[42:48].mean(0)))


def head_pose(points68: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees from 68 landmarks (approximate, about ±10°).

    * roll: angle of the line between the eye centres (positive = clockwise in the image);
    * yaw: from where the nose tip sits between the two sides of the jaw contour once the roll
      is undone. On a roughly cylindrical head the contour points stay at the silhouette while
      the nose tip moves by ``sin(yaw)``, so ``yaw = asin(2 * position - 1)``; positive = the
      nose points towards the image's right side. This model-free estimate is more stable on
      real photos than a generic-head ``solvePnP`` yaw, which over-estimated turns about 2×;
    * pitch: ``cv2.solvePnP`` on a generic head model with the principal point on the face and
      a long focal length (weak perspective); only its magnitude is meaningful.
    """
    pts = points68.astype(np.float64)
    left_eye = pts[36:42].mean(0)
    right_eye = pts[42:48].mean(0)
    roll_rad = math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    c, s_ = math.cos(-roll_rad), math.sin(-roll_rad)
    x = pts[:, 0] * c - pts[:, 1] * s_  # x after undoing the roll
    jaw_left = float(x[0:3].mean())
    jaw_right = float(x[14:17].mean())
    span = jaw_right - jaw_left
    if span <= 1e-6:
        yaw = 90.0
    else:
        pos = 2.0 * (float(x[30]) - jaw_left) / span - 1.0
        yaw = math.degrees(math.asin(max(-1.0, min(1.0, pos))))
    face_w = float(np.ptp(pts[:, 0])) or 1.0
    centre = pts[_POSE_INDICES].mean(0)
    f = 10.0 * face_w
    cam = np.array([[f, 0, centre[0]], [0, f, centre[1]], [0, 0, 1]], dtype=np.float64)
    pitch = 90.0
    try:
        ok, rvec, _tvec = cv2.solvePnP(
            _POSE_MODEL, pts[_POSE_INDICES], cam, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE
        )
        if ok:
            rot, _ = cv2.Rodrigues(rvec)
            pitch = -math.degrees(math.atan2(float(rot[2, 1]), float(rot[2, 2])))
    except cv2.error:
        pass
    return yaw, pitch, math.degrees(roll_rad)


def blur_metric(grey: np.ndarray, h: int = 11) -> float:
    """No-reference blur estimate in [0, 1] (0 sharp, 1 blurred).

    Crété-Roffet, Dolmiere, Ladret, Nicolas, "The blur effect: perception and estimation with a
    new no-reference perceptual blur metric", SPIE 2007 (same method as scikit-image's
    ``blur_effect``): re-blur the image and measure how much of its variation survives.
    """
    g = grey.astype(np.float32)
    if g.shape[0] < 8 or g.shape[1] < 8:
        return 1.0
    worst = 0.0
    for axis, ksize in ((0, (1, h)), (1, (h, 1))):
        b = cv2.blur(g, ksize, borderType=cv2.BORDER_REFLECT)
        d_in = np.abs(np.diff(g, axis=axis))[2:-1, 2:-1]
        d_out = np.abs(np.diff(b, axis=axis))[2:-1, 2:-1]
        m1 = float(d_in.sum())
        if m1 <= 0:
            return 1.0
        m2 = float(np.maximum(d_in - d_out, 0).sum())
        worst = max(worst, (m1 - m2) / m1)
    return worst


def _measure_quality(rgb: np.ndarray, det: Detection, p68: np.ndarray, chip: np.ndarray) -> Quality:
    h, w = rgb.shape[:2]
    grey_chip = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    core = grey_chip[35:125, 30:120]  # the face itself inside the 150 px chip (padding 0.25)
    yaw, pitch, roll = head_pose(p68)
    fw = max(det.box.width, 1.0)
    over = max(
        0.0,
        float(-p68[:, 0].min()),
        float(p68[:, 0].max() - w),
        float(-p68[:, 1].min()),
        float(p68[:, 1].max() - h),
    )
    return Quality(
        face_px=float(det.box.width),
        eye_distance_px=eye_distance(p68),
        blur=blur_metric(grey_chip),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        eye_openness=eye_aspect_ratio(p68),
        brightness=float(core.mean()),
        contrast=float(core.std()),
        outside=over / fw,
        detection_score=det.score,
    )


# --------------------------------------------------------------------------------------------
# analysis


def _decode(image: ImageSource | DecodedImage, channel_order: ChannelOrder) -> DecodedImage:
    if isinstance(image, DecodedImage):
        return image
    return decode_image(image, channel_order=channel_order)


def _analyze(
    decoded: DecodedImage,
    *,
    min_face: float,
    max_detect_pixels: int,
    limits: QualityThresholds,
    embed: bool,
    num_jitters: int,
    order: Order,
) -> list[Face]:
    dets = detect_faces(
        decoded.rgb,
        min_face=max(8.0, min_face * decoded.scale),
        max_detect_pixels=max_detect_pixels,
    )
    faces = _describe(decoded, dets, limits=limits, embed=embed, num_jitters=num_jitters)
    if order == "left_to_right":
        faces.sort(key=lambda f: (f.box.center[0], f.box.y1))
    else:
        faces.sort(key=lambda f: -f.box.area)
    return faces


def _describe(
    decoded: DecodedImage,
    dets: Sequence[Detection],
    *,
    limits: QualityThresholds,
    embed: bool,
    num_jitters: int,
) -> list[Face]:
    """Landmarks, quality and (optionally) embeddings of detected faces."""
    if not dets:
        return []
    rgb = decoded.rgb
    m = _models()
    inv = 1.0 / decoded.scale
    faces: list[Face] = []
    chips: list[np.ndarray] = []
    for det in dets:
        rect = _rect(det.box)
        s5 = m.sp5(rgb, rect)
        p68 = _shape_array(m.sp68(rgb, rect))
        chip = np.asarray(m.dlib.get_face_chip(rgb, s5, size=150, padding=0.25))
        chips.append(chip)
        q = _measure_quality(rgb, det, p68, chip).with_limits(limits)
        box = det.box.scaled(inv).clipped(*decoded.original_size)
        faces.append(
            Face(
                box=box,
                score=det.score,
                landmarks=p68 * inv,
                landmarks5=_shape_array(s5) * inv,
                embedding=None,
                quality=q,
            )
        )
    if embed:
        jitters = max(0, int(num_jitters))
        with m.encoder_lock:
            if len(chips) == 1:
                vecs = [m.encoder.compute_face_descriptor(chips[0], jitters)]
            else:
                vecs = m.encoder.compute_face_descriptor(chips, jitters)
        for face, vec in zip(faces, vecs, strict=True):
            face.embedding = np.asarray(vec, dtype=np.float32).reshape(EMBEDDING_DIM)
    return faces


def analyze_image(
    image: ImageSource | DecodedImage,
    *,
    min_face: float = 40.0,
    max_detect_pixels: int = PHOTO_DETECT_PIXELS,
    quality: QualityThresholds = ENROLL_QUALITY,
    embed: bool = True,
    num_jitters: int = 0,
    order: Order = "left_to_right",
    channel_order: ChannelOrder = "rgb",
) -> list[Face]:
    """Analyse a photo: every face with box, landmarks, embedding and quality.

    Faces are ordered left to right by default. Raises :class:`ImageError` (with ``.code``)
    when the image cannot be decoded; returns ``[]`` when there is no face.
    """
    decoded = _decode(image, channel_order)
    return _analyze(
        decoded,
        min_face=min_face,
        max_detect_pixels=max_detect_pixels,
        limits=quality,
        embed=embed,
        num_jitters=num_jitters,
        order=order,
    )


def analyze_frame(
    image: ImageSource | DecodedImage,
    *,
    min_face: float = 80.0,
    max_detect_pixels: int = FRAME_DETECT_PIXELS,
    quality: QualityThresholds = ACCESS_QUALITY,
    embed: bool = True,
    channel_order: ChannelOrder = "rgb",
) -> list[Face]:
    """Analyse one camera frame for an access decision; the largest face comes first.

    Tuned for 640×480 terminal frames: faces of 80 px and more are searched at full
    resolution without upsampling (larger frames are searched on a copy reduced to 640×480
    pixels' worth). ``quality`` problems use the looser :data:`ACCESS_QUALITY` limits.
    Arrays from OpenCV are BGR: pass ``channel_order="bgr"``. Raises :class:`ImageError` on
    undecodable input; returns ``[]`` when there is no face.
    """
    decoded = _decode(image, channel_order)
    return _analyze(
        decoded,
        min_face=min_face,
        max_detect_pixels=max_detect_pixels,
        limits=quality,
        embed=embed,
        num_jitters=0,
        order="largest_first",
    )


# --------------------------------------------------------------------------------------------
# enrollment checks


@dataclass(frozen=True)
class EnrollmentCheck:
    """Outcome of checking a photo for enrollment. ``reason`` is None when accepted."""

    ok: bool
    reason: str | None
    face: Face | None = None
    problems: tuple[str, ...] = ()
    faces_found: int = 0
    detail: str = ""

    @property
    def message(self) -> str | None:
        return reason_text(self.reason) if self.reason else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "problems": list(self.problems),
            "faces_found": self.faces_found,
        }
        if self.face is not None:
            d["box"] = self.face.box.to_list()
            d["quality"] = self.face.quality.to_dict()
        if self.detail:
            d["detail"] = self.detail
        return d


#: Smallest face looked for on an enrollment photo (to say "too small" rather than "no face").
ENROLL_MIN_DETECT = 40.0


def check_enrollment_photo(
    photo: ImageSource | DecodedImage,
    *,
    quality: QualityThresholds = ENROLL_QUALITY,
    num_jitters: int = 0,
    channel_order: ChannelOrder = "rgb",
) -> EnrollmentCheck:
    """Check that a photo can be enrolled: exactly one face, large, sharp, frontal, eyes open,
    well exposed. Never raises for bad input: the refusal carries a reason code.

    Detection runs first for faces of the enrollment size only (fast on portraits); it looks
    again for smaller faces only when needed to tell "too small" from "no face", or to see
    other faces at least a third as wide as the main one.
    """
    try:
        decoded = _decode(photo, channel_order)
    except ImageError as exc:
        return EnrollmentCheck(ok=False, reason=exc.code, detail=exc.detail)
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    budget = PHOTO_DETECT_PIXELS
    first_min = max(ENROLL_MIN_DETECT, quality.min_face_px)
    dets = detect_faces(rgb, min_face=first_min, max_detect_pixels=budget)
    found_min = HOG_WINDOW / detection_scale(w, h, min_face=first_min, max_detect_pixels=budget)
    need = ENROLL_MIN_DETECT
    if dets:
        need = max(ENROLL_MIN_DETECT, SEVERAL_FACES_MIN_RATIO * max(d.box.width for d in dets))
    again_min = HOG_WINDOW / detection_scale(w, h, min_face=need, max_detect_pixels=budget)
    if need < found_min and again_min < found_min - 0.5:
        dets = detect_faces(rgb, min_face=need, max_detect_pixels=budget)
    if not dets:
        return EnrollmentCheck(ok=False, reason="no_face")
    main = max(dets, key=lambda d: d.box.width)
    others = [
        d for d in dets if d is not main and d.box.width >= SEVERAL_FACES_MIN_RATIO * main.box.width
    ]
    if others:
        return EnrollmentCheck(ok=False, reason="several_faces", faces_found=len(dets))
    face = _describe(decoded, [main], limits=quality, embed=True, num_jitters=num_jitters)[0]
    problems = face.quality.problems
    if problems:
        return EnrollmentCheck(
            ok=False, reason=problems[0], face=face, problems=problems, faces_found=len(dets)
        )
    return EnrollmentCheck(ok=True, reason=None, face=face, faces_found=len(dets))


# --------------------------------------------------------------------------------------------
# gallery and 1:N search


class Match(NamedTuple):
    person_id: PersonId
    distance: float
    template_id: str


@dataclass(frozen=True)
class Identification:
    """Outcome of a 1:N search. ``person_id`` is None unless ``reason == "match"``."""

    person_id: PersonId | None
    distance: float | None  # distance to the nearest template (any person)
    reason: str  # "match", "unknown_person", "ambiguous_match", "empty_gallery"
    candidates: tuple[Match, ...] = ()

    @property
    def matched(self) -> bool:
        return self.reason == "match"


class Gallery:
    """In-memory 1:N gallery of face templates, searched with one matrix-vector product.

    Templates are the columns of a ``128 × capacity`` float32 matrix (the transposed layout
    streams through memory fastest for a single query); squared norms are cached, so a search
    costs one BLAS ``sgemv`` plus an ``argmin``. Person ids are ints or strings; one person may
    have several templates (the nearest one counts). Thread-safe.
    """

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        capacity: int = 256,
    ) -> None:
        self.threshold = float(threshold)
        self.margin = float(margin)
        cap = max(16, int(capacity))
        self._lock = threading.RLock()
        self._mat = np.zeros((EMBEDDING_DIM, cap), dtype=np.float32)
        self._sq = np.zeros(cap, dtype=np.float32)
        self._owner = np.zeros(cap, dtype=np.int32)
        # scratch space of the search (guarded by the lock): no allocation per query
        self._dist = np.empty(cap, dtype=np.float32)
        self._q = np.empty(EMBEDDING_DIM, dtype=np.float32)
        self._tids: list[str] = []
        self._tid_pos: dict[str, int] = {}
        self._persons: list[PersonId] = []
        self._person_slot: dict[tuple[type, PersonId], int] = {}
        self._person_count: list[int] = []
        self._n = 0
        #: per-photo results of the last :meth:`load_directory`
        self.report: list[tuple[Path, EnrollmentCheck]] = []

    # -- size and contents
    def __len__(self) -> int:
        return self._n

    @property
    def template_count(self) -> int:
        return self._n

    def persons(self) -> list[PersonId]:
        with self._lock:
            return [p for p, c in zip(self._persons, self._person_count, strict=True) if c > 0]

    def __contains__(self, person_id: object) -> bool:
        if not isinstance(person_id, (int, str)) or isinstance(person_id, bool):
            return False
        with self._lock:
            slot = self._person_slot.get((type(person_id), person_id))
            return slot is not None and self._person_count[slot] > 0

    def templates(self, person_id: PersonId) -> list[str]:
        with self._lock:
            slot = self._person_slot.get(self._key(person_id))
            if slot is None:
                return []
            idx = np.flatnonzero(self._owner[: self._n] == slot)
            return [self._tids[i] for i in idx]

    def embedding(self, template_id: str) -> np.ndarray:
        with self._lock:
            return self._mat[:, self._tid_pos[template_id]].copy()

    # -- changes
    @staticmethod
    def _key(person_id: PersonId) -> tuple[type, PersonId]:
        if isinstance(person_id, bool) or not isinstance(person_id, (int, str)):
            raise TypeError("person ids are ints or strings")
        return (type(person_id), person_id)

    def _slot(self, person_id: PersonId) -> int:
        key = self._key(person_id)
        slot = self._person_slot.get(key)
        if slot is None:
            slot = len(self._persons)
            self._persons.append(person_id)
            self._person_count.append(0)
            self._person_slot[key] = slot
        return slot

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        cap = self._mat.shape[1]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        mat = np.zeros((EMBEDDING_DIM, new_cap), dtype=np.float32)
        mat[:, : self._n] = self._mat[:, : self._n]
        sq = np.zeros(new_cap, dtype=np.float32)
        sq[: self._n] = self._sq[: self._n]
        owner = np.zeros(new_cap, dtype=np.int32)
        owner[: self._n] = self._owner[: self._n]
        self._mat, self._sq, self._owner = mat, sq, owner
        self._dist = np.empty(new_cap, dtype=np.float32)

    def add(self, person_id: PersonId, embedding: Any, template_id: str | None = None) -> str:
        """Add one template; returns its id (a new UUID unless given)."""
        return self.add_many(
            [person_id], [embedding], None if template_id is None else [template_id]
        )[0]

    def add_many(
        self,
        person_ids: Sequence[PersonId],
        embeddings: Any,
        template_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add many templates at once (fast path for loading a community's gallery)."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb.reshape(1, -1)
        if emb.ndim != 2 or emb.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"embeddings must be N×{EMBEDDING_DIM}")
        if len(person_ids) != emb.shape[0]:
            raise ValueError("one person id per embedding")
        if not np.all(np.isfinite(emb)):
            raise ValueError("embedding contains NaN or infinity")
        count = emb.shape[0]
        if template_ids is None:
            tids = [uuid.uuid4().hex for _ in range(count)]
        else:
            tids = [str(t) for t in template_ids]
            if len(tids) != count:
                raise ValueError("one template id per embedding")
        with self._lock:
            if len(set(tids)) != len(tids) or any(t in self._tid_pos for t in tids):
                raise ValueError("duplicate template id")
            for p in person_ids:
                self._key(p)
            self._reserve(count)
            start = self._n
            end = start + count
            self._mat[:, start:end] = emb.T
            self._sq[start:end] = np.einsum("ij,ij->i", emb, emb)
            for i, (p, t) in enumerate(zip(person_ids, tids, strict=True)):
                slot = self._slot(p)
                self._owner[start + i] = slot
                self._person_count[slot] += 1
                self._tid_pos[t] = start + i
                self._tids.append(t)
            self._n = end
        return tids

    def remove(self, template_id: str) -> bool:
        """Remove one template; returns False when it was not there."""
        with self._lock:
            pos = self._tid_pos.pop(template_id, None)
            if pos is None:
                return False
            self._person_count[int(self._owner[pos])] -= 1
            last = self._n - 1
            if pos != last:
                self._mat[:, pos] = self._mat[:, last]
                self._sq[pos] = self._sq[last]
                self._owner[pos] = self._owner[last]
                moved = self._tids[last]
                self._tids[pos] = moved
                self._tid_pos[moved] = pos
            self._tids.pop()
            self._n = last
            return True

    def remove_person(self, person_id: PersonId) -> int:
        """Remove all templates of a person; returns how many were removed."""
        with self._lock:
            removed = 0
            for t in self.templates(person_id):
                removed += self.remove(t)
            return removed

    def clear(self) -> None:
        with self._lock:
            for t in list(self._tids):
                self.remove(t)

    # -- search
    def _squared_distances(self, q: np.ndarray) -> np.ndarray:
        """Squared distances to every template, minus ``|q|²`` (constant for the ranking),
        written into the gallery's scratch buffer: ``(-2q) · M + |m|²``, one BLAS ``sgemv``
        streaming the 128×n matrix once plus one pass over n floats, no allocation."""
        n = self._n
        np.multiply(q, -2.0, out=self._q)
        d2 = self._dist[:n]
        np.matmul(self._q, self._mat[:, :n], out=d2)
        np.add(d2, self._sq[:n], out=d2)
        return d2

    def search(self, embedding: Any, k: int = 1) -> list[Match]:
        """The ``k`` nearest *persons* (each with their nearest template), nearest first."""
        q = _as_embedding(embedding)
        if k < 1:
            return []
        with self._lock:
            n = self._n
            if n == 0:
                return []
            d2 = self._squared_distances(q)
            qq = float(q @ q)
            owner = self._owner[:n]
            out: list[Match] = []
            if k <= 4:
                # argmin passes; a template of a person already found is skipped by setting
                # its distance to infinity (one at a time: people have few templates)
                found: set[int] = set()
                skipped = 0
                while len(out) < k:
                    i = int(np.argmin(d2))
                    if not math.isfinite(float(d2[i])):
                        break
                    slot = int(owner[i])
                    if slot in found:
                        skipped += 1
                        if skipped > 16:  # a person with many templates: hide them at once
                            d2[owner == slot] = np.inf
                        else:
                            d2[i] = np.inf
                        continue
                    found.add(slot)
                    out.append(self._match(i, d2, qq))
                    if len(out) < k:
                        d2[i] = np.inf
                return out
            seen: set[int] = set()
            for i in np.argsort(d2, kind="stable"):
                slot = int(owner[i])
                if slot not in seen:
                    seen.add(slot)
                    out.append(self._match(int(i), d2, qq))
                    if len(out) == k:
                        break
            return out

    def _match(self, i: int, d2: np.ndarray, qq: float) -> Match:
        return Match(
            self._persons[int(self._owner[i])],
            math.sqrt(max(float(d2[i]) + qq, 0.0)),
            self._tids[i],
        )

    def identify(
        self, embedding: Any, *, threshold: float | None = None, margin: float | None = None
    ) -> Identification:
        """Decide who this is: the nearest person if within ``threshold`` and clearly nearer
        (by ``margin``) than anyone else; otherwise nobody, with the reason."""
        t = self.threshold if threshold is None else float(threshold)
        mg = self.margin if margin is None else float(margin)
        top = self.search(embedding, k=2)
        if not top:
            return Identification(None, None, "empty_gallery")
        best = top[0]
        if best.distance > t:
            return Identification(None, best.distance, "unknown_person", tuple(top))
        if len(top) > 1 and top[1].distance - best.distance < mg:
            return Identification(None, best.distance, "ambiguous_match", tuple(top))
        return Identification(best.person_id, best.distance, "match", tuple(top))

    # -- building from photos
    def enroll_photo(
        self,
        person_id: PersonId,
        photo: ImageSource | DecodedImage,
        *,
        quality: QualityThresholds | None = ENROLL_QUALITY,
        num_jitters: int = 0,
    ) -> EnrollmentCheck:
        """Check a photo and, when acceptable, add its face as a template of ``person_id``.

        With ``quality=None`` only the face count is enforced (photos already vetted)."""
        limits = quality if quality is not None else _NO_LIMITS
        check = check_enrollment_photo(photo, quality=limits, num_jitters=num_jitters)
        if check.ok and check.face is not None and check.face.embedding is not None:
            self.add(person_id, check.face.embedding)
        return check

    def load_directory(
        self,
        directory: str | Path,
        *,
        quality: QualityThresholds | None = None,
        progress: Callable[[Path, EnrollmentCheck], None] | None = None,
    ) -> list[tuple[Path, EnrollmentCheck]]:
        """Add every photo of ``directory/<person>/*`` as a template of ``<person>``.

        Photos in a gallery folder were vetted when they were enrolled, so by default only
        "exactly one face" is enforced; pass ``quality=ENROLL_QUALITY`` to re-check them.
        Returns (and keeps in :attr:`report`) the check of every photo.
        """
        root = Path(directory)
        if not root.is_dir():
            raise NotADirectoryError(str(root))
        report: list[tuple[Path, EnrollmentCheck]] = []
        for person_dir in sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for photo in iter_photos(person_dir):
                check = self.enroll_photo(person_dir.name, photo, quality=quality)
                report.append((photo, check))
                if progress is not None:
                    progress(photo, check)
        self.report = report
        return report

    @classmethod
    def from_directory(
        cls,
        directory: str | Path,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        quality: QualityThresholds | None = None,
    ) -> Gallery:
        """A gallery from a folder with one sub-folder of photos per person (see
        :meth:`load_directory`; refused photos are listed in :attr:`report`)."""
        g = cls(threshold=threshold, margin=margin)
        g.load_directory(directory, quality=quality)
        return g


_NO_LIMITS = QualityThresholds(
    min_face_px=0.0,
    max_blur=1.0,
    max_yaw=180.0,
    max_pitch=180.0,
    max_roll=180.0,
    min_eye_openness=-1.0,
    min_brightness=-1.0,
    max_brightness=256.0,
    min_contrast=-1.0,
    max_outside=1e9,
)


def iter_photos(directory: Path) -> Iterable[Path]:
    """Image files directly inside ``directory`` (by extension, sorted, hidden files skipped)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_EXTENSIONS
    )


# --------------------------------------------------------------------------------------------
# identification of a whole image


@dataclass(frozen=True)
class IdentifiedFace:
    face: Face
    identification: Identification

    @property
    def person_id(self) -> PersonId | None:
        return self.identification.person_id

    def to_dict(self) -> dict[str, Any]:
        d = self.identification.distance
        return {
            "box": self.face.box.to_list(),
            "person": self.person_id,
            "distance": None if d is None else round(d, 4),
        }


@dataclass(frozen=True)
class ImageIdentification:
    """Faces of one image, left to right, each with its identification. ``error`` is a reason
    code when the image could not be used (then ``faces`` is empty)."""

    faces: tuple[IdentifiedFace, ...] = ()
    error: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"faces": [f.to_dict() for f in self.faces]}
        if self.error:
            d["error"] = self.error
            d["message"] = reason_text(self.error)
        return d


def identify_image(
    image: ImageSource | DecodedImage,
    gallery: Gallery,
    *,
    threshold: float | None = None,
    margin: float | None = None,
    min_face: float = 40.0,
    channel_order: ChannelOrder = "rgb",
) -> ImageIdentification:
    """Find and identify every face of an image (left to right). Never raises for bad input."""
    try:
        faces = analyze_image(
            image, min_face=min_face, quality=ACCESS_QUALITY, channel_order=channel_order
        )
    except ImageError as exc:
        return ImageIdentification(error=exc.code, detail=exc.detail)
    out = []
    for f in faces:
        assert f.embedding is not None
        out.append(
            IdentifiedFace(f, gallery.identify(f.embedding, threshold=threshold, margin=margin))
        )
    return ImageIdentification(faces=tuple(out))


# --------------------------------------------------------------------------------------------
# liveness (implemented in linli.vision.liveness)


def check_liveness(frames: Sequence[ImageSource | DecodedImage], **kwargs: Any) -> LivenessResult:
    """``(ok, reason, details)`` for a burst of frames; see
    :func:`linli.vision.liveness.check_liveness` for the method and the options."""
    from linli.vision.liveness import check_liveness as _check

    return _check(frames, **kwargs)
