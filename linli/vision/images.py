"""Safe image decoding shared by the vision code.

Every image that reaches a vision model goes through :func:`decode_image` (or
:func:`load_rgb`). It never lets a library exception escape: anything wrong with the input
becomes an :class:`ImageError` with a stable machine code (``IMAGE_REASONS``).

Protection against hostile or broken input:

* the byte size is checked before anything is read into memory (``max_bytes``);
* the pixel count is read from the header *before* the pixels are decoded; JPEGs that are too
  large are decoded at a reduced scale by the JPEG decoder itself (DCT scaling via PIL's
  ``draft``), so a 50-megapixel photo never needs 150 MB; other formats above the limit are
  refused; headers claiming absurd sizes are refused outright;
* truncated or corrupt files are reported as ``corrupt_image`` (PIL's
  ``LOAD_TRUNCATED_IMAGES`` is never switched on);
* EXIF orientation is applied, alpha is composited on white, 16-bit and float images are scaled
  to 8 bits, palette and CMYK images are converted: the result is always a C-contiguous
  ``uint8`` array of shape ``(height, width, 3)`` in RGB order.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeAlias

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_REASONS",
    "MAX_DECODE_PIXELS",
    "MAX_HEADER_PIXELS",
    "MAX_IMAGE_BYTES",
    "DecodedImage",
    "ImageError",
    "ImageSource",
    "decode_image",
    "load_rgb",
]

#: Stable reason codes for images that cannot be used, with their English text.
IMAGE_REASONS: dict[str, str] = {
    "unreadable_file": "The file cannot be read",
    "not_an_image": "The file is not an image in a supported format",
    "corrupt_image": "The image is damaged or truncated",
    "image_too_large": "The image is too large",
    "empty_image": "The image is empty",
    "unsupported_image": "The image data has an unsupported layout or type",
}

#: Refuse encoded inputs bigger than this many bytes without reading them.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
#: Never hold more decoded pixels than this (24 MP ≈ 72 MB as RGB).
MAX_DECODE_PIXELS = 24_000_000
#: Headers above this pixel count are refused even for JPEG (whose decoder can scale by 1/8).
MAX_HEADER_PIXELS = 200_000_000

ChannelOrder = Literal["rgb", "bgr"]
ImageSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | np.ndarray | Image.Image
)


class ImageError(ValueError):
    """An image that cannot be used. ``code`` is a key of :data:`IMAGE_REASONS`."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(
            f"{code}: {IMAGE_REASONS.get(code, code)}" + (f" ({detail})" if detail else "")
        )

    @property
    def message(self) -> str:
        return IMAGE_REASONS.get(self.code, self.code)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image.

    ``scale`` maps original pixel coordinates to ``rgb`` coordinates (``< 1`` when the image was
    decoded at reduced size); ``original_size`` is ``(width, height)`` as stored in the file.
    """

    rgb: np.ndarray
    original_size: tuple[int, int]
    scale: float
    format: str | None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def load_rgb(
    source: ImageSource,
    *,
    max_pixels: int = MAX_DECODE_PIXELS,
    max_side: int | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
    channel_order: ChannelOrder = "rgb",
) -> np.ndarray:
    """Decode ``source`` and return only the RGB array (see :func:`decode_image`)."""
    return decode_image(
        source,
        max_pixels=max_pixels,
        max_side=max_side,
        max_bytes=max_bytes,
        channel_order=channel_order,
    ).rgb


def decode_image(
    source: ImageSource,
    *,
    max_pixels: int = MAX_DECODE_PIXELS,
    max_side: int | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
    channel_order: ChannelOrder = "rgb",
) -> DecodedImage:
    """Decode an image safely into an RGB ``uint8`` array.

    ``source`` may be a path, encoded bytes, a binary file object, a PIL image, or a numpy array
    (``H×W`` grey, ``H×W×3`` or ``H×W×4``, ``uint8``; ``channel_order`` tells whether a colour
    array is RGB or BGR as OpenCV delivers it).

    ``max_pixels`` bounds the decoded size (larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale,
    other formats are refused). ``max_side`` optionally shrinks the result so that its longer
    side is at most that many pixels (JPEGs are then decoded directly at a smaller scale when
    possible). Raises :class:`ImageError`; never any other exception for bad input.
    """
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    if isinstance(source, np.ndarray):
        return _from_array(
            source, max_pixels=max_pixels, max_side=max_side, channel_order=channel_order
        )
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels=max_pixels, max_side=max_side, fmt=source.format)
    data = _read_bytes(source, max_bytes)
    if not data:
        raise ImageError("empty_image", "no data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageError("empty_image", f"{width}x{height}")
            pixels = width * height
            if pixels > MAX_HEADER_PIXELS:
                raise ImageError("image_too_large", f"{width}x{height} in the header")
            target = _target_pixels(width, height, max_pixels, max_side)
            if pixels > target and fmt == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale. draft() picks the smallest scale
                # whose size is still >= the requested size, so ask for half the linear size
                # allowed: the result is then at most `target` pixels.
                f = math.sqrt(target / pixels)
                if max_side is not None and pixels <= max_pixels:
                    f = min(1.0, f * 2)  # only a speed-up: any size up to max_pixels is safe
                want = (max(1, int(width * f / 2)), max(1, int(height * f / 2)))
                im.draft("RGB", want)
            dw, dh = im.size
            if dw * dh > max_pixels:
                raise ImageError(
                    "image_too_large", f"{width}x{height} pixels, limit {max_pixels} pixels"
                )
            im.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError("image_too_large", str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError("not_an_image", str(exc)) from exc
    except MemoryError as exc:
        raise ImageError("image_too_large", "out of memory while decoding") from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageError("corrupt_image", f"{type(exc).__name__}: {exc}") from exc
    decoded = _from_pil(
        im, max_pixels=max_pixels, max_side=max_side, fmt=fmt, original_size=(width, height)
    )
    return decoded


def _target_pixels(width: int, height: int, max_pixels: int, max_side: int | None) -> int:
    target = max_pixels
    if max_side is not None and max(width, height) > max_side:
        s = max_side / max(width, height)
        target = min(target, max(1, int(width * s) * int(height * s)))
    return target


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageError("image_too_large", f"{len(data)} bytes, limit {max_bytes}")
        return data
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ImageError("unreadable_file", f"not a regular file: {path}")
            if size > max_bytes:
                raise ImageError("image_too_large", f"{size} bytes, limit {max_bytes}")
            with path.open("rb") as fh:
                return fh.read(max_bytes + 1)
        except ImageError:
            raise
        except OSError as exc:
            raise ImageError("unreadable_file", f"{path}: {exc.strerror or exc}") from exc
    if hasattr(source, "read"):
        try:
            data = source.read(max_bytes + 1)
        except Exception as exc:
            raise ImageError("unreadable_file", str(exc)) from exc
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError("unsupported_image", "file object did not return bytes")
        if len(data) > max_bytes:
            raise ImageError("image_too_large", f"more than {max_bytes} bytes")
        return bytes(data)
    raise ImageError("unsupported_image", f"cannot read an image from {type(source).__name__}")


def _from_pil(
    im: Image.Image,
    *,
    max_pixels: int,
    max_side: int | None,
    fmt: str | None,
    original_size: tuple[int, int] | None = None,
) -> DecodedImage:
    try:
        if original_size is None:
            original_size = im.size
            if im.size[0] * im.size[1] > max_pixels:
                raise ImageError("image_too_large", f"{im.size[0]}x{im.size[1]} pixels")
        orientation = 1
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except Exception:
            orientation = 1
        if orientation != 1:
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:
                orientation = 1  # a broken EXIF block only loses the rotation
        rgb = _pil_to_rgb_array(im)
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError("image_too_large", "out of memory while converting") from exc
    except Exception as exc:
        raise ImageError("corrupt_image", f"{type(exc).__name__}: {exc}") from exc
    ow, oh = original_size
    if orientation in (5, 6, 7, 8):  # transposed: width and height swap
        ow, oh = oh, ow
    rgb = _limit_side(rgb, max_side)
    scale = rgb.shape[1] / ow if ow else 1.0
    return DecodedImage(rgb=rgb, original_size=(ow, oh), scale=float(scale), format=fmt)


def _pil_to_rgb_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        if mode.startswith("I;16"):
            factor = 255.0 / 65535.0
        else:
            top = float(arr.max()) if arr.size else 0.0
            factor = 255.0 if top <= 1.0 else (255.0 / top if top > 255.0 else 1.0)
        grey = np.clip(arr * factor, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError("unsupported_image", f"mode {mode}")
    return np.ascontiguousarray(arr)


def _from_array(
    arr: np.ndarray, *, max_pixels: int, max_side: int | None, channel_order: ChannelOrder
) -> DecodedImage:
    if arr.dtype != np.uint8:
        raise ImageError("unsupported_image", f"dtype {arr.dtype}, expected uint8")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        rgb = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[:, :, :3]
        if channel_order == "bgr":
            rgb = rgb[:, :, ::-1]
    else:
        raise ImageError("unsupported_image", f"array of shape {arr.shape}")
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise ImageError("empty_image", f"{w}x{h}")
    if h * w > max_pixels:
        raise ImageError("image_too_large", f"{w}x{h} pixels, limit {max_pixels}")
    rgb = _limit_side(np.ascontiguousarray(rgb), max_side)
    return DecodedImage(rgb=rgb, original_size=(w, h), scale=rgb.shape[1] / w, format=None)


def _limit_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None:
        return rgb
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    import cv2

    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
