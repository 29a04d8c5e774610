"""Face pipeline on real photos and video (../shared/data/faces) with the real dlib models."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from linli.access.cli import faces_app, valid_person_name
from linli.vision import faces as F
from linli.vision.images import MAX_DECODE_PIXELS, ImageError, decode_image
from linli.vision.liveness import _rectified_ear, check_liveness, detect_blink

pytestmark = pytest.mark.slow  # real dlib models (about 20 s of CPU for the whole file)

# Identities left to right. The data README says kit_with_rose.jpg shows "kit_harington and
# rose_leslie", but in the photo Rose Leslie stands on the left and Kit Harington on the right.
EXPECTED: dict[str, list[str | None]] = {
    "alex_lacamoire1.jpg": ["alex_lacamoire"],
    "johnsnow_test1.jpg": ["kit_harington"],
    "kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    "obama1.jpg": ["obama"],
    "obama_and_biden.jpg": ["biden", "obama", None],
}


# ------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def faces_dir(shared_data: Path) -> Path:
    return shared_data / "faces"


@pytest.fixture(scope="module")
def gallery(faces_dir: Path) -> F.Gallery:
    g = F.Gallery.from_directory(faces_dir / "gallery")
    assert all(check.ok for _photo, check in g.report), g.report
    return g


@pytest.fixture(scope="module")
def probe_faces(faces_dir: Path) -> dict[str, list[F.Face]]:
    return {name: F.analyze_image(faces_dir / "probe" / name) for name in EXPECTED}


@pytest.fixture(scope="module")
def gallery_embeddings(gallery: F.Gallery) -> list[tuple[str, np.ndarray]]:
    return [(str(p), gallery.embedding(t)) for p in gallery.persons() for t in gallery.templates(p)]


@pytest.fixture(scope="module")
def video_frames(faces_dir: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(faces_dir / "video" / "short_hamilton_clip.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) > 200
    return frames


@pytest.fixture(scope="module")
def obama_rgb(faces_dir: Path) -> np.ndarray:
    return decode_image(faces_dir / "gallery" / "obama" / "obama.jpg").rgb


def _plate_photo(shared_data: Path) -> Path:
    return sorted((shared_data / "plates").glob("*.jpg"))[0]


def _terminal_frame(rgb: np.ndarray, face: F.Face, width: float = 200.0) -> np.ndarray:
    """A 640×480 frame with the face about ``width`` pixels wide, as at a door terminal."""
    s = width / face.box.width
    cx, cy = face.box.center
    m = np.array([[s, 0, 320 - s * cx], [0, s, 220 - s * cy]], dtype=np.float64)
    return cv2.warpAffine(rgb, m, (640, 480), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def _huge_png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _jpeg_with_header_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with the frame size in its SOF marker rewritten."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


# ------------------------------------------------------------------------------------------
# identification


def test_every_probe_identified_and_child_unknown(
    gallery: F.Gallery, probe_faces: dict[str, list[F.Face]]
) -> None:
    for name, expected in EXPECTED.items():
        faces = probe_faces[name]
        got = [gallery.identify(f.embedding).person_id for f in faces]
        assert got == expected, name
        xs = [f.box.center[0] for f in faces]
        assert xs == sorted(xs)


def test_threshold_is_stricter_than_dlib_default_with_margin(
    gallery: F.Gallery, probe_faces: dict[str, list[F.Face]]
) -> None:
    assert F.DEFAULT_THRESHOLD < 0.6
    for name, expected in EXPECTED.items():
        for face, who in zip(probe_faces[name], expected, strict=True):
            ident = gallery.identify(face.embedding)
            assert ident.distance is not None
            if who is None:
                assert ident.reason == "unknown_person"
                assert ident.distance > F.DEFAULT_THRESHOLD + 0.1
            else:
                assert ident.reason == "match"
                # a clear margin below the threshold, and far from the next person
                assert ident.distance < F.DEFAULT_THRESHOLD - 0.05
                assert ident.candidates[1].distance > F.DEFAULT_THRESHOLD + 0.1


def test_no_impostor_accepted_when_the_person_is_not_enrolled(
    gallery_embeddings: list[tuple[str, np.ndarray]], probe_faces: dict[str, list[F.Face]]
) -> None:
    persons = sorted({p for p, _ in gallery_embeddings})
    probes = [
        (who, f.embedding)
        for name, exp in EXPECTED.items()
        for who, f in zip(exp, probe_faces[name], strict=True)
    ]
    probes += gallery_embeddings  # gallery cross-person pairs too
    for left_out in persons:
        g = F.Gallery()
        for p, e in gallery_embeddings:
            if p != left_out:
                g.add(p, e)
        for who, emb in probes:
            if who == left_out:
                ident = g.identify(emb)
                assert ident.person_id is None and ident.reason == "unknown_person", left_out


def test_identify_image_reports_bad_input_without_raising(
    gallery: F.Gallery, tmp_path: Path
) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    result = F.identify_image(text, gallery)
    assert result.error == "not_an_image" and result.faces == ()
    assert F.identify_image(tmp_path / "missing.jpg", gallery).error == "unreadable_file"


# ------------------------------------------------------------------------------------------
# gallery


def test_gallery_search_matches_brute_force_and_supports_removal() -> None:
    rng = np.random.default_rng(7)
    emb = rng.normal(0, 0.1, (3000, 128)).astype(np.float32)
    persons: list[int | str] = [i % 700 if i % 2 else f"p{i % 700}" for i in range(3000)]
    g = F.Gallery(capacity=16)  # grows several times
    tids = g.add_many(persons, emb)
    assert len(g) == 3000
    for qi in (0, 5, 1234, 2999):
        q = emb[qi] + rng.normal(0, 0.01, 128).astype(np.float32)
        d = np.linalg.norm(emb - q, axis=1)
        best: dict[object, float] = {}
        for p, x in zip(persons, d, strict=True):
            best[(type(p), p)] = min(best.get((type(p), p), 9.0), float(x))
        want = sorted(best.items(), key=lambda t: t[1])
        for k in (1, 2, 3, 7):
            got = g.search(q, k=k)
            assert [(type(m.person_id), m.person_id) for m in got] == [w[0] for w in want[:k]]
            assert np.allclose([m.distance for m in got], [w[1] for w in want[:k]], atol=1e-4)
    # removal: the template disappears from results, the others stay findable
    target = g.search(emb[5])[0]
    assert g.remove(target.template_id) and not g.remove(target.template_id)
    assert g.search(emb[5])[0].template_id != target.template_id
    assert g.search(emb[2999])[0].template_id == tids[2999]
    removed = g.remove_person(persons[2999])
    assert removed >= 1 and persons[2999] not in g
    assert g.search(emb[2999])[0].person_id != persons[2999]
    assert len(g) == 3000 - 1 - removed


def test_gallery_search_allocates_nothing_per_query_and_skips_many_templates() -> None:
    import tracemalloc

    rng = np.random.default_rng(11)
    n = 20_000
    emb = rng.normal(0, 0.1, (n, 128)).astype(np.float32)
    g = F.Gallery()
    g.add_many(list(range(n)), emb)
    q = emb[17] + rng.normal(0, 0.005, 128).astype(np.float32)
    g.identify(q)  # warm
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(5):
            g.identify(q)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a copy of the distances alone would be 80 kB; the search itself uses scratch space
    assert peak < 16_000, peak
    # one person with many templates nearest to the query: the second person is still found
    many = q + rng.normal(0, 0.001, (40, 128)).astype(np.float32)
    g.add_many(["crowd"] * 40, many)
    top = g.search(q, k=3)
    assert top[0].person_id == "crowd" and top[1].person_id == 17
    d = np.linalg.norm(emb - q, axis=1)
    d[17] = np.inf
    assert top[2].person_id == int(np.argmin(d))


def test_gallery_ids_and_validation() -> None:
    g = F.Gallery()
    e = np.ones(128, dtype=np.float32) * 0.05
    g.add(1, e)
    g.add("1", e + 0.5)
    assert 1 in g and "1" in g and len(g.persons()) == 2
    assert g.search(e)[0].person_id == 1
    with pytest.raises(TypeError):
        g.add(True, e)
    with pytest.raises(ValueError):
        g.add(2, np.full(128, np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        g.add(2, np.zeros(127, dtype=np.float32))
    assert F.Gallery().identify(e).reason == "empty_gallery"


def test_ambiguous_match_is_refused() -> None:
    g = F.Gallery()
    base = np.random.default_rng(3).normal(0, 0.09, 128).astype(np.float32)
    g.add("twin_a", base + 0.003)
    g.add("twin_b", base - 0.003)
    ident = g.identify(base)
    assert ident.person_id is None and ident.reason == "ambiguous_match"
    g.remove_person("twin_b")
    assert g.identify(base).person_id == "twin_a"


def test_embedding_bytes_round_trip(probe_faces: dict[str, list[F.Face]]) -> None:
    emb = probe_faces["obama1.jpg"][0].embedding
    assert emb is not None and emb.dtype == np.float32 and emb.shape == (128,)
    blob = F.embedding_to_bytes(emb)
    assert len(blob) == 512
    assert np.array_equal(np.frombuffer(blob, dtype="<f4"), emb)
    assert np.array_equal(F.embedding_from_bytes(blob), emb)
    with pytest.raises(ValueError):
        F.embedding_from_bytes(blob[:-4])


# ------------------------------------------------------------------------------------------
# enrollment quality


def test_gallery_photos_are_enrollable(faces_dir: Path) -> None:
    check = F.check_enrollment_photo(faces_dir / "gallery" / "obama" / "obama.jpg")
    assert check.ok and check.reason is None and check.face is not None
    assert check.face.quality.face_px >= F.ENROLL_QUALITY.min_face_px


def test_refuses_photo_without_face(shared_data: Path) -> None:
    check = F.check_enrollment_photo(_plate_photo(shared_data))
    assert not check.ok and check.reason == "no_face"


def test_refuses_several_faces(faces_dir: Path) -> None:
    check = F.check_enrollment_photo(faces_dir / "probe" / "obama_and_biden.jpg")
    assert not check.ok and check.reason == "several_faces" and check.faces_found == 3


def test_refuses_tiny_face(obama_rgb: np.ndarray) -> None:
    s = 50 / 240  # the face is ~240 px wide in the photo
    tiny = cv2.resize(obama_rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    check = F.check_enrollment_photo(tiny)
    assert not check.ok and check.reason == "face_too_small"


def test_refuses_blurred_face(obama_rgb: np.ndarray) -> None:
    sharp = F.check_enrollment_photo(obama_rgb)
    assert sharp.ok and sharp.face is not None
    blurred = cv2.GaussianBlur(obama_rgb, (0, 0), 0.04 * sharp.face.box.width)
    check = F.check_enrollment_photo(blurred)
    assert not check.ok and check.reason == "face_blurred"
    assert check.face is not None and check.face.quality.blur > sharp.face.quality.blur + 0.2


def test_refuses_face_turned_away(faces_dir: Path) -> None:
    # the child in obama_and_biden.jpg is seen nearly in profile
    photo = decode_image(faces_dir / "probe" / "obama_and_biden.jpg").rgb
    check = F.check_enrollment_photo(photo[950:1350, 1480:1880])
    assert not check.ok and check.reason == "face_not_frontal"


def test_yaw_sign_follows_the_nose(faces_dir: Path) -> None:
    rgb = decode_image(faces_dir / "probe" / "obama1.jpg").rgb
    yaw = F.analyze_image(rgb, embed=False)[0].quality.yaw
    yaw_mirror = F.analyze_image(np.ascontiguousarray(rgb[:, ::-1]), embed=False)[0].quality.yaw
    assert yaw > 10 and yaw_mirror < -10


@pytest.mark.parametrize("case", ["text", "truncated", "huge_png", "huge_jpeg", "empty"])
def test_refuses_bad_files(case: str, faces_dir: Path) -> None:
    jpeg = (faces_dir / "probe" / "obama1.jpg").read_bytes()
    data, reason = {
        "text": (b"hello, this is not an image\n" * 10, "not_an_image"),
        "truncated": (jpeg[: len(jpeg) // 2], "corrupt_image"),
        "huge_png": (_huge_png_header(40_000, 40_000), "image_too_large"),
        "huge_jpeg": (_jpeg_with_header_size(jpeg, 60_000, 60_000), "image_too_large"),
        "empty": (b"", "empty_image"),
    }[case]
    check = F.check_enrollment_photo(data)
    assert not check.ok and check.reason == reason
    assert check.message == F.REASONS[reason]
    with pytest.raises(ImageError) as info:
        F.analyze_frame(data)
    assert info.value.code == reason


def test_fifty_megapixel_jpeg_is_decoded_at_reduced_scale(obama_rgb: np.ndarray) -> None:
    grey = cv2.cvtColor(obama_rgb, cv2.COLOR_RGB2GRAY)
    big = cv2.resize(grey, None, fx=7.2, fy=7.2, interpolation=cv2.INTER_LINEAR)  # 53.6 MP
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=85)
    del big
    decoded = decode_image(buf.getvalue())
    assert decoded.original_size == (6552, 8186)
    assert decoded.rgb.shape[0] * decoded.rgb.shape[1] <= MAX_DECODE_PIXELS
    check = F.check_enrollment_photo(buf.getvalue())
    assert check.ok and check.face is not None
    # the box is reported in the pixels of the original image (the face is ~1700 px wide)
    assert check.face.box.width > 1500


def test_large_png_is_refused_not_decoded() -> None:
    buf = io.BytesIO()
    Image.new("L", (6000, 5000)).save(buf, "PNG")  # 30 MP, above the decode limit
    with pytest.raises(ImageError) as info:
        decode_image(buf.getvalue())
    assert info.value.code == "image_too_large"


def test_exif_orientation_is_applied(obama_rgb: np.ndarray) -> None:
    upright = Image.fromarray(obama_rgb)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone held sideways saves it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif)
    decoded = decode_image(buf.getvalue())
    assert decoded.rgb.shape[:2] == obama_rgb.shape[:2]
    assert F.check_enrollment_photo(decoded).ok


# ------------------------------------------------------------------------------------------
# access frames


def test_analyze_frame_on_terminal_frame(gallery: F.Gallery, obama_rgb: np.ndarray) -> None:
    face = F.analyze_image(obama_rgb, embed=False)[0]
    frame = _terminal_frame(obama_rgb, face)
    faces = F.analyze_frame(frame)
    assert len(faces) == 1
    f = faces[0]
    assert f.embedding is not None and f.embedding.shape == (128,)
    assert f.landmarks.shape == (68, 2) and f.landmarks5.shape == (5, 2)
    assert f.quality.ok, f.quality
    assert 150 < f.box.width < 260
    assert gallery.identify(f.embedding).person_id == "obama"
    # the same frame as OpenCV delivers it (BGR) gives the same embedding
    bgr = np.ascontiguousarray(frame[:, :, ::-1])
    same = F.analyze_frame(bgr, channel_order="bgr")[0]
    assert same.embedding is not None
    assert F.embedding_distance(same.embedding, f.embedding) < 1e-4
    assert F.analyze_frame(np.zeros((480, 640, 3), dtype=np.uint8)) == []


# ------------------------------------------------------------------------------------------
# liveness


def _burst(frames: list[np.ndarray], start: int, count: int = 8, step: int = 3) -> list[np.ndarray]:
    return [frames[start + step * k] for k in range(count)]


def test_static_burst_is_refused(video_frames: list[np.ndarray], obama_rgb: np.ndarray) -> None:
    ok, reason, details = check_liveness([video_frames[130]] * 8)
    assert not ok and reason == "no_motion" and details["tracked"] == 8
    face = F.analyze_image(obama_rgb, embed=False)[0]
    photo = _terminal_frame(obama_rgb, face)
    ok, reason, _ = check_liveness([photo] * 6)
    assert not ok and reason == "no_motion"


def test_moving_printed_photo_is_refused(
    video_frames: list[np.ndarray], obama_rgb: np.ndarray
) -> None:
    """A photo waved in front of the camera: each frame is the same picture under a different
    perspective (a plane seen from moving viewpoints), with lighting changes and noise."""
    rng = np.random.default_rng(11)
    face = F.analyze_image(obama_rgb, embed=False)[0]
    for picture in (video_frames[150], _terminal_frame(obama_rgb, face)):
        h, w = picture.shape[:2]
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        frames = []
        offset = np.zeros((4, 2), dtype=np.float32)
        for _ in range(8):
            offset += rng.normal(0, 0.025 * min(w, h), (4, 2)).astype(np.float32)
            m = cv2.getPerspectiveTransform(corners, corners + offset)
            warped = cv2.warpPerspective(picture, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
            noisy = warped * rng.uniform(0.85, 1.15) + rng.normal(0, 3, (h, w, 3))
            frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        ok, reason, details = check_liveness(frames)
        assert not ok and reason == "flat_motion", details


def test_real_head_motion_is_live(video_frames: list[np.ndarray]) -> None:
    for start in (90, 130, 170):
        ok, reason, details = check_liveness(_burst(video_frames, start))
        assert ok and reason is None, (start, details)
        assert details["nonplanar"] > 0.06 and details["tracked"] == 8
        assert isinstance(details["best_frame"], int) and len(details["box"]) == 4


def test_head_turn_challenges(video_frames: list[np.ndarray]) -> None:
    # in this stretch of the clip he turns towards his left (the image's right)
    turning_left = _burst(video_frames, 130)
    assert check_liveness(turning_left, challenge="turn_left").ok
    assert check_liveness(turning_left, challenge="turn_right").reason == "challenge_failed"
    assert check_liveness(turning_left, challenge="turn_right", mirrored=True).ok
    turning_right = _burst(video_frames, 90)
    assert check_liveness(turning_right, challenge="turn_right").ok
    # no blink is visible at this size (~35 px between the eyes): honestly refused
    assert check_liveness(turning_left, challenge="blink").reason == "challenge_failed"
    assert check_liveness(turning_left, challenge="wave").reason == "unknown_challenge"


def test_blink_logic_and_tilt_invariance(obama_rgb: np.ndarray) -> None:
    assert detect_blink([0.31, 0.30, 0.12, 0.29, 0.30])
    assert not detect_blink([0.31, 0.30, 0.29, 0.30, 0.31])
    assert not detect_blink([0.30, 0.26, 0.21, 0.16, 0.11])  # closing, never reopening
    assert not detect_blink([0.12, 0.11, 0.05, 0.12, 0.11])  # too narrow to measure
    # tilting a picture changes the eye shape in the image but not the rectified openness
    pts = F.analyze_image(obama_rgb, embed=False)[0].landmarks.astype(np.float64)
    h = np.array([[1.0, 0.1, 5.0], [0.05, 0.6, 3.0], [0.0004, 0.0002, 1.0]])
    tilted = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), h).reshape(-1, 2)
    assert abs(F.eye_aspect_ratio(tilted) - F.eye_aspect_ratio(pts)) > 0.03
    assert _rectified_ear(tilted, pts) == pytest.approx(F.eye_aspect_ratio(pts), abs=1e-3)


def test_liveness_bad_bursts(video_frames: list[np.ndarray], shared_data: Path) -> None:
    assert check_liveness(video_frames[130:132]).reason == "too_few_frames"
    plate = decode_image(_plate_photo(shared_data)).rgb
    assert check_liveness([plate] * 5).reason == "no_face"
    assert (
        check_liveness([video_frames[130], b"garbage", video_frames[133]]).reason == "not_an_image"
    )
    # a picture swapped for another one in the middle of the burst
    swapped = [video_frames[130]] * 4 + [video_frames[240]] * 4
    assert check_liveness(swapped).reason == "face_changed"


# ------------------------------------------------------------------------------------------
# command line


def test_cli_identify(faces_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    probes = [faces_dir / "probe" / name for name in EXPECTED]
    result = CliRunner().invoke(
        faces_app,
        ["identify", "--gallery", str(faces_dir / "gallery"), *map(str, probes), str(bad)],
    )
    assert result.exit_code == 1, result.output  # one image was unusable
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(probes) + 1
    for line, (name, expected) in zip(lines, EXPECTED.items(), strict=False):
        assert line["image"].endswith(name)
        assert [f["person"] for f in line["faces"]] == expected
        for f in line["faces"]:
            x1, y1, x2, y2 = f["box"]
            assert x2 > x1 and y2 > y1 and 0 <= f["distance"] < 2
        assert [f["box"][0] for f in line["faces"]] == sorted(f["box"][0] for f in line["faces"])
    assert lines[-1]["faces"] == [] and lines[-1]["error"] in ("corrupt_image", "not_an_image")
    missing = CliRunner().invoke(
        faces_app, ["identify", "--gallery", str(tmp_path / "nope"), str(probes[0])]
    )
    assert missing.exit_code == 2


def test_cli_enroll(faces_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    gal = tmp_path / "gallery"
    obama = faces_dir / "gallery" / "obama" / "obama.jpg"
    runner = CliRunner()
    first = runner.invoke(
        faces_app,
        [
            "enroll",
            "--gallery",
            str(gal),
            "--person",
            "奥巴马",
            str(obama),
            str(faces_dir / "probe" / "obama_and_biden.jpg"),
            str(_plate_photo(shared_data)),
        ],
    )
    assert first.exit_code == 1, first.output
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["ok"], r["reason"]) for r in rows] == [
        (True, None),
        (False, "several_faces"),
        (False, "no_face"),
    ]
    saved = Path(rows[0]["saved"])
    assert saved.parent == gal / "奥巴马" and saved.read_bytes() == obama.read_bytes()
    assert sorted(p.name for p in (gal / "奥巴马").iterdir()) == ["obama.jpg"]
    # the same photo again: nothing copied twice; the same face under another name: refused
    again = runner.invoke(
        faces_app, ["enroll", "--gallery", str(gal), "--person", "奥巴马", str(obama)]
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["duplicate"] is True
    other = runner.invoke(
        faces_app,
        [
            "enroll",
            "--gallery",
            str(gal),
            "--person",
            "barack",
            str(faces_dir / "gallery" / "obama" / "obama2.jpg"),
        ],
    )
    row = json.loads(other.stdout)
    assert other.exit_code == 1 and row["reason"] == "matches_other_person"
    assert row["other_person"] == "奥巴马" and not (gal / "barack").exists()
    bad_name = runner.invoke(
        faces_app, ["enroll", "--gallery", str(gal), "--person", "../x", str(obama)]
    )
    assert bad_name.exit_code == 2
    assert not valid_person_name(".hidden") and valid_person_name("王小明")


def test_cli_liveness_on_video(faces_dir: Path) -> None:
    video = str(faces_dir / "video" / "short_hamilton_clip.mp4")
    live = CliRunner().invoke(faces_app, ["liveness", "--video", video, "--start", "130"])
    assert live.exit_code == 0, live.output
    assert json.loads(live.stdout)["ok"] is True
