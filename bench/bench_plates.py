"""Benchmark of the licence-plate reader: exact-plate accuracy and latency per photo.

    taskset -c 0 .venv/bin/python bench/bench_plates.py            # accuracy + latency
    taskset -c 0 .venv/bin/python bench/bench_plates.py --robustness   # + calibration study

Photos: every image in ../shared/data/plates (CCPD; ground truth in the file names) and
plates/other (labels.csv). onnxruntime runs with intra_op_num_threads=1; pin the process to
one core with ``taskset -c 0`` for the one-core figure.

``--robustness`` also reads degraded copies of the photos (blur, motion, low resolution,
JPEG, noise, exposure, rotation, occluded or cut plates, plate covered) and face photos,
and prints how many wrong plates score at or above each confidence threshold: this is how
AUTO_OPEN_CONFIDENCE was chosen (docs/plates.md).

The last line printed is the one-line result.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from linli.vision.plates import (  # noqa: E402
    AUTO_OPEN_CONFIDENCE,
    PlateReader,
    parse_ccpd_filename,
)

DEFAULT_DATA = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data"))

Case = tuple[Path, str, tuple[int, int, int, int] | None]


def ground_truth(plates_dir: Path) -> list[Case]:
    cases: list[Case] = []
    for p in sorted(plates_dir.glob("*.jpg")):
        gt = parse_ccpd_filename(p.name)
        if gt is not None:
            cases.append((p, gt[0], gt[1]))
    labels = plates_dir / "other" / "labels.csv"
    if labels.is_file():
        with labels.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                cases.append((plates_dir / "other" / row["file"], row["plate"].strip(), None))
    return cases


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# degradations for the calibration study
# ---------------------------------------------------------------------------------------------


def _motion(img: np.ndarray, k: int) -> np.ndarray:
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    return cv2.filter2D(img, -1, kernel)


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert out is not None
    return out


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def _scale(img: np.ndarray, s: float) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def global_variants(img: np.ndarray, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    yield "blur1.5", cv2.GaussianBlur(img, (0, 0), 1.5)
    yield "blur3", cv2.GaussianBlur(img, (0, 0), 3.0)
    yield "motion9", _motion(img, 9)
    yield "motion17", _motion(img, 17)
    yield "scale0.5", _scale(img, 0.5)
    yield "scale0.33", _scale(img, 0.33)
    yield "scale0.22", _scale(img, 0.22)
    yield "jpeg10", _jpeg(img, 10)
    noise = rng.normal(0, 25, img.shape)
    yield "noise25", np.clip(img + noise, 0, 255).astype(np.uint8)
    noise = rng.normal(0, 50, img.shape)
    yield "noise50", np.clip(img + noise, 0, 255).astype(np.uint8)
    yield "dark", (img.astype(np.float32) * 0.3).astype(np.uint8)
    lut = np.clip(((np.arange(256) / 255.0) ** 0.35) * 255, 0, 255).astype(np.uint8)
    yield "overexposed", cv2.LUT(img, lut)
    yield "lowcontrast", (img.astype(np.float32) * 0.35 + 110).astype(np.uint8)
    yield "rot8", _rotate(img, 8)
    yield "rot-15", _rotate(img, -15)
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    yield "gray", cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    yield "blur2+scale0.4", _scale(cv2.GaussianBlur(img, (0, 0), 2.0), 0.4)


def box_variants(
    img: np.ndarray, box: tuple[int, int, int, int], seed: int
) -> Iterator[tuple[str, np.ndarray]]:
    """Occluded / cut plates: the true plate can no longer be read in full."""
    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = box
    w = x2 - x1
    fill = img[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
    for name, a, b in (
        ("cover_left30", 0.0, 0.3),
        ("cover_right25", 0.75, 1.0),
        ("cover_mid15", 0.5, 0.65),
        ("cover_all", 0.0, 1.0),
    ):
        out = img.copy()
        out[y1:y2, x1 + int(a * w) : x1 + int(b * w)] = fill
        yield name, out
    # a cut plate: the image ends inside the plate
    yield "cut_right40", img[:, : x1 + int(0.6 * w)].copy()
    yield "cut_left35", img[:, x1 + int(0.35 * w) :].copy()
    # mud: random dark blobs over the characters
    out = img.copy()
    for _ in range(6):
        cx = int(rng.uniform(x1, x2))
        cy = int(rng.uniform(y1, y2))
        cv2.circle(out, (cx, cy), max(3, (y2 - y1) // 4), (40, 40, 40), -1)
    yield "mud", out


def robustness(reader: PlateReader, cases: list[Case], data: Path) -> None:
    rows: list[tuple[str, str, str, float]] = []  # variant, truth, read, confidence

    def run(name: str, img: np.ndarray, truth: str) -> None:
        res = reader.read(img)
        if res.plates:
            top = res.plates[0]
            rows.append((name, truth, top.text, top.confidence))
            for extra in res.plates[1:]:
                rows.append((name + "+", truth, extra.text, extra.confidence))
        else:
            rows.append((name, truth, "", 0.0))

    for i, (path, truth, box) in enumerate(cases):
        img = cv2.imread(str(path))
        assert img is not None
        for name, var in global_variants(img, i):
            run(name, var, truth)
        if box is not None:
            for name, var in box_variants(img, box, i):
                run(name, var, "?" if name != "cover_all" else "")
    faces = sorted((data / "faces").rglob("*.jpg"))
    for f in faces:
        img = cv2.imread(str(f))
        if img is not None:
            run("face", img, "")
    print("\nvariant            truth      read       conf")
    for name, truth, text, conf in rows:
        flag = "ok " if text == truth else ("-- " if not text else "BAD")
        print(f"{flag} {name:16s} {truth:10s} {text:10s} {conf:.3f}")
    wrong = [c for _, t, r, c in rows if r and r != t]
    right = [c for _, t, r, c in rows if r and r == t]
    print(
        f"\nreadings: {len(right)} right, {len(wrong)} wrong, "
        f"{sum(1 for _, _, r, _ in rows if not r)} none"
    )
    print("threshold  right>=t  wrong>=t")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        print(f"  {t:.2f}     {sum(c >= t for c in right):5d}     {sum(c >= t for c in wrong):5d}")
    print(
        f"highest wrong confidence: {max(wrong, default=0.0):.3f} "
        f"(AUTO_OPEN_CONFIDENCE = {AUTO_OPEN_CONFIDENCE})"
    )
    # reliability: accuracy per confidence bin
    print("bin         n   accuracy")
    allc = [(c, r == t) for _, t, r, c in rows if r]
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8, 0.9):
        hi = {0.8: 0.9, 0.9: 1.01}.get(lo, lo + 0.2)
        sel = [ok for c, ok in allc if lo <= c < hi]
        if sel:
            print(f"[{lo:.1f},{min(hi, 1.0):.1f})  {len(sel):4d}   {sum(sel) / len(sel):.2f}")


# ---------------------------------------------------------------------------------------------
# synthetic plates pasted onto the real photos (needs a CJK font, e.g. fonts-wqy-microhei)
# ---------------------------------------------------------------------------------------------

CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"

# (format name, background BGR top, background BGR bottom, text BGR, rim BGR, plate width mm)
STYLES = {
    "blue": ((150, 70, 10), (150, 70, 10), (245, 245, 245), (230, 230, 230), 440),
    "yellow": ((20, 190, 240), (20, 190, 240), (20, 20, 20), (20, 20, 20), 440),
    "green": ((235, 248, 238), (90, 200, 60), (20, 20, 20), (40, 40, 40), 480),
    "white": ((240, 240, 240), (240, 240, 240), (20, 20, 20), (20, 20, 20), 440),
    "black": ((25, 25, 25), (25, 25, 25), (240, 240, 240), (230, 230, 230), 440),
}
RED = (40, 30, 220)


def _find_cjk_font() -> str | None:
    for f in CJK_FONTS:
        if Path(f).is_file():
            return f
    return None


def random_plate(rng: np.random.Generator) -> tuple[str, str]:
    """A random plate text and its colour style, covering every Chinese format."""
    from linli.vision.plate_grammar import CN_FORMATS, DIGITS

    weights = {
        "cn_standard": 0.45,
        "cn_new_energy_small": 0.15,
        "cn_new_energy_large": 0.05,
        "cn_police": 0.05,
        "cn_coach": 0.06,
        "cn_trailer": 0.05,
        "cn_consulate": 0.05,
        "cn_hong_kong_macao": 0.05,
        "cn_embassy": 0.04,
        "cn_emergency": 0.05,
    }
    names = list(weights)
    fmt_name = names[
        int(rng.choice(len(names), p=np.array(list(weights.values())) / sum(weights.values())))
    ]
    fmt = next(f for f in CN_FORMATS if f.name == fmt_name)
    chars = []
    for slot in fmt.slots:
        if len(slot) > 30 and any(c in slot for c in DIGITS) and rng.random() < 0.65:
            chars.append(str(rng.integers(0, 10)))
        else:
            chars.append(slot[int(rng.integers(0, len(slot)))])
    text = "".join(chars)
    style = {
        "cn_standard": str(rng.choice(["blue", "blue", "blue", "yellow"])),
        "cn_new_energy_small": "green",
        "cn_new_energy_large": "green",
        "cn_police": "white",
        "cn_coach": "yellow",
        "cn_trailer": "yellow",
        "cn_consulate": "black",
        "cn_hong_kong_macao": "black",
        "cn_embassy": "black",
        "cn_emergency": "white",
    }[fmt_name]
    return text, style


def render_plate(text: str, style: str, cjk_font: str) -> np.ndarray:
    """Render a plate (4 px per mm) with plate-like narrow glyphs."""
    from PIL import Image, ImageDraw, ImageFont

    top, bottom, ink, rim, width_mm = STYLES[style]
    ppm = 2
    w, h = width_mm * ppm, 140 * ppm
    grad = np.linspace(0, 1, h)[:, None, None]
    plate = np.array(top)[None, None] * (1 - grad) + np.array(bottom)[None, None] * grad
    plate = np.repeat(plate, w, axis=1).astype(np.uint8)
    cv2.rectangle(plate, (3 * ppm, 3 * ppm), (w - 3 * ppm, h - 3 * ppm), rim, 2 * ppm)
    n = len(text)
    if n == 7:
        cw, gap, dot_gap = 45, 12, 34
    else:
        cw, gap, dot_gap = 43, 9, 30
    total = n * cw + (n - 2) * gap + dot_gap
    x = (width_mm - total) / 2
    cjk = ImageFont.truetype(cjk_font, 90 * ppm)
    lat = ImageFont.truetype(LATIN_FONT, 90 * ppm)
    for i, ch in enumerate(text):
        is_cjk = ord(ch) > 0x2E80
        font = cjk if is_cjk else lat
        colour = RED if ch in "警使" or (i == n - 1 and ch in "领港澳") else ink
        if ch in "应急" and i >= n - 2:
            colour = RED
        glyph = Image.new("L", (int(140 * ppm), int(120 * ppm)), 0)
        ImageDraw.Draw(glyph).text((5, 0), ch, fill=255, font=font)
        g = np.asarray(glyph)
        ys, xs = np.nonzero(g > 40)
        if len(xs) == 0:
            continue
        g = g[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        gw = cw * ppm if ch != "1" else int(cw * ppm * 0.35)
        gh = 90 * ppm
        g = cv2.resize(g, (gw, gh), interpolation=cv2.INTER_AREA)
        x0 = int((x + (cw * ppm - gw) / ppm / 2) * ppm) if ch == "1" else int(x * ppm)
        y0 = 25 * ppm
        region = plate[y0 : y0 + gh, x0 : x0 + gw].astype(np.float32)
        a = (g.astype(np.float32) / 255.0)[:, :, None]
        plate[y0 : y0 + gh, x0 : x0 + gw] = (region * (1 - a) + np.array(colour) * a).astype(
            np.uint8
        )
        x += cw + (dot_gap if i == 1 and n in (7, 8) else gap)
        if i == 1 and n in (7, 8):
            cx = int((x - dot_gap / 2 - gap / 2) * ppm)
            cv2.circle(plate, (cx, 70 * ppm), 5 * ppm, ink, -1)
    return plate


def paste_plate(photo: np.ndarray, corners: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Warp a rendered plate onto the four corners (tl, tr, br, bl) of a photo's plate.

    The plate takes the photo's colour cast (channel means) and a brightness close to the
    real plate it replaces, as a plate photographed in that scene would.
    """
    means = photo.reshape(-1, 3).astype(np.float32).mean(axis=0) + 1.0
    cast = means / means.mean()
    plate = np.clip(plate.astype(np.float32) * cast * 0.9, 0, 255).astype(np.uint8)
    h, w = plate.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
    warped = cv2.warpPerspective(plate, m, (photo.shape[1], photo.shape[0]), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (photo.shape[1], photo.shape[0]))
    out = photo.copy()
    sel = mask > 128
    out[sel] = warped[sel]
    return cv2.GaussianBlur(out, (3, 3), 0.8)


def ccpd_corners(name: str) -> np.ndarray | None:
    parts = Path(name).stem.split("-")
    if len(parts) < 5:
        return None
    pts = np.array([[int(v) for v in p.split("&")] for p in parts[3].split("_")], np.float32)
    # CCPD lists them from the bottom-right corner: br, bl, tl, tr
    br, bl, tl, tr = pts
    return np.array([tl, tr, br, bl], dtype=np.float32)


SYNTH_KINDS = ("clean", "blur", "small", "noise", "hard", "motion", "sticker")


def synthetic(reader: PlateReader, cases: list[Case], n: int, seed: int = 7) -> None:
    font = _find_cjk_font()
    if font is None:
        print("synthetic: no CJK font found (apt-get install fonts-wqy-microhei); skipped")
        return
    rng = np.random.default_rng(seed)
    bases: list[tuple[Path, np.ndarray]] = []
    for p, _, _ in cases:
        corners = ccpd_corners(p.name)
        if corners is not None:
            bases.append((p, corners))
    rows: list[tuple[str, str, str, str, float, str]] = []
    for i in range(n):
        path, corners = bases[i % len(bases)]
        read_photo = cv2.imread(str(path))
        assert read_photo is not None
        photo: np.ndarray = read_photo
        text, style = random_plate(rng)
        plate = render_plate(text, style, font)
        kind = SYNTH_KINDS[i % len(SYNTH_KINDS)]
        if kind == "sticker":  # one character hidden: the true plate cannot be read
            ph, pw = plate.shape[:2]
            k = int(rng.integers(0, len(text)))
            x0 = int(pw * (0.05 + 0.9 * k / len(text)))
            plate[int(ph * 0.12) : int(ph * 0.88), x0 : x0 + int(pw * 0.9 / len(text))] = plate[
                int(ph * 0.05), int(pw * 0.02)
            ]
            text = "?"
        c = corners.copy()
        if len(text) == 8:  # new-energy plates are wider
            d = (c[1] - c[0]) * 0.045
            c[0] -= d
            c[3] -= d
            c[1] += d
            c[2] += d
        img = paste_plate(photo, c, plate)
        if kind == "blur":
            img = cv2.GaussianBlur(img, (0, 0), 1.8)
        elif kind == "small":
            img = _scale(img, 0.45)
        elif kind == "noise":
            img = np.clip(img + rng.normal(0, 18, img.shape), 0, 255).astype(np.uint8)
        elif kind == "hard":
            img = _jpeg(_scale(cv2.GaussianBlur(img, (0, 0), 2.2), 0.5), 20)
        elif kind == "motion":
            img = _motion(img, 11)
        res = reader.read(img)
        top = res.plates[0] if res.plates else None
        rows.append(
            (
                kind,
                style,
                text,
                top.text if top else "",
                top.confidence if top else 0.0,
                top.color if top else "",
            )
        )
    print("\nsynthetic  kind   style   truth      read       conf   colour")
    for kind, style, truth, read, conf, colour in rows:
        flag = "ok " if read == truth else ("-- " if not read else "BAD")
        print(f"{flag} {kind:6s} {style:7s} {truth:10s} {read:10s} {conf:.3f} {colour}")
    right = [c for _, _, t, r, c, _ in rows if r == t]
    wrong = [c for _, _, t, r, c, _ in rows if r and r != t]
    colour_ok = sum(1 for _, s, t, r, _, col in rows if r == t and col == s)
    print(
        f"synthetic: {len(right)}/{len(rows)} exact, {len(wrong)} wrong "
        f"(max conf {max(wrong, default=0):.3f}), colour right {colour_ok}/{len(right)}"
    )
    for t in (0.5, 0.7, 0.8, 0.9):
        print(
            f"  t={t:.2f}: right>=t {sum(c >= t for c in right)}, "
            f"wrong>=t {sum(c >= t for c in wrong)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the photos")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--robustness", action="store_true")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="also read N synthetic plates of every format pasted on the photos",
    )
    args = ap.parse_args()

    cases = ground_truth(args.data / "plates")
    if not cases:
        sys.exit(f"no plate photos under {args.data / 'plates'}")
    reader = PlateReader(threads=args.threads)
    reader.warm_up()

    exact = 0
    wrong_above = 0
    for path, truth, _ in cases:
        res = reader.read(path)
        top = res.plates[0] if res.plates else None
        text = top.text if top else ""
        conf = top.confidence if top else 0.0
        if text == truth:
            exact += 1
        elif any(p.confidence >= AUTO_OPEN_CONFIDENCE for p in res.plates):
            wrong_above += 1
        print(
            f"{'ok ' if text == truth else 'BAD'} {path.name[:48]:48s} {truth:9s} "
            f"{text:9s} {conf:.3f} {top.color if top else '-':6s} {res.status}"
        )

    latencies: list[float] = []
    cpu: list[float] = []
    for _ in range(max(1, args.repeat)):
        for path, _, _ in cases:
            t0 = time.perf_counter()
            c0 = time.process_time()
            reader.read(path)
            cpu.append((time.process_time() - c0) * 1000.0)
            latencies.append((time.perf_counter() - t0) * 1000.0)

    if args.robustness:
        robustness(reader, cases, args.data)
    if args.synthetic:
        synthetic(reader, cases, args.synthetic)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"plates: exact {exact}/{len(cases)} ({100.0 * exact / len(cases):.1f}%), "
        f"wrong>=auto_open {wrong_above}, latency p50 {statistics.median(latencies):.0f} ms "
        f"p95 {percentile(latencies, 95):.0f} ms (cpu p50 {statistics.median(cpu):.0f} "
        f"p95 {percentile(cpu, 95):.0f} ms) over {len(latencies)} reads "
        f"({cpus} core(s), ort threads {args.threads})"
    )


if __name__ == "__main__":
    main()
