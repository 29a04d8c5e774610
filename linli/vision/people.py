"""Person detection on the CPU, with models that ship inside installed wheels.

Two detectors are available, and :class:`PersonDetector` fuses what the installed
OpenCV/dlib provide:

``face``
    dlib's frontal-face HOG detector (built into the ``dlib-bin`` wheel, no file to
    load).  Each face is turned into a *person box* with fixed human proportions
    (about 2.6 face widths wide, 7 face heights tall, clipped to the frame).  It
    works for people who face the camera at any distance where the face is at least
    ~20 px (with ``face_upsample=1``), including close-ups where the body is out of
    frame; it misses people seen from behind.

``hog``
    OpenCV's HOG + linear-SVM full-body people detector (Dalal & Triggs, the
    ``cv2.HOGDescriptor_getDefaultPeopleDetector()`` coefficients compiled into
    OpenCV 4.x; the project pins ``opencv-python-headless`` 4.x because OpenCV 5
    moved it out of the main wheel).  It sees standing/walking people from any
    side at >= 64x128 px, the typical CCTV view, including people seen from behind.
    Only windows whose SVM decision value is at least ``hog_threshold`` (default
    1.0, i.e. outside the SVM's margin band) count: inside the band (0..1) the
    detector fires on hands, microphone stands and lamps as often as on people.

``auto`` (default) runs every backend that is available and merges the results:
a face-derived box whose face lies in the upper part of a body box is dropped in
favour of the body box, then non-maximum suppression removes duplicates.

All boxes are normalised ``(x1, y1, x2, y2)`` in 0..1 of the frame, so that
zones and lines drawn on a snapshot in the browser apply at any resolution.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Box = tuple[float, float, float, float]
"""Normalised box ``(x1, y1, x2, y2)``, each in 0..1 of the frame's width/height."""

Backend = Literal["auto", "face", "hog"]

REASONS: dict[str, str] = {
    "bad_frame": "The frame is not an image (expected an HxW or HxWx3 uint8 array)",
    "empty_frame": "The frame has no pixels",
    "backend_unavailable": "This person detector is not available in the installed packages",
    "bad_detector_config": "The person detector settings are not valid",
}


class VisionInputError(ValueError):
    """A caller gave the vision library something it cannot work with.

    ``code`` is a stable machine code (a key of :data:`REASONS`), ``message`` the
    English text; ``params`` carries the values that make the message precise.
    """

    def __init__(self, code: str, detail: str = "", **params: Any) -> None:
        self.code = code
        self.params = params
        base = REASONS.get(code, code)
        self.message = f"{base}: {detail}" if detail else base
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class PersonDetection:
    """One person found in a frame."""

    box: Box
    score: float
    source: Literal["face", "hog"]
    face_box: Box | None = None

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Settings of :class:`PersonDetector` (defaults suit 640x480 CCTV frames)."""

    backend: Backend = "auto"
    #: frames wider than this are scaled down first (cost grows with pixels)
    max_width: int = 640
    #: dlib pyramid up-sampling: 1 finds faces down to ~20 px, 0 is ~4x faster (~40 px)
    face_upsample: int = 1
    #: dlib detection score threshold (SVM margin); raise to cut false positives
    face_threshold: float = 0.0
    #: HOG SVM decision value a body detection needs (>= 1: outside the margin band)
    hog_threshold: float = 1.0
    hog_scale: float = 1.05
    hog_win_stride: int = 8
    #: IoU above which two person boxes are the same person
    nms_iou: float = 0.45
    #: person box width / face width, and height / face height
    body_width_factor: float = 2.6
    body_height_factor: float = 7.0

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "face", "hog"):
            raise VisionInputError("bad_detector_config", f"backend {self.backend!r}")
        if self.max_width < 64:
            raise VisionInputError("bad_detector_config", "max_width must be >= 64")
        if self.face_upsample not in (0, 1, 2):
            raise VisionInputError("bad_detector_config", "face_upsample must be 0, 1 or 2")
        if not 0.0 < self.nms_iou <= 1.0:
            raise VisionInputError("bad_detector_config", "nms_iou must be in (0, 1]")
        if self.hog_scale <= 1.0:
            raise VisionInputError("bad_detector_config", "hog_scale must be > 1")


def hog_available() -> bool:
    """True when the installed OpenCV has the HOG people detector (OpenCV 4.x main wheel)."""
    import cv2

    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def available_backends() -> list[str]:
    """The person-detector backends usable with the installed packages."""
    out: list[str] = []
    try:
        import dlib  # noqa: F401

        out.append("face")
    except ImportError:  # pragma: no cover - dlib-bin is a dependency
        pass
    if hog_available():
        out.append("hog")
    return out


def as_bgr_uint8(frame: Any) -> np.ndarray:
    """Check that ``frame`` is an image and return it as a contiguous BGR uint8 array."""
    import cv2

    if not isinstance(frame, np.ndarray):
        raise VisionInputError("bad_frame", f"got {type(frame).__name__}")
    if frame.size == 0:
        raise VisionInputError("empty_frame")
    if frame.dtype != np.uint8:
        raise VisionInputError("bad_frame", f"dtype {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR))
    raise VisionInputError("bad_frame", f"shape {frame.shape}")


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    iw, ih = max(0.0, ix2 - ix1), max(0.0, iy2 - iy1)
    inter = iw * ih
    if inter <= 0.0:
        return 0.0
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _clip_box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return (
        min(1.0, max(0.0, x1)),
        min(1.0, max(0.0, y1)),
        min(1.0, max(0.0, x2)),
        min(1.0, max(0.0, y2)),
    )


def nms(detections: Sequence[PersonDetection], iou_threshold: float) -> list[PersonDetection]:
    """Greedy non-maximum suppression, best score first."""
    kept: list[PersonDetection] = []
    for det in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(box_iou(det.box, k.box) < iou_threshold for k in kept):
            kept.append(det)
    return kept


class PersonDetector:
    """Find people in BGR frames.

    Calls are serialised by a lock (dlib's detector is not re-entrant), so for
    parallel cameras create one detector per camera - it is cheap.

    >>> det = PersonDetector()                      # doctest: +SKIP
    >>> det.detect(frame)                           # doctest: +SKIP
    [PersonDetection(box=(0.41, 0.12, 0.62, 1.0), score=1.3, source='face', ...)]
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        available = available_backends()
        if self.config.backend == "auto":
            self.backends = available
        elif self.config.backend in available:
            self.backends = [self.config.backend]
        else:
            raise VisionInputError(
                "backend_unavailable",
                f"{self.config.backend!r}; installed: {', '.join(available) or 'none'}",
                backend=self.config.backend,
            )
        if not self.backends:  # pragma: no cover - dlib-bin is a dependency
            raise VisionInputError("backend_unavailable", "no person detector installed")
        self._face: Any = None
        self._hog: Any = None
        self._lock = threading.Lock()
        if "face" in self.backends:
            import dlib

            self._face = dlib.get_frontal_face_detector()
        if "hog" in self.backends:
            import cv2

            cv: Any = cv2  # the stubs lack the module-level alias of the static method
            hog = cv.HOGDescriptor()
            hog.setSVMDetector(cv.HOGDescriptor_getDefaultPeopleDetector())
            self._hog = hog

    def detect(self, frame: np.ndarray) -> list[PersonDetection]:
        """People in ``frame`` (BGR or grayscale uint8), boxes normalised to 0..1."""
        import cv2

        img = as_bgr_uint8(frame)
        h, w = img.shape[:2]
        if w > self.config.max_width:
            scale = self.config.max_width / w
            img = cv2.resize(
                img, (self.config.max_width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            h, w = img.shape[:2]
        with self._lock:
            bodies = self._detect_hog(img) if self._hog is not None else []
            faces = self._detect_faces(img) if self._face is not None else []
        # a face inside the head region of a body box belongs to that body
        merged = list(bodies)
        for f in faces:
            assert f.face_box is not None
            fx = (f.face_box[0] + f.face_box[2]) / 2.0
            fy = (f.face_box[1] + f.face_box[3]) / 2.0
            owned = any(
                b.box[0] <= fx <= b.box[2]
                and b.box[1] <= fy <= b.box[1] + 0.4 * (b.box[3] - b.box[1])
                for b in bodies
            )
            if not owned:
                merged.append(f)
        return nms(merged, self.config.nms_iou)

    def _detect_faces(self, img: np.ndarray) -> list[PersonDetection]:
        import cv2

        cfg = self.config
        h, w = img.shape[:2]
        rgb = np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        rects, scores, _ = self._face.run(rgb, cfg.face_upsample, cfg.face_threshold)
        out: list[PersonDetection] = []
        for r, s in zip(rects, scores, strict=True):
            fx1, fy1 = float(r.left()), float(r.top())
            fx2, fy2 = float(r.right()), float(r.bottom())
            fw, fh = fx2 - fx1, fy2 - fy1
            if fw <= 2 or fh <= 2:
                continue
            cx = (fx1 + fx2) / 2.0
            bw = cfg.body_width_factor * fw
            top = fy1 - 0.3 * fh
            body = _clip_box(
                (cx - bw / 2) / w,
                top / h,
                (cx + bw / 2) / w,
                (top + cfg.body_height_factor * fh) / h,
            )
            face = _clip_box(fx1 / w, fy1 / h, fx2 / w, fy2 / h)
            out.append(PersonDetection(box=body, score=float(s), source="face", face_box=face))
        return out

    def _detect_hog(self, img: np.ndarray) -> list[PersonDetection]:
        cfg = self.config
        h, w = img.shape[:2]
        if h < 128 or w < 64:
            return []
        stride = (cfg.hog_win_stride, cfg.hog_win_stride)
        rects, weights = self._hog.detectMultiScale(
            img, winStride=stride, padding=(8, 8), scale=cfg.hog_scale
        )
        out: list[PersonDetection] = []
        for (x, y, bw, bh), s in zip(
            np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=True
        ):
            if float(s) < cfg.hog_threshold:
                continue
            # the HOG window has ~8 px of margin around the person on each side
            mx, my = 0.1 * bw, 0.05 * bh
            box = _clip_box((x + mx) / w, (y + my) / h, (x + bw - mx) / w, (y + bh - my) / h)
            out.append(PersonDetection(box=box, score=float(s), source="hog"))
        return nms(out, cfg.nms_iou)
