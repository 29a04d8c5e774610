"""Frame sources for video analytics: files, HTTP MJPEG/JPEG and RTSP cameras.

Two ways to read a camera:

* :func:`iter_frames` - a generator of :class:`Frame` sampled at ``fps``. It raises
  :class:`StreamError` (stable ``code`` + English message) when a source cannot be
  opened or dies; a file simply ends. Use it for batch work and in tests.
* :class:`CameraWorker` - a daemon thread per camera that keeps reading with
  timeouts, reconnects with exponential back-off, and publishes the newest sampled
  frame in a thread-safe :class:`LatestFrame`; an optional ``on_frame`` callback
  runs in a second thread on the newest frame only (slow analysis drops frames, it
  never builds up a queue or stalls the reader). Nothing here blocks the caller:
  ``start()``/``stop()``/``latest()``/``status()`` return at once (``stop`` waits
  at most its ``timeout``). One bad camera only affects its own worker.

URLs: a local path or ``file://`` URL (read with OpenCV/FFmpeg), ``http(s)://``
(``multipart/x-mixed-replace`` MJPEG, or a single JPEG snapshot polled at ``fps``,
or a video file served over HTTP), ``rtsp(s)://`` (OpenCV/FFmpeg with open and
read time-outs; TCP transport by default). Credentials in URLs never appear in
errors or statuses.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np

log = logging.getLogger(__name__)

REASONS: dict[str, str] = {
    "bad_url": "The stream address is not a file path or an http(s):// or rtsp:// URL",
    "file_not_found": "The video file does not exist",
    "cannot_open": "The video source could not be opened",
    "connect_failed": "Could not connect to the camera",
    "timeout": "The camera did not answer in time",
    "http_error": "The camera answered with an HTTP error",
    "unsupported_content": "The camera sends something that is not MJPEG, JPEG or video",
    "malformed_stream": "The stream's data is not valid images",
    "stream_lost": "The stream stopped in the middle",
    "internal_error": "Unexpected error while reading the stream",
    "bad_stream_config": "The stream settings are not valid",
}

SourceKind = Literal["file", "http", "rtsp"]
WorkerState = Literal["idle", "connecting", "streaming", "backoff", "finished", "stopped"]

#: a JPEG bigger than this inside an MJPEG stream means the stream is broken
MAX_JPEG_BYTES = 16 * 1024 * 1024


class StreamError(RuntimeError):
    """A video source failed; ``code`` is a key of :data:`REASONS`."""

    def __init__(self, code: str, detail: str = "", *, url: str = "") -> None:
        self.code = code
        self.url = redact_url(url) if url else ""
        base = REASONS.get(code, code)
        parts = [base]
        if self.url:
            parts.append(f"({self.url})")
        if detail:
            parts.append(f"- {detail}")
        self.message = " ".join(parts)
        super().__init__(self.message)


def redact_url(url: str) -> str:
    """``url`` with any user:password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def classify_url(url: str) -> SourceKind:
    """Which reader handles ``url``; raises ``StreamError('bad_url')``."""
    if not isinstance(url, str) or not url.strip() or "\x00" in url:
        raise StreamError("bad_url", repr(url))
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        parts = urlsplit(text)
        if not parts.hostname:
            raise StreamError("bad_url", "no host", url=text)
        return "http"
    if scheme in ("rtsp", "rtsps"):
        parts = urlsplit(text)
        if not parts.hostname:
            raise StreamError("bad_url", "no host", url=text)
        return "rtsp"
    if scheme == "file" or scheme == "":
        return "file"
    raise StreamError("bad_url", f"scheme {scheme!r}", url=text)


@dataclass(frozen=True, slots=True)
class Frame:
    """A sampled frame: BGR uint8 image, capture time (epoch s) and its number."""

    image: np.ndarray
    ts: float
    index: int
    camera_id: str = ""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """How to read one camera."""

    url: str
    camera_id: str = ""
    #: frames per second handed on (the source may deliver more; they are skipped);
    #: ``math.inf`` hands on every frame
    fps: float = 2.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    #: files: start again at the end (a simulated camera)
    loop: bool = False
    #: files: pace frames at the video's own speed (None: the worker paces, iter_frames not)
    realtime: bool | None = None
    #: files: time stamp of the first frame (default: when reading starts)
    start_ts: float | None = None
    #: scale frames wider than this down (0: keep the size)
    max_width: int = 0
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    #: after this many undecodable images in a row the stream counts as malformed
    max_bad_images: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, int | float) and not math.isnan(self.fps) and self.fps > 0):
            raise StreamError("bad_stream_config", "fps must be > 0")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise StreamError("bad_stream_config", "time-outs must be > 0")
        if self.max_width < 0 or self.max_bad_images < 1:
            raise StreamError("bad_stream_config", "max_width >= 0, max_bad_images >= 1")

    @property
    def kind(self) -> SourceKind:
        return classify_url(self.url)


def _file_path(url: str) -> Path:
    text = url.strip()
    if text.lower().startswith("file://"):
        from urllib.parse import unquote

        return Path(unquote(urlsplit(text).path))
    return Path(text)


def _shrink(img: np.ndarray, max_width: int) -> np.ndarray:
    if max_width and img.shape[1] > max_width:
        import cv2

        h = max(1, round(img.shape[0] * max_width / img.shape[1]))
        return cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)
    return img


class _Sampler:
    """Decides which frames of a live source to hand on, at ``fps``."""

    def __init__(self, fps: float, clock: Callable[[], float]) -> None:
        self.period = 1.0 / fps
        self.clock = clock
        self.next_due = clock()

    def due(self) -> bool:
        now = self.clock()
        if now + 1e-9 < self.next_due:
            return False
        self.next_due += self.period
        if self.next_due < now:  # fell behind: do not try to catch up
            self.next_due = now + self.period
        return True


# --------------------------------------------------------------------------- readers


def _iter_file(cfg: StreamConfig, stop: threading.Event, realtime: bool) -> Iterator[Frame]:
    import cv2

    path = _file_path(cfg.url)
    if not path.is_file():
        raise StreamError("file_not_found", url=str(path))
    start_ts = cfg.start_ts if cfg.start_ts is not None else time.time()
    period = 1.0 / cfg.fps
    index = 0
    offset = 0.0  # accumulated video time of earlier loops
    while not stop.is_set():
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise StreamError("cannot_open", "not a readable video", url=str(path))
            native = cap.get(cv2.CAP_PROP_FPS)
            native = native if native and math.isfinite(native) and native > 0 else 25.0
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            wall0 = time.monotonic()
            next_t = 0.0
            n = 0
            last_t = 0.0
            while not stop.is_set():
                if not cap.grab():
                    break
                t = n / native
                n += 1
                last_t = t
                if t + 1e-9 < next_t:
                    continue
                ok, img = cap.retrieve()
                if not ok or img is None:
                    raise StreamError(
                        "malformed_stream", f"frame {n} cannot be decoded", url=str(path)
                    )
                next_t += period
                if next_t < t:
                    next_t = t + period
                if realtime:
                    delay = wall0 + t - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
                yield Frame(
                    _shrink(img, cfg.max_width), start_ts + offset + t, index, cfg.camera_id
                )
                index += 1
            if n == 0:
                raise StreamError("malformed_stream", "no frame could be read", url=str(path))
            if total and n < total * 0.9:
                raise StreamError(
                    "stream_lost", f"ended after {n} of {total} frames", url=str(path)
                )
        finally:
            cap.release()
        if not cfg.loop:
            return
        offset += last_t + 1.0 / native


def _iter_capture(cfg: StreamConfig, stop: threading.Event) -> Iterator[Frame]:
    """RTSP (or video over HTTP) through OpenCV's FFmpeg back-end."""
    import cv2

    if cfg.kind == "rtsp":
        # FFmpeg options for every capture of this process; set once, politely
        os.environ.setdefault(
            "OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{cfg.rtsp_transport}"
        )
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(cfg.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(cfg.read_timeout_s * 1000),
    ]
    cap = cv2.VideoCapture(cfg.url, cv2.CAP_FFMPEG, params)
    try:
        if not cap.isOpened():
            raise StreamError(
                "connect_failed", "no answer, refused, or not a video stream", url=cfg.url
            )
        sampler = _Sampler(cfg.fps, time.monotonic)
        index = 0
        got_any = False
        while not stop.is_set():
            t0 = time.monotonic()
            if not cap.grab():
                if time.monotonic() - t0 >= cfg.read_timeout_s * 0.9:
                    raise StreamError("timeout", "no frame within the read time-out", url=cfg.url)
                raise StreamError("stream_lost" if got_any else "malformed_stream", url=cfg.url)
            got_any = True
            if not sampler.due():
                continue
            ok, img = cap.retrieve()
            if not ok or img is None:
                raise StreamError("malformed_stream", "frame cannot be decoded", url=cfg.url)
            yield Frame(_shrink(img, cfg.max_width), time.time(), index, cfg.camera_id)
            index += 1
    finally:
        cap.release()


class MjpegParser:
    """Split a byte stream into JPEG images (SOI ``FFD8`` ... EOI ``FFD9``).

    Multipart boundaries and part headers between images are skipped. Inside JPEG
    entropy-coded data ``FF`` is always stuffed, so the first EOI after an SOI ends
    the image (cameras do not embed EXIF thumbnails in MJPEG frames).
    """

    def __init__(self, max_bytes: int = MAX_JPEG_BYTES) -> None:
        self.buf = bytearray()
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while True:
            soi = self.buf.find(b"\xff\xd8")
            if soi < 0:
                # keep a possible half marker
                del self.buf[: max(0, len(self.buf) - 1)]
                if len(self.buf) > self.max_bytes:
                    raise StreamError("malformed_stream", "no JPEG start found")
                return out
            eoi = self.buf.find(b"\xff\xd9", soi + 2)
            if eoi < 0:
                if soi:
                    del self.buf[:soi]
                if len(self.buf) > self.max_bytes:
                    raise StreamError("malformed_stream", "image larger than the limit")
                return out
            out.append(bytes(self.buf[soi : eoi + 2]))
            del self.buf[: eoi + 2]


def _iter_http(cfg: StreamConfig, stop: threading.Event) -> Iterator[Frame]:
    import cv2
    import httpx

    url = cfg.url
    timeout = httpx.Timeout(cfg.read_timeout_s, connect=cfg.open_timeout_s)

    def decode(data: bytes) -> np.ndarray | None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return img if img is not None and img.size else None

    index = 0
    got_any = False
    play_as_video = False
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise StreamError("http_error", f"status {resp.status_code}", url=url)
            ctype = resp.headers.get("content-type", "").lower()
            if ctype.startswith("image/"):
                # a snapshot URL: fetch it again every 1/fps seconds
                data = resp.read()
                period = 1.0 / cfg.fps
                next_due = time.monotonic()
                while not stop.is_set():
                    img = decode(data)
                    if img is None:
                        raise StreamError(
                            "malformed_stream", "the snapshot is not an image", url=url
                        )
                    got_any = True
                    yield Frame(_shrink(img, cfg.max_width), time.time(), index, cfg.camera_id)
                    index += 1
                    next_due = max(next_due + period, time.monotonic())
                    if stop.wait(max(0.0, next_due - time.monotonic())):
                        return
                    r = client.get(url)
                    if r.status_code >= 400:
                        raise StreamError("http_error", f"status {r.status_code}", url=url)
                    data = r.content
                return
            if ctype.startswith(("video/", "application/octet-stream")):
                play_as_video = True
            elif "multipart" not in ctype:
                raise StreamError(
                    "unsupported_content", f"content type {ctype or 'none'!r}", url=url
                )
            else:
                parser = MjpegParser()
                sampler = _Sampler(cfg.fps, time.monotonic)
                bad = 0
                for chunk in resp.iter_bytes(65536):
                    if stop.is_set():
                        return
                    try:
                        jpegs = parser.feed(chunk)
                    except StreamError as exc:
                        raise StreamError(exc.code, REASONS.get(exc.code, ""), url=url) from exc
                    for jpeg in jpegs:
                        if not sampler.due():
                            continue
                        img = decode(jpeg)
                        if img is None:
                            sampler.next_due = sampler.clock()  # try the next one instead
                            bad += 1
                            if bad >= cfg.max_bad_images:
                                raise StreamError(
                                    "malformed_stream",
                                    f"{bad} undecodable images in a row",
                                    url=url,
                                )
                            continue
                        bad = 0
                        got_any = True
                        yield Frame(_shrink(img, cfg.max_width), time.time(), index, cfg.camera_id)
                        index += 1
                    if not got_any and len(parser.buf) > 4 * 1024 * 1024:
                        raise StreamError("malformed_stream", "no image in the first 4 MB", url=url)
                # the server closed the connection
                raise StreamError(
                    "stream_lost" if got_any else "malformed_stream",
                    "the camera closed the connection",
                    url=url,
                )
    except httpx.ConnectTimeout as exc:
        raise StreamError("timeout", "connecting", url=url) from exc
    except httpx.TimeoutException as exc:
        raise StreamError("timeout", "no data within the read time-out", url=url) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise StreamError("bad_url", str(exc), url=url) from exc
    except httpx.ConnectError as exc:
        raise StreamError("connect_failed", str(exc) or type(exc).__name__, url=url) from exc
    except httpx.HTTPError as exc:
        raise StreamError(
            "stream_lost" if got_any else "connect_failed", str(exc) or type(exc).__name__, url=url
        ) from exc
    if play_as_video:
        yield from _iter_capture(cfg, stop)


def iter_frames(
    source: str | StreamConfig,
    fps: float | None = None,
    *,
    stop: threading.Event | None = None,
    **options: Any,
) -> Iterator[Frame]:
    """Frames of ``source`` sampled at ``fps`` (default 2).

    ``source`` is a URL/path or a :class:`StreamConfig`; ``options`` are further
    :class:`StreamConfig` fields. Raises :class:`StreamError` for a source that
    cannot be opened, a time-out or a stream that dies; a file that ends simply
    ends the iteration. Setting ``stop`` ends the iteration at the next frame.
    """
    cfg = source if isinstance(source, StreamConfig) else StreamConfig(url=source, **options)
    if isinstance(source, StreamConfig) and options:
        cfg = replace(cfg, **options)
    if fps is not None:
        cfg = replace(cfg, fps=fps)
    stop = stop or threading.Event()
    kind = cfg.kind
    if kind == "file":
        yield from _iter_file(cfg, stop, bool(cfg.realtime))
    elif kind == "http":
        yield from _iter_http(cfg, stop)
    else:
        yield from _iter_capture(cfg, stop)


# --------------------------------------------------------------------------- workers


class LatestFrame:
    """Thread-safe holder of the newest frame (readers never wait for the writer)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    def get(self) -> Frame | None:
        with self._cond:
            return self._frame

    @property
    def seq(self) -> int:
        """How many frames were put so far."""
        with self._cond:
            return self._seq

    def wait_newer(self, seq: int, timeout: float) -> tuple[Frame | None, int]:
        """Wait up to ``timeout`` s for a frame newer than ``seq``; return it and its seq."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq, timeout=timeout)
            if self._seq > seq:
                return self._frame, self._seq
            return None, seq


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off between reconnects: initial * factor**n, capped, jittered."""

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.1

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * (self.factor ** max(0, attempt)))
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a :class:`CameraWorker` is doing, for dashboards and health checks."""

    camera_id: str
    url: str
    state: WorkerState
    frames: int
    processed: int
    dropped: int
    connects: int
    failures: int
    last_error_code: str | None
    last_error: str | None
    last_frame_ts: float | None
    next_retry_in_s: float | None
    callback_errors: int = 0


@dataclass
class _Counters:
    frames: int = 0
    processed: int = 0
    connects: int = 0
    failures: int = 0
    callback_errors: int = 0
    last_error_code: str | None = None
    last_error: str | None = None
    next_retry_at: float | None = None
    state: WorkerState = "idle"
    extra: dict[str, Any] = field(default_factory=dict)


class CameraWorker:
    """Read one camera in the background; reconnect with back-off; never block.

    >>> w = CameraWorker(StreamConfig("rtsp://cam-3/stream", camera_id="cam-3"),
    ...                  on_frame=lambda f: analyzer.process(f.image, f.ts))  # doctest: +SKIP
    >>> w.start(); w.latest(); w.status(); w.stop()                          # doctest: +SKIP
    """

    def __init__(
        self,
        config: StreamConfig | str,
        *,
        on_frame: Callable[[Frame], Any] | None = None,
        backoff: Backoff | None = None,
        max_failures: int | None = None,
    ) -> None:
        self.config = config if isinstance(config, StreamConfig) else StreamConfig(url=config)
        classify_url(self.config.url)  # a malformed URL fails here, at configuration time
        if self.config.realtime is None:
            self.config = replace(self.config, realtime=True)
        self.on_frame = on_frame
        self.backoff = backoff or Backoff()
        self.max_failures = max_failures
        self.frames = LatestFrame()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._c = _Counters()
        self._reader: threading.Thread | None = None
        self._processor: threading.Thread | None = None
        self._rng = random.Random()

    # -- control

    def start(self) -> CameraWorker:
        if self._reader is not None:
            return self
        name = self.config.camera_id or redact_url(self.config.url)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"cam-read:{name}", daemon=True
        )
        self._reader.start()
        if self.on_frame is not None:
            self._processor = threading.Thread(
                target=self._process_loop, name=f"cam-proc:{name}", daemon=True
            )
            self._processor.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the threads to end and wait at most ``timeout`` s; True when they ended."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        ok = True
        for th in (self._reader, self._processor):
            if th is not None:
                th.join(max(0.0, deadline - time.monotonic()))
                ok = ok and not th.is_alive()
        with self._lock:
            if self._c.state not in ("finished",):
                self._c.state = "stopped"
        return ok

    @property
    def running(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def latest(self) -> Frame | None:
        """The newest sampled frame (None before the first one)."""
        return self.frames.get()

    def status(self) -> WorkerStatus:
        with self._lock:
            c = self._c
            retry = None
            if c.state == "backoff" and c.next_retry_at is not None:
                retry = max(0.0, c.next_retry_at - time.monotonic())
            latest = self.frames.get()
            return WorkerStatus(
                camera_id=self.config.camera_id,
                url=redact_url(self.config.url),
                state=c.state,
                frames=c.frames,
                processed=c.processed,
                dropped=max(0, c.frames - c.processed) if self.on_frame else 0,
                connects=c.connects,
                failures=c.failures,
                last_error_code=c.last_error_code,
                last_error=c.last_error,
                last_frame_ts=latest.ts if latest else None,
                next_retry_in_s=retry,
                callback_errors=c.callback_errors,
            )

    # -- threads

    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._c, k, v)

    def _read_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._set(state="connecting")
            with self._lock:
                self._c.connects += 1
            ended_normally = False
            try:
                for frame in iter_frames(self.config, stop=self._stop):
                    self.frames.put(frame)
                    with self._lock:
                        self._c.frames += 1
                        self._c.state = "streaming"
                    attempt = 0
                ended_normally = True
            except StreamError as exc:
                self._fail(exc.code, exc.message)
            except Exception as exc:  # a bug or an OpenCV error: keep the worker alive
                log.exception("camera %s: reader failed", self.config.camera_id)
                self._fail("internal_error", f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                break
            if ended_normally and self.config.kind == "file" and not self.config.loop:
                self._set(state="finished")
                return
            if ended_normally:
                self._fail("stream_lost", REASONS["stream_lost"])
            with self._lock:
                failures = self._c.failures
            if self.max_failures is not None and failures >= self.max_failures:
                self._set(state="finished")
                return
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            self._set(state="backoff", next_retry_at=time.monotonic() + delay)
            if self._stop.wait(delay):
                break

    def _fail(self, code: str, message: str) -> None:
        log.warning("camera %s: %s", self.config.camera_id or redact_url(self.config.url), message)
        with self._lock:
            self._c.failures += 1
            self._c.last_error_code = code
            self._c.last_error = message

    def _process_loop(self) -> None:
        assert self.on_frame is not None
        seq = 0
        while not self._stop.is_set():
            frame, seq = self.frames.wait_newer(seq, timeout=0.25)
            if frame is None:
                if self._reader is not None and not self._reader.is_alive():
                    return
                continue
            try:
                self.on_frame(frame)
            except Exception:
                log.exception("camera %s: frame callback failed", self.config.camera_id)
                with self._lock:
                    self._c.callback_errors += 1
            with self._lock:
                self._c.processed += 1


class CameraPool:
    """Many :class:`CameraWorker` s by camera id; a failing one never touches the rest."""

    def __init__(self) -> None:
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()

    def add(self, camera_id: str, config: StreamConfig | str, **kwargs: Any) -> CameraWorker:
        cfg = config if isinstance(config, StreamConfig) else StreamConfig(url=config)
        cfg = replace(cfg, camera_id=camera_id)
        worker = CameraWorker(cfg, **kwargs)
        with self._lock:
            old = self._workers.pop(camera_id, None)
            self._workers[camera_id] = worker
        if old is not None:
            old.stop(timeout=0.0)
        return worker.start()

    def remove(self, camera_id: str, timeout: float = 5.0) -> None:
        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is not None:
            worker.stop(timeout)

    def get(self, camera_id: str) -> CameraWorker | None:
        with self._lock:
            return self._workers.get(camera_id)

    def statuses(self) -> list[WorkerStatus]:
        with self._lock:
            workers = list(self._workers.values())
        return [w.status() for w in workers]

    def stop_all(self, timeout: float = 5.0) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w._stop.set()
        deadline = time.monotonic() + timeout
        for w in workers:
            w.stop(max(0.0, deadline - time.monotonic()))
