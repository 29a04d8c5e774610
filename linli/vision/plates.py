"""Licence-plate reader.

Pipeline (all on CPU, models from the ``rapidocr`` wheel, nothing downloaded):

1. **Load** the image with the shared safe decoder (:mod:`linli.vision.images`): the header
   is checked before any pixel is decoded, large JPEGs are decoded at a reduced scale, the
   working copy is at most :data:`WORK_MAX_SIDE` pixels (boxes are mapped back).
2. **Find candidates** with the PP-OCR text detector (DB, run by rapidocr on a downscaled
   copy of the whole photo), keep text boxes with a plate-like shape and add the union of
   neighbouring boxes on one line (the detector sometimes splits ``皖A`` from the serial);
   plate-coloured ones are read first. When that gives nothing, a second pass adds
   colour-based candidates (blue / yellow / green regions with a plate's aspect ratio) and
   a higher-resolution detection.
3. **Rectify** every candidate with a perspective warp to a 48-pixel-high strip (stretched
   horizontally so each character gets several CTC frames), turned to grey and normalised
   to dark text on a light background (blue and black plates are inverted).
4. **Read** the strip with the PP-OCR recogniser (onnxruntime) and decode its per-frame
   probabilities against the plate grammar (:mod:`linli.vision.plate_grammar`): a
   Viterbi alignment per plate format, only allowed characters per position, confusions
   (0/D, 8/B, 2/Z, 5/S, 1/I ...) corrected by position at a cost in confidence. Every
   plausible plate is read a second time on a strip cut around the plate found.
5. **Score**: the product of the per-character probabilities times the probability that no
   unexplained character sits inside the plate, lowered when the two reads disagree, when
   the layout shows a character-wide gap or occluder, or when the plate's colour contradicts
   its format. It behaves like the probability that the whole plate is right; see
   docs/plates.md for the calibration and how :data:`AUTO_OPEN_CONFIDENCE` was chosen.
6. **Colour** of the plate from its background pixels in HSV (after a half-strength
   grey-world white balance), helped by the text polarity (light text: blue/black plates).

Public API: :func:`read_plates`, :class:`PlateReader`, :class:`PlateResult`,
:class:`PlateReading`, :func:`load_image`, :data:`AUTO_OPEN_CONFIDENCE`, :data:`REASONS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from linli.vision.images import IMAGE_REASONS, ImageError, decode_image
from linli.vision.plate_grammar import (
    CN_FORMATS,
    CTCGrammarDecoder,
    PlateFormat,
    Reading,
    formats_for,
)

log = logging.getLogger(__name__)

#: A plate read with at least this confidence may open a gate without a guard's look.
#: Chosen on degraded copies of real photos (blur, motion, low resolution, JPEG, noise,
#: exposure, occluded and cut plates), face photos and synthetic plates of every format so
#: that no wrong plate scored at or above it, with a margin of ~0.1 over the highest wrong
#: one; see docs/plates.md ("Confidence and AUTO_OPEN_CONFIDENCE").
AUTO_OPEN_CONFIDENCE = 0.80

#: A reading is reported (with its confidence, which may be low) when all its characters but
#: the weakest one are this sure: a plate with one doubtful character (typically a blurred
#: province character) is worth showing to a guard; text that fits the plate grammar only
#: by chance (signs, faces, cut plates) is not reported at all.
MIN_REPORT_SUPPORT = 0.5

#: Decoded images never hold more pixels than this (JPEGs above it are decoded at 1/2, 1/4
#: or 1/8 scale by libjpeg; other formats above it, and any header above 200 MP, are refused
#: before their pixels are decoded).
MAX_PIXELS = 24_000_000
#: Larger images are decoded reduced / downscaled so that their long side is at most this;
#: plate boxes are still reported in the input image's pixels.
WORK_MAX_SIDE = 2048

#: Plate colours reported.
COLORS = ("blue", "yellow", "green", "white", "black", "unknown")

#: Stable reason codes (machine) -> English text (translated by the lead via gettext).
REASONS: dict[str, str] = {
    "ok": "Plate read",
    "uncertain": "Plate read with low confidence; a person should confirm it",
    "unrecognised": "Something that looks like a plate was found but it could not be read",
    "no_plate": "No licence plate found in the image",
    "read_failed": "The plate reader failed on this image",
    "models_missing": "The plate-reading models are not installed",
    # bad input: the shared image decoder's codes (unreadable_file, not_an_image,
    # corrupt_image, image_too_large, empty_image, unsupported_image)
    **IMAGE_REASONS,
}

_ERROR_CODES = frozenset({"read_failed", "models_missing", *IMAGE_REASONS})

# Recogniser input height and the horizontal stretch of plate strips (more CTC frames per
# character; plates are short lines of wide glyphs).
_REC_HEIGHT = 48
_STRETCH = 1.6
_MIN_STRIP_W = 96
_MAX_STRIP_W = 480


class PlateModelMissing(RuntimeError):
    """The OCR models shipped with rapidocr were not found (they are never downloaded)."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class PlateReading:
    text: str
    color: str
    confidence: float
    #: axis-aligned box of the plate in the input image: x1, y1, x2, y2 (pixels)
    box: tuple[int, int, int, int]
    #: the plate's four corners (tl, tr, br, bl) in the input image
    corners: list[tuple[float, float]]
    format: str
    kind: str
    display: str
    char_confidences: list[float] = field(default_factory=list)

    @property
    def auto_open(self) -> bool:
        return self.confidence >= AUTO_OPEN_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "color": self.color,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "display": self.display,
            "type": self.kind,
            "format": self.format,
            "auto_open": self.auto_open,
        }


@dataclass
class PlateResult:
    image: str
    #: ``ok`` (a plate at or above the auto-open threshold), ``uncertain`` (plates, all
    #: below it), ``unrecognised``, ``no_plate``, or an error code of :data:`REASONS`
    status: str
    plates: list[PlateReading] = field(default_factory=list)
    elapsed_ms: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status not in _ERROR_CODES

    @property
    def error(self) -> str | None:
        return None if self.ok else self.status

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, self.status)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "plates": [p.to_dict() for p in self.plates],
            "status": self.status,
        }
        if self.status != "ok":
            out["reason"] = self.status
            out["message"] = self.reason
        if not self.ok:
            out["error"] = self.status
        return out


# --------------------------------------------------------------------------------------------
# Image loading
# --------------------------------------------------------------------------------------------

ImageSource = str | Path | bytes | bytearray | np.ndarray


def _describe(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, np.ndarray):
        return "<array>"
    return "<bytes>"


_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
)


def _has_image_signature(head: bytes) -> bool:
    """The data starts like an image (so failing to decode it means it is damaged)."""
    if head.startswith(_SIGNATURES):
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _head(source: ImageSource) -> bytes:
    try:
        if isinstance(source, bytes | bytearray):
            return bytes(source[:16])
        if isinstance(source, str | Path):
            with Path(source).open("rb") as fh:
                return fh.read(16)
    except OSError:
        return b""
    return b""


def decode(
    source: ImageSource, *, max_pixels: int = MAX_PIXELS, max_side: int = WORK_MAX_SIDE
) -> tuple[np.ndarray, float]:
    """Decode ``source`` to a BGR uint8 array and the scale from input to array pixels.

    Uses the shared safe decoder (:mod:`linli.vision.images`): the header is checked before
    the pixels are decoded, large JPEGs are decoded at 1/2-1/8 scale, the result is at most
    ``max_side`` on its long side. Bad input raises :class:`ImageError` (``code`` in
    :data:`REASONS`); a file that starts like an image but cannot be decoded is
    ``corrupt_image``. Arrays are taken as BGR (OpenCV's order).
    """
    try:
        decoded = decode_image(
            source, max_pixels=max_pixels, max_side=max_side, channel_order="bgr"
        )
    except ImageError as exc:
        if exc.code == "not_an_image" and _has_image_signature(_head(source)):
            raise ImageError("corrupt_image", exc.detail) from exc
        raise
    bgr = np.ascontiguousarray(decoded.rgb[:, :, ::-1])
    return bgr, float(decoded.scale)


def load_image(
    source: ImageSource, *, max_pixels: int = MAX_PIXELS, max_side: int = WORK_MAX_SIDE
) -> np.ndarray:
    """Decode ``source`` (path, encoded bytes or a BGR array) to a BGR uint8 array.

    See :func:`decode`; raises :class:`ImageError` for bad input.
    """
    return decode(source, max_pixels=max_pixels, max_side=max_side)[0]


# --------------------------------------------------------------------------------------------
# Geometry and colour helpers
# --------------------------------------------------------------------------------------------


def _order_quad(pts: np.ndarray) -> np.ndarray:
    """Order 4 points as tl, tr, br, bl."""
    pts = np.asarray(pts, dtype=np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    tl, br = pts[np.argmin(s)], pts[np.argmax(s)]
    tr, bl = pts[np.argmin(d)], pts[np.argmax(d)]
    quad = np.array([tl, tr, br, bl], dtype=np.float32)
    if len({tuple(p) for p in quad.tolist()}) < 4:  # degenerate ordering: use the angle
        c = pts.mean(axis=0)
        ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
        quad = pts[np.argsort(ang)]
        start = int(np.argmin(quad.sum(axis=1)))
        quad = np.roll(quad, -start, axis=0)
    return quad


def _quad_size(q: np.ndarray) -> tuple[float, float]:
    w = float(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2])))
    h = float(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    return w, h


def _min_rect_quad(points: np.ndarray) -> np.ndarray:
    rect = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 2))
    return _order_quad(cv2.boxPoints(rect))


def _aabb(q: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    x1 = int(np.clip(np.floor(q[:, 0].min()), 0, w - 1))
    y1 = int(np.clip(np.floor(q[:, 1].min()), 0, h - 1))
    x2 = int(np.clip(np.ceil(q[:, 0].max()), 0, w - 1))
    y2 = int(np.clip(np.ceil(q[:, 1].max()), 0, h - 1))
    return x1, y1, x2, y2


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _overlap_small(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _white_balance_gains(img: np.ndarray) -> np.ndarray:
    """Grey-world gains (B, G, R) for the whole photo, at half strength and bounded."""
    small = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    means = small.astype(np.float32).mean(axis=0) + 1.0
    # half strength: grey-world over-corrects scenes dominated by one colour (a green car
    # behind a green plate)
    gains = np.sqrt(means.mean() / means)
    return np.clip(gains, 0.75, 1.33).astype(np.float32)


def _polarity_dark_text(gray: np.ndarray) -> bool | None:
    """True if the text in a plate strip is darker than its background (None: unsure)."""
    h, w = gray.shape
    core = gray[h // 5 : h - h // 5, w // 10 : w - w // 10]
    if core.size == 0:
        return None
    t, _ = cv2.threshold(core, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = float((core > t).mean())
    if abs(bright - 0.5) < 0.04:
        return None
    # text strokes are the minority class
    return bright > 0.5


def _normalise_strip(strip_bgr: np.ndarray, dark_text: bool | None) -> np.ndarray:
    """Grey, dark text on light background, contrast stretched; returned as 3-channel."""
    g = cv2.cvtColor(strip_bgr, cv2.COLOR_BGR2GRAY)
    if dark_text is False:
        g = 255 - g
    lo, hi = np.percentile(g, (1, 99))
    if hi - lo >= 8:
        g = np.clip((g.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def classify_color(plate_bgr: np.ndarray, dark_text: bool | None = None) -> str:
    """Plate colour from the background pixels of a (white-balanced) plate crop.

    Background = majority side of an Otsu split of the grey image (characters are the
    minority). Saturated backgrounds are classified by hue (blue, yellow, green); unsaturated
    ones by brightness (white, black). The text polarity settles blue vs green under colour
    casts (blue plates carry light text, green ones dark text).
    """
    if plate_bgr.size == 0:
        return "unknown"
    gray = cv2.cvtColor(plate_bgr, cv2.COLOR_BGR2GRAY)
    t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = gray > t
    if dark_text is None:
        dark_text = bool(bright.mean() > 0.5)
    bg = bright if dark_text else ~bright
    if bg.sum() < 10:
        return "unknown"
    hsv = cv2.cvtColor(plate_bgr, cv2.COLOR_BGR2HSV)
    hue = hsv[:, :, 0][bg].astype(np.float32)
    sat = hsv[:, :, 1][bg].astype(np.float32)
    val = hsv[:, :, 2][bg].astype(np.float32)
    saturated = (sat > 60) & (val > 50) | (sat > 90) & (val > 25)
    fractions = {
        "yellow": float((saturated & (hue >= 11) & (hue < 34)).mean()),
        "green": float((saturated & (hue >= 34) & (hue < 95)).mean()),
        "blue": float((saturated & (hue >= 95) & (hue <= 135)).mean()),
    }
    best = max(fractions, key=lambda k: fractions[k])
    if fractions[best] >= 0.3:
        # blue plates carry light text, yellow / green ones dark text: under a colour cast
        # the polarity decides between the neighbouring hues
        if best == "green" and not dark_text:
            return "blue"
        if best == "blue" and dark_text:
            return "green" if float(np.median(hue[saturated])) < 105 else "blue"
        if best == "yellow" and not dark_text:
            return "black" if float(np.median(val)) < 110 else "yellow"
        return best
    if dark_text:
        # new-energy plates fade from near-white at the top to green at the bottom
        hh = hsv.shape[0]
        low = np.zeros_like(bg)
        low[hh // 2 :] = True
        sel = bg & low
        if sel.sum() >= 10:
            hl = hsv[:, :, 0][sel]
            green = (hsv[:, :, 1][sel] > 60) & (hsv[:, :, 2][sel] > 50) & (hl >= 34) & (hl < 95)
            if float(green.mean()) >= 0.35:
                return "green"
    v = float(np.median(val))
    if dark_text:
        return "white" if v >= 90 else "black"
    return "black" if v < 140 else "white"


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


def _model_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


def _find_model(model_dir: Path, kind: str, preferred: str) -> Path:
    p = model_dir / preferred
    if p.is_file():
        return p
    found = sorted(model_dir.glob(f"*{kind}*.onnx"))
    if not found:
        raise PlateModelMissing(
            f"no {kind} ONNX model in {model_dir}; reinstall the rapidocr wheel "
            "(models are never downloaded at run time)"
        )
    return found[0]


@dataclass
class _Candidate:
    quad: np.ndarray  # tl, tr, br, bl in image coordinates
    source: str
    prior: float


@dataclass
class _Read:
    reading: Reading
    quad: np.ndarray
    plate_quad: np.ndarray
    color: str
    confidence: float
    #: colour measured from the pixels (``color`` may be settled by the format)
    measured_color: str = "unknown"
    dark_text: bool | None = None

    @property
    def support(self) -> float:
        """Confidence of the reading without its weakest character."""
        return _support(self.reading)

    @property
    def plate_like(self) -> bool:
        """Looks like a plate that could not be read: most characters fit the grammar with
        some certainty on a plate-coloured background."""
        confs = self.reading.char_confidences
        return self.color != "unknown" and sum(c >= 0.5 for c in confs) >= 0.7 * len(confs)


def _support(reading: Reading) -> float:
    confs = sorted(reading.char_confidences)
    p = 1.0 - reading.unexplained
    for c in confs[1:]:
        p *= c
    return p


class PlateReader:
    """Reads licence plates in photos. Create once and reuse (models load on first use).

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (1 = one core, the default).
    ``det_max_side`` is the long side the whole photo is scaled to for text detection.
    ``countries`` selects the plate formats from the pattern table (or pass ``formats``).
    """

    def __init__(
        self,
        *,
        countries: Sequence[str] = ("CN",),
        formats: Sequence[PlateFormat] | None = None,
        threads: int = 1,
        det_max_side: int = 512,
        max_candidates: int = 4,
        model_dir: str | Path | None = None,
    ) -> None:
        self.formats = tuple(formats) if formats is not None else formats_for(countries)
        self.threads = max(1, int(threads))
        self.det_max_side = int(det_max_side)
        self.max_candidates = int(max_candidates)
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._lock = threading.Lock()
        self._det_lock = threading.Lock()
        self._det: Any = None
        self._rec: Any = None
        self._rec_input = "x"
        self._decoder: CTCGrammarDecoder | None = None

    # ---- models -------------------------------------------------------------------------

    def _load(self) -> None:
        if self._rec is not None:
            return
        with self._lock:
            if self._rec is not None:
                return
            import onnxruntime as ort
            from rapidocr import RapidOCR

            mdir = self._model_dir or _model_dir()
            det_path = _find_model(mdir, "det", "PP-OCRv6_det_small.onnx")
            rec_path = _find_model(mdir, "rec", "PP-OCRv6_rec_small.onnx")
            cls_path = _find_model(mdir, "cls", "ch_ppocr_mobile_v2.0_cls_mobile.onnx")
            det = RapidOCR(
                params={
                    "Global.log_level": "error",
                    "Global.use_cls": False,
                    "Global.use_rec": False,
                    "Global.model_root_dir": str(mdir),
                    "Det.model_path": str(det_path),
                    "Rec.model_path": str(rec_path),
                    "Cls.model_path": str(cls_path),
                    "Det.limit_type": "max",
                    "Det.limit_side_len": self.det_max_side,
                    "Det.box_thresh": 0.5,
                    "Det.unclip_ratio": 1.6,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            rec = ort.InferenceSession(
                str(rec_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            meta = rec.get_modelmeta().custom_metadata_map
            if "character" not in meta:
                raise PlateModelMissing(f"{rec_path} carries no character list")
            vocab = ["<blank>", *meta["character"].splitlines(), " "]
            out_dim = rec.get_outputs()[0].shape[-1]
            if isinstance(out_dim, int) and out_dim != len(vocab):
                raise PlateModelMissing(f"{rec_path}: vocabulary does not match the output")
            self._decoder = CTCGrammarDecoder(vocab, self.formats)
            self._rec_input = rec.get_inputs()[0].name
            self._det = det
            self._rec = rec

    def warm_up(self) -> None:
        """Load the models and run them once (first calls are slower)."""
        self._load()
        dummy = np.full((256, 256, 3), 128, dtype=np.uint8)
        cv2.putText(dummy, "A12345", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
        self.read_array(dummy)

    # ---- public API -----------------------------------------------------------------------

    def read(self, source: ImageSource) -> PlateResult:
        """Read the plates in one image. Never raises for bad input: errors are a status."""
        t0 = time.perf_counter()
        name = _describe(source)
        try:
            img, scale = decode(source)
        except ImageError as exc:
            return PlateResult(name, exc.code, [], _ms(t0), exc.detail)
        try:
            plates, plate_like = self._read_array(img)
            if scale != 1.0:
                plates = [_rescale(p, 1.0 / scale) for p in plates]
        except PlateModelMissing:
            raise
        except Exception as exc:  # the reader must not take the gate down
            log.exception("plate reading failed on %s", name)
            return PlateResult(name, "read_failed", [], _ms(t0), type(exc).__name__)
        if plates:
            status = "ok" if any(p.auto_open for p in plates) else "uncertain"
        else:
            status = "unrecognised" if plate_like else "no_plate"
        return PlateResult(name, status, plates, _ms(t0))

    def read_array(self, img: np.ndarray) -> list[PlateReading]:
        """Plates in a BGR uint8 image array (best first). Raises ImageError if unusable."""
        prepared, scale = decode(img)
        plates = self._read_array(prepared)[0]
        return [_rescale(p, 1.0 / scale) for p in plates] if scale != 1.0 else plates

    # ---- pipeline -------------------------------------------------------------------------

    def _read_array(self, img: np.ndarray) -> tuple[list[PlateReading], bool]:
        self._load()
        h, w = img.shape[:2]
        gains = _white_balance_gains(img)
        seen: list[np.ndarray] = []
        reads = self._read_candidates(
            img, gains, self._det_candidates(img, self.det_max_side), seen
        )
        if not any(r.support >= MIN_REPORT_SUPPORT for r in reads):
            # second pass: colour regions and a finer detection
            more = self._color_candidates(img)
            if max(h, w) > self.det_max_side * 1.4:
                more += self._det_candidates(img, min(int(self.det_max_side * 2), max(h, w)))
            reads += self._read_candidates(img, gains, more, seen)
        plate_like = any(r.plate_like for r in reads)
        groups = self._group(reads, w, h)
        # re-read every plausible plate on a strip cut around the plate found by the first
        # read (a second, independent geometry): agreement confirms, disagreement costs
        for g in groups:
            best = max(g, key=lambda r: r.confidence)
            if best.support < MIN_REPORT_SUPPORT:
                continue
            q = _scale_quad(best.plate_quad, 1.12, 1.3)
            again = self._read_quad(img, gains, q)
            if again is not None:
                g.append(again)
        merged = [m for m in (self._merge(g) for g in groups) if m is not None]
        merged = [r for r in merged if r.support >= MIN_REPORT_SUPPORT]
        for r in merged:
            # a plate whose layout or colour contradicts its format is missing characters
            # (covered, cut off, or an 8-character plate read as 7): it must not auto-open
            r.confidence *= _color_consistency(r.measured_color, r.reading.format)
            r.confidence *= _layout_consistency(
                img, gains, r.plate_quad, len(r.reading.text), r.dark_text
            )
        merged.sort(key=lambda r: r.confidence, reverse=True)
        return [self._to_plate(r, w, h) for r in merged], plate_like

    @staticmethod
    def _group(reads: list[_Read], w: int, h: int) -> list[list[_Read]]:
        """Group reads of the same plate (overlapping plate boxes), strongest first."""
        groups: list[list[_Read]] = []
        for r in sorted(reads, key=lambda r: r.confidence, reverse=True):
            box = _aabb(r.plate_quad, w, h)
            for g in groups:
                if _overlap_small(box, _aabb(g[0].plate_quad, w, h)) > 0.4:
                    g.append(r)
                    break
            else:
                groups.append([r])
        return groups

    @staticmethod
    def _merge(group: list[_Read]) -> _Read | None:
        """One reading per plate: the most confident text; other texts read for the same
        plate with some confidence lower it (at least one of the reads is wrong)."""
        best_by_text: dict[str, _Read] = {}
        for r in group:
            cur = best_by_text.get(r.reading.text)
            if cur is None or r.confidence > cur.confidence:
                best_by_text[r.reading.text] = r
        if not best_by_text:
            return None
        ranked = sorted(best_by_text.values(), key=lambda r: r.confidence, reverse=True)
        top = ranked[0]
        conf = top.confidence
        for other in ranked[1:]:
            conf *= 1.0 - other.confidence
        return _Read(
            top.reading,
            top.quad,
            top.plate_quad,
            top.color,
            conf,
            top.measured_color,
            top.dark_text,
        )

    def _to_plate(self, r: _Read, w: int, h: int) -> PlateReading:
        rd = r.reading
        return PlateReading(
            text=rd.text,
            color=r.color,
            confidence=float(r.confidence),
            box=_aabb(r.plate_quad, w, h),
            corners=[(float(x), float(y)) for x, y in r.plate_quad],
            format=rd.format.name,
            kind=rd.format.kind,
            display=rd.format.display(rd.text),
            char_confidences=[round(c, 4) for c in rd.char_confidences],
        )

    # candidates ------------------------------------------------------------------------------

    def _det_candidates(self, img: np.ndarray, max_side: int) -> list[_Candidate]:
        h, w = img.shape[:2]
        det = self._det
        # letterbox extreme shapes (a 20 x 3000 strip) so the detector's scaling keeps both
        # sides usable; padding goes right / bottom so coordinates are unchanged
        pad_h = max(0, max(w, 32) // 8 - h)
        pad_w = max(0, max(h, 32) // 8 - w)
        if pad_h or pad_w:
            img = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        with self._det_lock:
            # the detector scales the photo so its long side is ``max_side``
            det.cfg.Det.limit_side_len = max_side
            if det.text_det is not None:
                det.text_det.limit_side_len = max_side
            res = det(img, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(res, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return []
        quads = [_order_quad(b) for b in np.asarray(boxes, dtype=np.float32)]
        cands: list[_Candidate] = []
        min_h = max(8.0, 0.008 * max(h, w))
        for q in quads:
            bw, bh = _quad_size(q)
            if bh < min_h or bw < 2 * min_h:
                continue
            ar = bw / max(bh, 1e-6)
            if 1.3 <= ar <= 10:
                cands.append(_Candidate(q, "det", _shape_prior(ar)))
        # unions of neighbouring boxes on one text line (a split plate)
        for i in range(len(quads)):
            for j in range(len(quads)):
                if i == j:
                    continue
                a, b = quads[i], quads[j]
                _, ah = _quad_size(a)
                bw, bh = _quad_size(b)
                if min(ah, bh) < min_h or max(ah, bh) > 1.6 * min(ah, bh):
                    continue
                ca, cb = a.mean(axis=0), b.mean(axis=0)
                if cb[0] <= ca[0] or abs(cb[1] - ca[1]) > 0.45 * max(ah, bh):
                    continue
                gap = float(b[:, 0].min() - a[:, 0].max())
                if gap > 1.2 * max(ah, bh):
                    continue
                u = _min_rect_quad(np.concatenate([a, b]))
                uw, uh = _quad_size(u)
                ar = uw / max(uh, 1e-6)
                if 2.0 <= ar <= 8:
                    cands.append(_Candidate(u, "det_union", _shape_prior(ar) - 0.1))
        cands.sort(key=lambda c: c.prior, reverse=True)
        return cands

    def _color_candidates(self, img: np.ndarray) -> list[_Candidate]:
        h, w = img.shape[:2]
        s = min(1.0, 800.0 / max(h, w))
        small = (
            cv2.resize(
                img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
            )
            if s < 1
            else img
        )
        gains = _white_balance_gains(small)
        bal = np.clip(small.astype(np.float32) * gains, 0, 255).astype(np.uint8)
        hsv = cv2.cvtColor(bal, cv2.COLOR_BGR2HSV)
        sh, sw = small.shape[:2]
        out: list[_Candidate] = []
        ranges = (  # blue, yellow, green
            ((100, 90, 50), (130, 255, 255)),
            ((15, 90, 90), (34, 255, 255)),
            ((35, 60, 80), (85, 255, 255)),
        )
        kx = max(3, sw // 80)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kx, max(3, kx // 3)))
        for lo, hi in ranges:
            mask = cv2.inRange(hsv, np.array(lo), np.array(hi))
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            for c in contours:
                area = cv2.contourArea(c)
                if area < 0.0004 * sh * sw or area > 0.15 * sh * sw:
                    continue
                (_, _), (rw, rh), _ = cv2.minAreaRect(c)
                long_, short = max(rw, rh), min(rw, rh)
                if short < 6:
                    continue
                ar = long_ / short
                fill = area / (rw * rh + 1e-6)
                if not (2.0 <= ar <= 6.0) or fill < 0.6:
                    continue
                q = _min_rect_quad(c.reshape(-1, 2)) / s
                # a little margin around the coloured area
                centre = q.mean(axis=0)
                q = (q - centre) * np.array([1.06, 1.15], dtype=np.float32) + centre
                out.append(_Candidate(q.astype(np.float32), "color", _shape_prior(ar) + fill - 1))
        out.sort(key=lambda c: c.prior, reverse=True)
        return out[:4]

    # reading ----------------------------------------------------------------------------------

    def _read_candidates(
        self, img: np.ndarray, gains: np.ndarray, cands: list[_Candidate], seen: list[np.ndarray]
    ) -> list[_Read]:
        out: list[_Read] = []
        h, w = img.shape[:2]
        done = 0
        # plate-coloured candidates first (cheap look at a tiny strip)
        scored = [(c, _color_prior(img, gains, c.quad)) for c in cands]
        scored.sort(key=lambda cp: cp[0].prior + cp[1], reverse=True)
        for cand, colour_prior in scored:
            if done >= self.max_candidates:
                break
            if colour_prior < 0.3 and any(r.confidence >= AUTO_OPEN_CONFIDENCE for r in out):
                # a plate is read; text on a background of no plate colour (signs, ads,
                # stickers) is not worth the time any more
                continue
            box = _aabb(cand.quad, w, h)
            if any(_iou(box, _aabb(s, w, h)) > 0.8 for s in seen):
                continue
            seen.append(cand.quad)
            done += 1
            r = self._read_quad(img, gains, cand.quad)
            if r is not None:
                out.append(r)
        return out

    def _read_quad(self, img: np.ndarray, gains: np.ndarray, quad: np.ndarray) -> _Read | None:
        assert self._decoder is not None
        bw, bh = _quad_size(quad)
        if bh < 2 or bw < 2:
            return None
        strip_w = round(_REC_HEIGHT * bw / bh * _STRETCH)
        strip_w = int(np.clip(strip_w, _MIN_STRIP_W, _MAX_STRIP_W))
        dst = np.array(
            [[0, 0], [strip_w, 0], [strip_w, _REC_HEIGHT], [0, _REC_HEIGHT]], dtype=np.float32
        )
        m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
        strip = cv2.warpPerspective(
            img,
            m,
            (strip_w, _REC_HEIGHT),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        gray = cv2.cvtColor(strip, cv2.COLOR_BGR2GRAY)
        dark_text = _polarity_dark_text(gray)
        probs = self._recognise(_normalise_strip(strip, dark_text))
        readings = self._decoder.decode(probs)
        if not readings:
            return None
        best = readings[0]
        frames = probs.shape[0]
        plate_rect = _plate_rect_in_strip(best, frames, strip_w, gray, dark_text)
        minv = np.linalg.inv(m)
        plate_quad = cv2.perspectiveTransform(plate_rect[None], minv)[0].astype(np.float32)
        # colour from the plate's inner area of the white-balanced strip
        x1, y1, x2, y2 = _inner_box(plate_rect, strip_w)
        inner = strip[y1:y2, x1:x2]
        if inner.size:
            inner = np.clip(inner.astype(np.float32) * gains, 0, 255).astype(np.uint8)
        measured = classify_color(inner, dark_text) if inner.size else "unknown"
        color = _color_for_format(measured, best.format, dark_text)
        return _Read(best, quad, plate_quad, color, best.confidence, measured, dark_text)

    def _recognise(self, strip: np.ndarray) -> np.ndarray:
        x = strip.astype(np.float32) * (2.0 / 255.0) - 1.0
        x = x.transpose(2, 0, 1)[None]
        out = self._rec.run(None, {self._rec_input: x})[0]
        return np.asarray(out[0], dtype=np.float32)


def _scale_quad(q: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Scale a quad about its centre along its own width (sx) and height (sy) directions."""
    c = q.mean(axis=0)
    ex = ((q[1] - q[0]) + (q[2] - q[3])) / 2
    ey = ((q[3] - q[0]) + (q[2] - q[1])) / 2
    ux = ex / (np.linalg.norm(ex) + 1e-6)
    uy = ey / (np.linalg.norm(ey) + 1e-6)
    out = []
    for p in q:
        d = p - c
        a, b = float(d @ ux), float(d @ uy)
        out.append(c + ux * a * sx + uy * b * sy)
    return np.array(out, dtype=np.float32)


_LIGHT_TEXT_COLORS = ("blue", "black")
_SATURATED_COLORS = ("blue", "yellow", "green")


def _color_consistency(measured: str, fmt: PlateFormat) -> float:
    """Confidence factor for a measured plate colour the format does not come in.

    A saturated colour (blue / yellow / green) is measured reliably, so a mismatch is strong
    evidence of a wrong format (typically a green 8-character plate with one character
    covered or cut off, read as a 7-character plate). White and black are less certain
    (lighting), unknown says nothing.
    """
    if not fmt.colors or measured in fmt.colors or measured == "unknown":
        return 1.0
    if measured in _SATURATED_COLORS:
        return 0.2
    return 0.9


def _layout_consistency(
    img: np.ndarray,
    gains: np.ndarray,
    plate_quad: np.ndarray,
    n_chars: int,
    dark_text: bool | None,
) -> float:
    """Confidence factor from the plate's layout: characters are evenly spaced, so a blank
    about as wide as a character inside the text (a covered or missing character that the
    reading closed up) means the reading is incomplete.

    Works on a strip warped from the plate quad, in Lab: a column is background when all
    its pixels are close to the background colour of their rows (plates may have a
    gradient), and "solid" when it is uniform but not background - an occluder of another
    colour. A run of either about a character wide inside the text is evidence: normal
    plates show background runs of at most ~0.5 character pitch (around a narrow "1") and
    solid runs of ~0.2 (a stem); a missing character leaves ~1 pitch.
    """
    if n_chars < 3:
        return 1.0
    h = _REC_HEIGHT
    pw, ph = _quad_size(plate_quad)
    if ph < 2 or pw < 2:
        return 1.0
    wp = round(h * pw / ph * _STRETCH)
    pitch = wp / 1.21 / (n_chars - 1 + 0.4)
    if pitch < 2 or wp > 4000:
        return 1.0
    dst = np.array([[0, 0], [wp, 0], [wp, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(plate_quad.astype(np.float32), dst)
    strip = cv2.warpPerspective(
        img, m, (wp, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    strip = np.clip(strip.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    ya, yb = int(0.22 * h), int(0.78 * h)
    lab = cv2.cvtColor(strip, cv2.COLOR_BGR2LAB).astype(np.float32)[ya:yb]
    gray = cv2.cvtColor(strip, cv2.COLOR_BGR2GRAY).astype(np.float32)[ya:yb]
    if dark_text is False:
        gray = 255.0 - gray
    bg_level = float(np.percentile(gray, 85))
    bg_pix = gray >= bg_level - 0.15 * (bg_level - float(np.percentile(gray, 5)))
    if bg_pix.sum() < 20:
        return 1.0
    # background colour per row (plates may have a vertical gradient, e.g. new-energy green)
    overall = np.median(lab[bg_pix], axis=0)
    bg_row = np.empty((lab.shape[0], 3), dtype=np.float32)
    for y in range(lab.shape[0]):
        sel = bg_pix[y]
        bg_row[y] = np.median(lab[y][sel], axis=0) if sel.sum() >= 5 else overall
    dist = np.linalg.norm(lab - bg_row[:, None, :], axis=2)
    ink_dist = float(np.percentile(dist, 95))
    if ink_dist < 12:  # no contrast: nothing to judge
        return 1.0
    # background columns: every pixel close to the plate background
    blank = (dist > 0.4 * ink_dist).mean(axis=0) < 0.03
    # solid columns: uniform (all pixels close to the column's own median) but not
    # background, i.e. an occluder of some other colour; a character stem is one too but
    # never wider than ~0.2 pitch
    col_med = np.median(lab, axis=0)
    own = np.linalg.norm(lab - col_med[None, :, :], axis=2)
    far = np.median(dist, axis=0) > 0.5 * ink_dist
    solid = ((own > 0.4 * ink_dist).mean(axis=0) < 0.05) & far
    cols = np.nonzero(~blank)[0]
    if cols.size == 0:
        return 1.0
    a, b = int(cols[0]), int(cols[-1]) + 1
    gap = _longest_run(blank[a:b]) / pitch
    occluded = _longest_run(solid[a:b]) / pitch
    f_gap = (0.95 - gap) / 0.35
    f_occ = (0.8 - occluded) / 0.35
    return float(np.clip(min(f_gap, f_occ), 0.1, 1.0))


def _longest_run(mask: np.ndarray) -> int:
    best = cur = 0
    for v in mask.tolist():
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def _color_for_format(color: str, fmt: PlateFormat, dark_text: bool | None) -> str:
    """Use the plate format to settle a doubtful colour (e.g. 8-character plates are green).

    The measured colour is kept when the format allows it or when it contradicts the text
    polarity the format's colours would have.
    """
    if not fmt.colors or color in fmt.colors:
        return color
    compatible = [
        c for c in fmt.colors if dark_text is None or (c in _LIGHT_TEXT_COLORS) != bool(dark_text)
    ]
    if color == "unknown" and compatible:
        return compatible[0]
    if len(fmt.colors) == 1 and compatible:
        return compatible[0]
    return color


_COLOR_PRIOR = {
    "blue": 0.6,
    "yellow": 0.6,
    "green": 0.5,
    "white": 0.1,
    "black": 0.1,
    "unknown": -0.4,
}


def _color_prior(img: np.ndarray, gains: np.ndarray, quad: np.ndarray) -> float:
    """How plate-like the colours of a candidate region are (from a tiny warped strip)."""
    bw, bh = _quad_size(quad)
    if bh < 2 or bw < 2:
        return -1.0
    sh = 16
    sw = int(np.clip(round(sh * bw / bh), 16, 160))
    dst = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    strip = cv2.warpPerspective(
        img, m, (sw, sh), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    inner = strip[3:-3, max(1, sw // 10) : sw - max(1, sw // 10)]
    if inner.size == 0:
        return -1.0
    inner = np.clip(inner.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    return _COLOR_PRIOR.get(classify_color(inner), 0.0)


def _shape_prior(aspect: float) -> float:
    """How plate-like a text box's aspect ratio is (plates with margins: about 3-4)."""
    return -abs(np.log(aspect / 3.4))


def _plate_rect_in_strip(
    reading: Reading, frames: int, strip_w: int, gray: np.ndarray, dark_text: bool | None
) -> np.ndarray:
    """The plate's rectangle in strip coordinates, from the character positions.

    Horizontally: the plate is ~1.2x the distance between the centres of its first and last
    characters (440 mm plate, 364 mm between the outer character centres). Vertically: the
    characters are 90 of the plate's 140 mm; their rows come from the strip's ink profile.
    """
    px = strip_w / max(frames, 1)
    spans = reading.spans
    c_first = (spans[0][0] + spans[0][1]) / 2 * px
    c_last = (spans[-1][0] + spans[-1][1]) / 2 * px
    n = len(spans)
    dist = max(c_last - c_first, px * n)
    mid = (c_first + c_last) / 2
    half_w = dist * 1.21 / 2
    x1, x2 = mid - half_w, mid + half_w
    # vertical extent of the characters
    h = gray.shape[0]
    xa, xb = int(max(0, c_first)), int(min(strip_w, c_last + 1))
    y1, y2 = 0.18 * h, 0.82 * h
    if xb - xa > 4:
        region = gray[:, xa:xb]
        t, _ = cv2.threshold(region, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        ink = (region < t) if dark_text is not False else (region > t)
        frac = ink.mean(axis=1)
        rows = np.nonzero((frac > 0.12) & (frac < 0.85))[0]
        if rows.size:
            centre = h // 2
            # the contiguous run of text rows closest to the middle
            runs = np.split(rows, np.nonzero(np.diff(rows) > 1)[0] + 1)
            run = min(
                runs,
                key=lambda r: (
                    0 if r[0] <= centre <= r[-1] else min(abs(r[0] - centre), abs(r[-1] - centre))
                ),
            )
            if run[-1] - run[0] >= 0.3 * h:
                y1, y2 = float(run[0]), float(run[-1] + 1)
    text_h = y2 - y1
    cy = (y1 + y2) / 2
    half_h = text_h * 140 / 90 / 2
    return np.array(
        [[x1, cy - half_h], [x2, cy - half_h], [x2, cy + half_h], [x1, cy + half_h]],
        dtype=np.float32,
    )


def _inner_box(rect: np.ndarray, strip_w: int) -> tuple[int, int, int, int]:
    x1, x2 = float(rect[0, 0]), float(rect[1, 0])
    y1, y2 = float(rect[0, 1]), float(rect[2, 1])
    dx, dy = (x2 - x1) * 0.06, (y2 - y1) * 0.18
    xa = int(np.clip(x1 + dx, 0, strip_w))
    xb = int(np.clip(x2 - dx, 0, strip_w))
    ya = int(np.clip(y1 + dy, 0, _REC_HEIGHT))
    yb = int(np.clip(y2 - dy, 0, _REC_HEIGHT))
    return xa, ya, xb, yb


def _rescale(p: PlateReading, f: float) -> PlateReading:
    """Map a reading from the (downscaled) working image back to input pixels."""
    corners = [(x * f, y * f) for x, y in p.corners]
    x1, y1, x2, y2 = p.box
    box = (int(x1 * f), int(y1 * f), int(np.ceil(x2 * f)), int(np.ceil(y2 * f)))
    return replace(p, corners=corners, box=box)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 1)


# --------------------------------------------------------------------------------------------
# CCPD ground truth (the dataset our test photos come from)
# --------------------------------------------------------------------------------------------

CCPD_PROVINCES = "皖沪津渝冀晋蒙辽吉黑苏浙京闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新警学O"
CCPD_ALPHABETS = "ABCDEFGHJKLMNPQRSTUVWXYZO"
CCPD_ADS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O"


def parse_ccpd_filename(name: str) -> tuple[str, tuple[int, int, int, int]] | None:
    """Plate text and bounding box encoded in a CCPD file name, or None if it is not one.

    Fields are separated by ``-``: field 3 is ``x1&y1_x2&y2``, field 5 the plate as indices
    into the province / alphabet / ads tables (``O`` = no character).
    """
    stem = Path(name).stem
    parts = stem.split("-")
    if len(parts) < 5:
        return None
    try:
        corners = [tuple(int(v) for v in xy.split("&")) for xy in parts[2].split("_")]
        (x1, y1), (x2, y2) = corners[0], corners[1]
        idx = [int(v) for v in parts[4].split("_")]
        chars = [CCPD_PROVINCES[idx[0]], CCPD_ALPHABETS[idx[1]]]
        chars += [CCPD_ADS[i] for i in idx[2:]]
    except (ValueError, IndexError):
        return None
    text = "".join(c for c in chars if c != "O")
    return text, (x1, y1, x2, y2)


_default_reader: PlateReader | None = None
_default_lock = threading.Lock()


def get_reader() -> PlateReader:
    """The process-wide default reader (one core, Chinese formats)."""
    global _default_reader
    if _default_reader is None:
        with _default_lock:
            if _default_reader is None:
                _default_reader = PlateReader()
    return _default_reader


def read_plates(source: ImageSource, reader: PlateReader | None = None) -> PlateResult:
    """Read the licence plates in an image (path, encoded bytes or BGR array).

    Never raises for bad input; check ``result.status`` (see :data:`REASONS`).
    """
    return (reader or get_reader()).read(source)


__all__ = [
    "AUTO_OPEN_CONFIDENCE",
    "CN_FORMATS",
    "COLORS",
    "MAX_PIXELS",
    "MIN_REPORT_SUPPORT",
    "REASONS",
    "WORK_MAX_SIDE",
    "ImageError",
    "PlateModelMissing",
    "PlateReader",
    "PlateReading",
    "PlateResult",
    "classify_color",
    "decode",
    "get_reader",
    "load_image",
    "parse_ccpd_filename",
    "read_plates",
]
