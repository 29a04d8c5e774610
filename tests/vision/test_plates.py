"""Licence-plate reader: grammar and correction (synthetic strings), the CTC decoder
(synthetic probability matrices), and the reader on the real CCPD photos in ../shared/data.
"""

from __future__ import annotations

import csv
import json
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from linli.vehicles.cli import plates_app
from linli.vision import plate_grammar as g
from linli.vision.plates import (
    AUTO_OPEN_CONFIDENCE,
    REASONS,
    ImageError,
    PlateReader,
    PlateResult,
    classify_color,
    load_image,
    parse_ccpd_filename,
)

# ---------------------------------------------------------------------------------------------
# grammar: validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("皖AYL375", "cn_standard"),
        ("京A·12345", "cn_standard"),
        ("沪B 0D8Z5", "cn_standard"),
        ("粤BD12345", "cn_new_energy_small"),  # green 8 characters, D = electric
        ("浙AFA1234", "cn_new_energy_small"),  # D/F, letter or digit, 4 digits
        ("苏E12345F", "cn_new_energy_large"),
        ("皖A1234学", "cn_coach"),
        ("鲁B1234挂", "cn_trailer"),
        ("京A0123警", "cn_police"),
        ("沪A1234领", "cn_consulate"),
        ("粤Z1234港", "cn_hong_kong_macao"),
        ("粤Z5678澳", "cn_hong_kong_macao"),
        ("使014578", "cn_embassy"),
        ("川A1234应急", "cn_emergency"),
        ("皖ＡＢ１２３４", "cn_standard"),  # fullwidth forms
    ],
)
def test_valid_plates(text: str, fmt: str) -> None:
    found = g.validate(text)
    assert found is not None, text
    assert found.name == fmt


@pytest.mark.parametrize(
    "text",
    [
        "皖AI2345",  # I never occurs
        "皖AO2345",  # O never occurs
        "皖IA2345",
        "XA12345",  # not a province
        "皖112345",  # 2nd character must be a letter
        "皖A1234",  # too short
        "皖A1234567",  # too long
        "沪Z1234港",  # Hong Kong / Macao plates are 粤Z only
        "粤BZ12345",  # small new-energy: the 3rd is D/F (or A-K), Z is not one of them
        "苏E1234DF",  # large new-energy: five digits then D/F
        "",
    ],
)
def test_invalid_plates(text: str) -> None:
    assert g.validate(text) is None


def test_letters_exclude_i_and_o() -> None:
    assert "I" not in g.LETTERS and "O" not in g.LETTERS
    assert len(g.LETTERS) == 24
    assert len(set(g.PROVINCES)) == 31


def test_display_puts_the_dot_after_the_issuing_office() -> None:
    fmt = g.validate("皖AYL375")
    assert fmt is not None
    assert fmt.display("皖AYL375") == "皖A·YL375"


# ---------------------------------------------------------------------------------------------
# grammar: position-rule correction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fixed"),
    [
        ("皖0·12345", "皖D12345"),  # 2nd is always a letter: 0 -> D
        ("粤8·12345", "粤B12345"),  # 8 -> B
        ("京2·A1234", "京ZA1234"),  # 2 -> Z
        ("浙5·12345", "浙S12345"),  # 5 -> S
        ("沪A·1234I", "沪A12341"),  # I never occurs -> 1
        ("苏A·D12O5", "苏AD1205"),  # O never occurs -> 0
        ("皖AI2345", "皖A12345"),
        ("使O14578", "使014578"),  # embassy serial is digits only
        ("粤BD1234S", "粤BD12345"),  # new-energy: last four are digits: S -> 5
        ("苏E1234BD", "苏E12348D"),  # large new-energy: 5 digits then D/F: B -> 8
        ("皖a·b1234", "皖AB1234"),  # lower case
    ],
)
def test_correct_text(raw: str, fixed: str) -> None:
    fix = g.correct_text(raw)
    assert fix is not None, raw
    assert fix.text == fixed
    assert fix.format.matches(fixed)
    assert 0 < fix.cost <= 1


def test_correct_text_leaves_valid_serial_alone() -> None:
    # 0 and D are both allowed in the serial: nothing to fix, nothing changed
    fix = g.correct_text("皖A0D8Z5")
    assert fix is not None
    assert fix.text == "皖A0D8Z5"
    assert fix.changed == ()
    assert fix.cost == 1.0


def test_correction_costs_confidence() -> None:
    one = g.correct_text("皖0·12345")
    two = g.correct_text("皖0·1234I")
    assert one is not None and two is not None
    assert two.cost < one.cost < 1.0


@pytest.mark.parametrize("raw", ["ABCDEFG", "皖A12", "皖皖12345", "1234567", "皖A#12345"])
def test_correct_text_gives_up(raw: str) -> None:
    assert g.correct_text(raw) is None


def test_pluggable_formats_for_another_country() -> None:
    uk = g.PlateFormat.from_template(
        "uk_current",
        "{L}{L}{D}{D} {L}{L}{L}".replace(" ", ""),
        country="GB",
        kind="standard",
        colors=("white", "yellow"),
        classes={"L": "ABCDEFGHJKLMNOPRSTUVWXYZ", "D": g.DIGITS},
    )
    g.register_formats("GB", [uk])
    try:
        formats = g.formats_for(["GB"])
        assert g.validate("AB12 CDE", formats) is uk
        assert g.validate("皖AYL375", formats) is None
        fix = g.correct_text("A812CDE", formats)  # 2nd is a letter: 8 -> B
        assert fix is not None and fix.text == "AB12CDE"
        with pytest.raises(KeyError):
            g.formats_for(["XX"])
    finally:
        del g.FORMAT_TABLE["GB"]


def test_template_errors() -> None:
    with pytest.raises(ValueError):
        g.parse_template("{P}{Nope}", g.CN_CLASSES)
    with pytest.raises(ValueError):
        g.parse_template("", g.CN_CLASSES)


# ---------------------------------------------------------------------------------------------
# grammar-constrained CTC decoding on synthetic probability matrices
# ---------------------------------------------------------------------------------------------

VOCAB = ["<blank>", *sorted(set(g.PROVINCES + g.ALNUM + "IOo·学警领港澳使应急挂.-")), " "]
IDX = {c: i for i, c in enumerate(VOCAB)}


def ctc_probs(frames: Sequence[str | dict[str, float]]) -> np.ndarray:
    """One row per frame: "_" = blank, "c" = char c at 0.96, or {char: p, ...}."""
    out = np.full((len(frames), len(VOCAB)), 1e-4, dtype=np.float32)
    for t, f in enumerate(frames):
        spec = {"<blank>": 0.96} if f == "_" else ({f: 0.96} if isinstance(f, str) else f)
        for ch, p in spec.items():
            out[t, IDX[ch]] = p
        out[t] /= out[t].sum()
    return out


def spell(text: str) -> list[str | dict[str, float]]:
    frames: list[str | dict[str, float]] = ["_", "_"]
    for ch in text:
        frames += [ch, "_"]
    return [*frames, "_"]


@pytest.fixture(scope="module")
def decoder() -> g.CTCGrammarDecoder:
    return g.CTCGrammarDecoder(VOCAB, g.CN_FORMATS)


def test_decode_clean_standard(decoder: g.CTCGrammarDecoder) -> None:
    best = decoder.decode(ctc_probs(spell("皖A·YL375")))[0]
    assert best.text == "皖AYL375"
    assert best.format.name == "cn_standard"
    assert best.confidence > 0.85
    assert len(best.spans) == 7


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("粤BD12345", "cn_new_energy_small"),
        ("苏E12345F", "cn_new_energy_large"),
        ("皖A1234学", "cn_coach"),
        ("沪A1234领", "cn_consulate"),
        ("粤Z1234港", "cn_hong_kong_macao"),
        ("京A0123警", "cn_police"),
        ("使014578", "cn_embassy"),
        ("川A1234应急", "cn_emergency"),
        ("鲁B1234挂", "cn_trailer"),
    ],
)
def test_decode_other_formats(decoder: g.CTCGrammarDecoder, text: str, fmt: str) -> None:
    best = decoder.decode(ctc_probs(spell(text)))[0]
    assert best.text == text
    assert best.format.name == fmt
    assert best.confidence > 0.8


def test_decode_repeated_characters_need_a_blank(decoder: g.CTCGrammarDecoder) -> None:
    # "11" is two characters only because a blank separates them
    best = decoder.decode(ctc_probs(spell("皖A11299")))[0]
    assert best.text == "皖A11299"
    frames = ["_", "皖", "A", "1", "1", "_", "2", "_", "9", "_", "9", "_"]
    read = decoder.decode(ctc_probs(frames))[0]  # only one 1 was seen: cannot be 皖A11299
    assert read.confidence < 0.5


def test_decode_fixes_position_confusions_at_a_cost(decoder: g.CTCGrammarDecoder) -> None:
    frames = spell("皖0·12345")  # the recogniser saw a zero where a letter must be
    best = decoder.decode(ctc_probs(frames))[0]
    assert best.text == "皖D12345"
    assert 1 in best.corrected
    clean = decoder.decode(ctc_probs(spell("皖D·12345")))[0]
    assert best.confidence < clean.confidence
    assert best.confidence < AUTO_OPEN_CONFIDENCE  # a forced guess never auto-opens


def test_decode_uses_runner_up_probabilities(decoder: g.CTCGrammarDecoder) -> None:
    frames = spell("皖A·12345")
    assert frames[2] == "皖" and frames[8] == "1"
    frames[2] = {"M": 0.6, "皖": 0.3, "<blank>": 0.1}  # M is not a province
    frames[8] = {"I": 0.9, "1": 0.05, "<blank>": 0.05}  # I never occurs: it is a 1
    best = decoder.decode(ctc_probs(frames))[0]
    assert best.text == "皖A12345"
    assert best.char_confidences[0] == pytest.approx(0.3, abs=0.05)
    assert best.char_confidences[2] > 0.8  # I -> 1 is an almost free correction
    assert best.confidence < AUTO_OPEN_CONFIDENCE  # but the province is doubtful


def test_unexplained_character_lowers_confidence(decoder: g.CTCGrammarDecoder) -> None:
    frames = spell("皖A·12345")
    frames.insert(9, "7")  # an extra character the plate format cannot hold
    frames.insert(10, "_")
    best = decoder.decode(ctc_probs(frames))[0]
    assert best.confidence < 0.5


def test_noise_matrix_has_no_confident_plate(decoder: g.CTCGrammarDecoder) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.full(len(VOCAB), 0.05), size=30).astype(np.float32)
        readings = decoder.decode(p)
        assert all(r.confidence < AUTO_OPEN_CONFIDENCE for r in readings)


def test_too_few_frames(decoder: g.CTCGrammarDecoder) -> None:
    assert decoder.decode(ctc_probs(["_", "A", "_"])) == []
    with pytest.raises(ValueError):
        decoder.decode(np.zeros((5, 3), dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# colour
# ---------------------------------------------------------------------------------------------


def _plate(bg: tuple[int, int, int], ink: tuple[int, int, int]) -> np.ndarray:
    img = np.zeros((48, 150, 3), np.uint8)
    img[:] = bg
    cv2.putText(img, "A12345", (8, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.2, ink, 3)
    return img


@pytest.mark.parametrize(
    ("bg", "ink", "colour"),
    [
        ((170, 70, 10), (250, 250, 250), "blue"),
        ((20, 190, 240), (10, 10, 10), "yellow"),
        ((90, 200, 60), (10, 10, 10), "green"),
        ((235, 235, 235), (10, 10, 10), "white"),
        ((20, 20, 20), (240, 240, 240), "black"),
    ],
)
def test_classify_color(bg: tuple[int, int, int], ink: tuple[int, int, int], colour: str) -> None:
    assert classify_color(_plate(bg, ink)) == colour


# ---------------------------------------------------------------------------------------------
# image loading: bad input is an ImageError with a reason code, never a crash
# ---------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_load_image_errors(tmp_path: Path) -> None:
    cases: dict[str, bytes] = {
        "not_an_image": "这不是图片 / not an image\n".encode() * 20,
        "empty_image": b"",
        "image_too_large": _png_header_only(40_000, 40_000),  # 1.6 gigapixels, tiny file
    }
    for code, data in cases.items():
        p = tmp_path / f"{code}.jpg"
        p.write_bytes(data)
        with pytest.raises(ImageError) as err:
            load_image(p)
        assert err.value.code == code
        assert code in REASONS
    # a JPEG whose data is garbage after a valid start
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(buf.tobytes()[:20] + b"\x00" * 50)
    with pytest.raises(ImageError) as err:
        load_image(corrupt)
    assert err.value.code == "corrupt_image"
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "missing.jpg")
    assert err.value.code == "unreadable_file"
    with pytest.raises(ImageError) as err:
        load_image(np.zeros((3, 4, 5, 6), np.uint8))
    assert err.value.code == "unsupported_image"


def test_large_image_is_downscaled_before_use() -> None:
    big = np.full((3000, 5000, 3), 90, np.uint8)
    ok, buf = cv2.imencode(".jpg", big)
    assert ok
    img = load_image(buf.tobytes(), max_side=2048)
    assert max(img.shape[:2]) <= 2048
    assert img.dtype == np.uint8 and img.shape[2] == 3


def test_parse_ccpd_filename() -> None:
    name = (
        "00622964559386-91_90-226&433_358&500-360&494_230&484_231&438_361&448-"
        "0_0_22_10_27_31_29-121-11.jpg"
    )
    assert parse_ccpd_filename(name) == ("皖AYL375", (226, 433, 358, 500))
    assert parse_ccpd_filename("ccpd_demo_0.jpg") is None


# ---------------------------------------------------------------------------------------------
# the reader on real photos
# ---------------------------------------------------------------------------------------------


def _cases(shared: Path) -> list[tuple[Path, str, tuple[int, int, int, int] | None]]:
    plates = shared / "plates"
    out: list[tuple[Path, str, tuple[int, int, int, int] | None]] = []
    for p in sorted(plates.glob("*.jpg")):
        gt = parse_ccpd_filename(p.name)
        assert gt is not None, p.name
        out.append((p, gt[0], gt[1]))
    with (plates / "other" / "labels.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append((plates / "other" / row["file"], row["plate"], None))
    return out


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(threads=1)


@pytest.fixture(scope="module")
def photo_results(
    shared_data: Path, reader: PlateReader
) -> list[tuple[str, PlateResult, tuple[int, int, int, int] | None]]:
    cases = _cases(shared_data)
    assert len(cases) >= 10
    return [(truth, reader.read(path), box) for path, truth, box in cases]


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_exact_plate_accuracy_and_no_wrong_plate_above_auto_open(photo_results: list) -> None:
    exact = 0
    for truth, res, _ in photo_results:
        assert res.ok, res.status
        top = res.plates[0] if res.plates else None
        if top is not None and top.text == truth:
            exact += 1
        for p in res.plates:
            if p.text != truth:
                assert p.confidence < AUTO_OPEN_CONFIDENCE, (truth, p)
    assert exact / len(photo_results) >= 0.90, f"{exact}/{len(photo_results)}"


def test_plate_box_colour_and_confidence(photo_results: list) -> None:
    ious = []
    confident = 0
    for truth, res, box in photo_results:
        if not res.plates or res.plates[0].text != truth:
            continue
        top = res.plates[0]
        assert top.color == "blue"  # every plate in the shared set is a blue one
        assert 0.0 <= top.confidence <= 1.0
        confident += top.confidence >= AUTO_OPEN_CONFIDENCE
        if box is not None:
            ious.append(_iou(top.box, box))
    assert ious and min(ious) >= 0.5, ious
    # the threshold is usable: most correct plates open the gate by themselves
    assert confident >= 0.7 * len(photo_results)


def test_faces_are_not_plates(shared_data: Path, reader: PlateReader) -> None:
    faces = sorted((shared_data / "faces").rglob("*.jpg"))
    assert faces
    for f in faces[:8]:
        res = reader.read(f)
        assert res.ok
        assert res.status in ("no_plate", "unrecognised", "uncertain"), res.status
        assert all(p.confidence < AUTO_OPEN_CONFIDENCE for p in res.plates)


def _first_ccpd(shared: Path) -> tuple[Path, str, tuple[int, int, int, int]]:
    for p, truth, box in _cases(shared):
        if box is not None:
            return p, truth, box
    raise AssertionError("no CCPD photo")


def test_covered_or_cut_plate_never_auto_opens(shared_data: Path, reader: PlateReader) -> None:
    path, truth, (x1, y1, x2, y2) = _first_ccpd(shared_data)
    img = cv2.imread(str(path))
    assert img is not None
    covered = img.copy()
    covered[y1:y2, x1:x2] = covered[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
    half = img.copy()
    half[y1:y2, x1 + (x2 - x1) // 2 : x2] = 128
    cut = img[:, : x1 + (x2 - x1) // 2].copy()
    for variant in (covered, half, cut):
        res = reader.read(variant)
        assert res.ok
        assert not any(p.confidence >= AUTO_OPEN_CONFIDENCE for p in res.plates)
        assert not any(p.text == truth for p in res.plates)


def test_array_and_bytes_input_and_upscaled_photo(shared_data: Path, reader: PlateReader) -> None:
    path, truth, box = _first_ccpd(shared_data)
    img = cv2.imread(str(path))
    assert img is not None
    assert [p.text for p in reader.read_array(img)][:1] == [truth]
    big = cv2.resize(img, None, fx=2.6, fy=2.6, interpolation=cv2.INTER_CUBIC)  # ~1870x3016
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    res = reader.read(buf.tobytes())  # decoded and read at <= 2048 px, box in input pixels
    assert res.ok and res.image == "<bytes>"
    assert res.plates and res.plates[0].text == truth
    scaled_box = tuple(round(v * 2.6) for v in box)
    assert _iou(res.plates[0].box, scaled_box) > 0.5


def test_read_never_raises_on_bad_files(tmp_path: Path, reader: PlateReader) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello", encoding="utf-8")
    res = reader.read(bad)
    assert not res.ok and res.status == "not_an_image"
    assert res.to_dict()["error"] == "not_an_image"
    assert res.plates == []
    blank = np.full((400, 600, 3), 200, np.uint8)
    res = reader.read(blank)
    assert res.ok and res.status == "no_plate" and res.plates == []
    for shape in [(1, 1, 3), (20, 3000, 3), (3000, 20, 3), (64, 64)]:
        res = reader.read(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
        assert res.ok and all(p.confidence < AUTO_OPEN_CONFIDENCE for p in res.plates)
    res = reader.read(np.zeros((10, 10, 3), np.float32))
    assert res.status == "unsupported_image"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_read_prints_one_json_line_per_image(shared_data: Path, tmp_path: Path) -> None:
    path, truth, box = _first_ccpd(shared_data)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = CliRunner().invoke(plates_app, ["read", str(path), str(bad)])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    first, second = lines
    assert first["image"] == str(path)
    assert first["plates"][0]["text"] == truth
    plate = first["plates"][0]
    assert set(plate) >= {"text", "color", "confidence", "box"}
    assert isinstance(plate["box"], list) and len(plate["box"]) == 4
    assert _iou(tuple(plate["box"]), box) > 0.5
    assert second["plates"] == [] and second["error"] in ("not_an_image", "corrupt_image")
    assert second["message"]
    assert result.exit_code == 1  # one image failed


def test_cli_check() -> None:
    result = CliRunner().invoke(plates_app, ["check", "皖A·YL375", "粤8·12345", "hello"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["valid"] and rows[0]["text"] == "皖AYL375"
    assert not rows[1]["valid"] and rows[1]["text"] == "粤B12345"
    assert rows[2]["text"] is None
