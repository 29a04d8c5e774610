"""QR codes of visitor passes: rendering (segno, SVG or PNG) and reading a photo of one
(OpenCV's QR detector), for terminals that send the picture instead of the decoded text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

#: a QR photo is decoded at most this large (longer side, pixels): QR codes shown on a phone
#: at a terminal camera are a few hundred pixels wide
MAX_QR_SIDE = 1600


def render_svg(payload: str, *, scale: int = 6) -> str:
    """An SVG document with the QR code (error correction M, quiet zone of 4 modules)."""
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    buf = io.BytesIO()
    code.save(buf, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True, title="QR")
    return buf.getvalue().decode("utf-8")


def render_svg_inline(payload: str, *, scale: int = 6) -> str:
    """The same, as an ``<svg>`` element to put into a page."""
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    return str(code.svg_inline(scale=scale, border=4))


def render_png(payload: str, *, scale: int = 8) -> bytes:
    """A PNG of the QR code (black on white, 8 px per module)."""
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    buf = io.BytesIO()
    code.save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def read_qr(image: bytes) -> str:
    """The text of the QR code in a photo or screenshot. Raises
    :class:`linli.vision.images.ImageError` with ``qr_unreadable`` when no code is found (and
    the usual image codes for bad files)."""
    import cv2
    import numpy as np

    from linli.vision.images import ImageError, decode_image

    img = decode_image(image, max_side=MAX_QR_SIDE, channel_order="rgb")
    grey = cv2.cvtColor(np.ascontiguousarray(img.rgb), cv2.COLOR_RGB2GRAY)
    # the classic detector first; the ArUco-based one (OpenCV >= 4.8) finds the finder patterns
    # differently and reads some tilted, soft codes the first one misses
    detectors: list[Any] = [cv2.QRCodeDetector()]
    if hasattr(cv2, "QRCodeDetectorAruco"):
        detectors.append(cv2.QRCodeDetectorAruco())

    def variants() -> Iterator[Any]:
        # a phone screen seen by a terminal camera is small, tilted and soft: the code that
        # fails as it is often reads once binarised or enlarged
        yield grey
        yield cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
        if max(grey.shape) <= MAX_QR_SIDE // 2:
            big = cv2.resize(grey, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
            yield big
            yield cv2.threshold(big, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]

    failed: cv2.error | None = None
    for detector in detectors:
        for candidate in variants():
            try:
                text, _points, _straight = detector.detectAndDecode(candidate)
            except cv2.error as exc:
                failed = exc
                continue
            if text:
                return str(text)
    if failed is not None:
        raise ImageError("qr_unreadable", "QR detector failed") from failed
    raise ImageError("qr_unreadable", "no QR code found")
