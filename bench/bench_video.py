"""Benchmark of CPU video analytics (run on one core:
``taskset -c 0 .venv/bin/python bench/bench_video.py``).

Frames: the real clip ../shared/data/faces/video/short_hamilton_clip.mp4, scaled to
height 480 and centre-cropped to 640x480 (keeps the aspect ratio; people get
bigger, as on a typical gate camera).

Measures, with ``cv2.setNumThreads(1)``:

1. person detection alone, ms per frame (default detector: dlib faces with
   up-sampling 1 fused with OpenCV 4's HOG people detector,
   ``cv2.HOGDescriptor_getDefaultPeopleDetector``);
2. the whole ``CameraAnalyzer.process`` (detection + appearance + tracking + rules,
   with two lines, an intrusion/loitering/gathering zone and a motion zone),
   ms per frame -> frames per second per camera;
3. the same with ``face_upsample=0`` (faster; finds faces from ~40 px instead of ~20),
   and with the HOG body detector alone (``backend="hog"``: a CCTV view of whole
   bodies, no close-up faces);
5. watch-list face identification on a camera frame (dlib detection + 128-d embedding
   of every face >= 40 px), which the safety workers run at most once a second on
   cameras with ``face_watch``;
4. decoding cost of an H.264 stream (``grab`` of every frame of the clip, scaled by
   the pixel count to 640x480), because an RTSP camera at 25 fps must be decoded
   in full even when only 2 frames a second are analysed.

Times are CPU seconds of the benchmark thread (``time.thread_time``), which the
other processes on a shared core do not inflate; the wall-clock figures are
printed too. How many cameras one core sustains at 2 analysed frames a second:
``1 / (2 * t_analyse)`` for snapshot/MJPEG cameras (skipped JPEGs are not
decoded), ``1 / (2 * t_analyse + 25 * t_decode)`` for 25 fps H.264 RTSP cameras.

Prints details, then ONE result line starting with ``bench_video``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from linli.vision.analytics import CameraAnalyzer, CameraConfig  # noqa: E402
from linli.vision.people import DetectorConfig, PersonDetector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIP = DATA / "faces" / "video" / "short_hamilton_clip.mp4"
RTSP_FPS = 25

CONFIG = {
    "camera_id": "bench",
    "anchor": "bottom",
    "zones": [
        {
            "id": "yard",
            "polygon": [[0.05, 0.3], [0.95, 0.3], [0.95, 0.98], [0.05, 0.98]],
            "intrusion": {"hours": "22:00-06:00"},
            "loitering": {"seconds": 60},
            "gathering": {"max_people": 5, "seconds": 10},
        },
        {
            "id": "store",
            "polygon": [[0.6, 0.0], [1.0, 0.0], [1.0, 0.5], [0.6, 0.5]],
            "motion": {"hours": "00:00-24:00", "min_area": 0.02},
        },
    ],
    "lines": [
        {"id": "door", "a": [0.5, 0.0], "b": [0.5, 1.0]},
        {
            "id": "gate",
            "a": [0.0, 0.7],
            "b": [1.0, 0.7],
            "tailgating": {"direction": "in", "window_s": 5, "grace_s": 2},
        },
    ],
}


def load_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        h, w = img.shape[:2]
        scale = 480 / h
        big = cv2.resize(img, (round(w * scale), 480), interpolation=cv2.INTER_LINEAR)
        x0 = (big.shape[1] - 640) // 2
        out.append(np.ascontiguousarray(big[:, x0 : x0 + 640]))
    cap.release()
    if not out:
        sys.exit(f"cannot read {CLIP}")
    return out


def measure(fn: object, frames: list[np.ndarray]) -> tuple[float, float]:
    """Mean CPU ms and wall ms per frame of ``fn(frame, k)``."""
    assert callable(fn)
    cpu: list[float] = []
    wall: list[float] = []
    for k, frame in enumerate(frames):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn(frame, k)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return statistics.fmean(cpu), statistics.fmean(wall)


def decode_ms() -> tuple[float, float]:
    cap = cv2.VideoCapture(str(CLIP))
    w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    n = 0
    c0, w0 = time.thread_time(), time.perf_counter()
    while cap.grab():
        n += 1
    cpu = (time.thread_time() - c0) * 1000 / max(1, n)
    wall = (time.perf_counter() - w0) * 1000 / max(1, n)
    cap.release()
    pixels = (640 * 480) / max(1.0, w * h)
    return cpu * pixels, wall * pixels


def main() -> None:
    cv2.setNumThreads(1)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    frames = load_frames()
    print(
        f"frames: {len(frames)} real frames at 640x480, cores available: {cores}, "
        f"OpenCV {cv2.__version__}"
    )

    det = PersonDetector()
    print(f"detector backends: {det.backends}")
    found = 0

    def detect(frame: np.ndarray, k: int) -> None:
        nonlocal found
        found += bool(det.detect(frame))

    d_cpu, d_wall = measure(detect, frames)
    print(
        f"detection: {d_cpu:.1f} ms CPU/frame ({d_wall:.1f} ms wall), "
        f"people found in {found}/{len(frames)} frames"
    )

    results: dict[str, tuple[float, float, int]] = {}
    variants: tuple[tuple[str, dict[str, object]], ...] = (
        ("upsample1", {"face_upsample": 1}),
        ("upsample0", {"face_upsample": 0}),
        ("hog-only", {"backend": "hog"}),
    )
    for name, dcfg in variants:
        cfg = CameraConfig.from_dict({**CONFIG, "detector": dcfg})
        an = CameraAnalyzer(cfg, detector=PersonDetector(DetectorConfig(**dcfg)))  # type: ignore[arg-type]
        t0 = 1_741_100_400.0
        n_events = 0

        def step(frame: np.ndarray, k: int, an: CameraAnalyzer = an, t0: float = t0) -> None:
            nonlocal n_events
            n_events += len(an.process(frame, t0 + 0.5 * k))  # analysed at 2 fps

        cpu, wall = measure(step, frames)
        results[name] = (cpu, wall, n_events)
        print(
            f"analyzer ({name}): {cpu:.1f} ms CPU/frame ({wall:.1f} ms wall) = "
            f"{1000 / cpu:.1f} fps/camera; {n_events} events"
        )

    from linli.vision import faces

    faces.warm_up()
    n_faces = 0

    def face_watch(frame: np.ndarray, k: int) -> None:
        nonlocal n_faces
        if k % 5 == 0:
            n_faces += len(faces.analyze_image(frame, min_face=40.0, channel_order="bgr"))

    fw_cpu, _ = measure(face_watch, frames)
    fw_cpu *= 5  # only every 5th frame was analysed
    print(
        f"face watch (identify every face): {fw_cpu:.1f} ms CPU/frame; {n_faces} faces "
        f"in {len(frames) // 5 + 1} frames"
    )

    dec_cpu, dec_wall = decode_ms()
    print(f"H.264 decode (scaled to 640x480): {dec_cpu:.2f} ms CPU/frame ({dec_wall:.2f} wall)")

    cpu1 = results["upsample1"][0]
    cpu0 = results["upsample0"][0]
    cams_snapshot = math.floor(1000 / (2 * cpu1))
    cams_rtsp = math.floor(1000 / (2 * cpu1 + RTSP_FPS * dec_cpu))
    cams_rtsp0 = math.floor(1000 / (2 * cpu0 + RTSP_FPS * dec_cpu))
    cpuh = results["hog-only"][0]
    cams_hog = math.floor(1000 / (2 * cpuh))
    cams_fw = math.floor(1000 / (2 * cpu1 + fw_cpu))
    print(
        f"cameras at 2 fps per core: {cams_snapshot} (MJPEG/snapshot), {cams_rtsp} "
        f"(RTSP {RTSP_FPS} fps H.264), {cams_rtsp0} (RTSP, face_upsample=0), "
        f"{cams_hog} (MJPEG, HOG only), {cams_fw} (MJPEG + face watch 1/s)"
    )
    print(
        f"bench_video: 640x480 detection+tracking {1000 / cpu1:.1f} fps/camera on 1 core "
        f"({1000 / cpu0:.1f} with face_upsample=0, {1000 / cpuh:.1f} HOG only); cameras at "
        f"2 fps per core: {cams_rtsp} RTSP-25fps / {cams_snapshot} MJPEG"
    )


if __name__ == "__main__":
    main()
