"""Licence-plate grammar: plate formats, confusion correction and grammar-constrained decoding.

A *format* is a sequence of slots; each slot is the set of characters allowed at that position
(e.g. the Chinese standard plate is ``province + letter + 5 letters/digits``). Formats are kept
in a table per country, so other countries' formats can be plugged in with
:func:`register_formats` without touching the reader.

Two entry points use the formats:

* :func:`correct_text` works on a plain OCR string: it removes separators and fixes the usual
  OCR confusions (0/O/D/Q, 1/I, 8/B, 2/Z, 5/S, ...) by position, e.g. the 2nd character of a
  Chinese plate is always a letter, so an OCR ``0`` there becomes ``D``.
* :func:`decode_ctc` works on the per-frame character probabilities of a CTC text recogniser:
  a Viterbi alignment against every format picks the best format and, for every slot, the best
  *allowed* character. Probability mass the recogniser put on a confusable character that is
  not allowed in the slot is credited (partially) to its allowed look-alike, so a correction
  costs confidence instead of being free.

This module is pure Python + numpy (no model, no image code) so it is cheap to test.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------
# Character classes (Chinese plates, GA 36-2018)
# --------------------------------------------------------------------------------------------

#: Province (and municipality / autonomous region) abbreviations used as the first character.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
#: Letters used on plates: the Latin alphabet without I and O (they never occur).
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
#: First serial character of a small new-energy plate (D/F originally, A-K without I since 2021).
NEW_ENERGY_SMALL = "DFABCEGHJK"
#: Last character of a large new-energy plate.
NEW_ENERGY_LARGE = "DF"

CN_CLASSES: dict[str, str] = {
    "P": PROVINCES,
    "L": LETTERS,
    "D": DIGITS,
    "X": ALNUM,
    "E": NEW_ENERGY_SMALL,
    "F": NEW_ENERGY_LARGE,
}

#: Characters the recogniser may read on a plate that carry no information (the dot between
#: the issuing-office letter and the serial, rivets, the frame). They count as "blank".
SEPARATORS = frozenset("·•・.,，。:：;-—–_|[]()（）'\"`~ \u3000")

#: Observed character -> {intended character: credit}. When the recogniser reads the observed
#: character where it is not allowed, ``credit`` of its probability goes to the intended one.
#: Credits < 1 make a correction cost confidence.
CONFUSIONS: dict[str, dict[str, float]] = {
    "O": {"0": 0.9, "D": 0.5, "Q": 0.5},
    "o": {"0": 0.8, "D": 0.4, "Q": 0.4},
    "0": {"D": 0.6, "Q": 0.5},
    "D": {"0": 0.6},
    "Q": {"0": 0.5},
    "U": {"0": 0.3},
    "I": {"1": 0.9, "J": 0.3, "T": 0.3},
    "l": {"1": 0.8, "L": 0.4},
    "|": {"1": 0.6},
    "i": {"1": 0.6},
    "1": {"J": 0.3, "T": 0.3, "L": 0.2},
    "J": {"1": 0.3},
    "T": {"1": 0.3, "7": 0.4},
    "7": {"T": 0.4},
    "8": {"B": 0.6},
    "B": {"8": 0.6},
    "2": {"Z": 0.6},
    "Z": {"2": 0.6},
    "z": {"2": 0.5, "Z": 0.8},
    "5": {"S": 0.6},
    "S": {"5": 0.6},
    "s": {"5": 0.5, "S": 0.8},
    "6": {"G": 0.5},
    "G": {"6": 0.5, "C": 0.3},
    "C": {"G": 0.3},
    "4": {"A": 0.5},
    "A": {"4": 0.5},
    "9": {"g": 0.0},
    "g": {"9": 0.5},
    "q": {"9": 0.4},
    "b": {"6": 0.4},
}


def _nfkc_upper_single(ch: str) -> str | None:
    """Return the ASCII upper-case character ``ch`` stands for (fullwidth, lower case), if any."""
    norm = unicodedata.normalize("NFKC", ch)
    if len(norm) != 1:
        return None
    up = norm.upper()
    if len(up) != 1:
        return None
    return up


def confusion_credits(observed: str, allowed: str) -> dict[str, float]:
    """Credits from an ``observed`` character to characters in ``allowed`` (empty if allowed).

    Fullwidth forms map to their ASCII form with full credit, lower-case letters to upper case
    with credit 0.8, and the :data:`CONFUSIONS` table supplies the look-alikes.
    """
    if observed in allowed:
        return {}
    out: dict[str, float] = {}
    norm = unicodedata.normalize("NFKC", observed)
    if len(norm) == 1 and norm != observed and norm in allowed:
        out[norm] = 1.0
    up = _nfkc_upper_single(observed)
    if up is not None and up != norm and up in allowed:
        out[up] = max(out.get(up, 0.0), 0.8)
    for key in {observed, norm, up}:
        if key is None:
            continue
        for target, credit in CONFUSIONS.get(key, {}).items():
            if target in allowed and credit > 0:
                out[target] = max(out.get(target, 0.0), credit)
    return out


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\{(\w+)\}|\[([^\]]+)\]|(.)")


def parse_template(template: str, classes: Mapping[str, str]) -> tuple[str, ...]:
    """Parse ``"{P}{L}{X}{X}{X}{X}[港澳]"`` into slots (one string of allowed chars per slot).

    ``{NAME}`` is a class from ``classes``, ``[...]`` an inline set, anything else a literal.
    """
    slots: list[str] = []
    for m in _TOKEN.finditer(template):
        name, inline, literal = m.groups()
        if name is not None:
            if name not in classes:
                raise ValueError(f"unknown character class {{{name}}} in {template!r}")
            slots.append(classes[name])
        elif inline is not None:
            slots.append(inline)
        else:
            slots.append(literal)
    if not slots:
        raise ValueError("empty plate template")
    return tuple(slots)


@dataclass(frozen=True)
class PlateFormat:
    """One plate format: a name, its slots and the plate colours it comes in."""

    name: str
    country: str
    slots: tuple[str, ...]
    kind: str
    colors: tuple[str, ...] = ()
    #: log-prior added to the alignment score; rare formats get a small penalty
    prior: float = 0.0
    #: where the separator dot goes when the plate is displayed (0 = none)
    separator_at: int = 0

    @classmethod
    def from_template(
        cls,
        name: str,
        template: str,
        *,
        country: str,
        kind: str,
        colors: Iterable[str] = (),
        prior: float = 0.0,
        separator_at: int = 0,
        classes: Mapping[str, str] = CN_CLASSES,
    ) -> PlateFormat:
        return cls(
            name=name,
            country=country,
            slots=parse_template(template, classes),
            kind=kind,
            colors=tuple(colors),
            prior=prior,
            separator_at=separator_at,
        )

    def __len__(self) -> int:
        return len(self.slots)

    def matches(self, text: str) -> bool:
        return len(text) == len(self.slots) and all(
            c in s for c, s in zip(text, self.slots, strict=True)
        )

    def display(self, text: str) -> str:
        """``皖AYL375`` -> ``皖A·YL375`` (the way it is printed on the plate)."""
        if 0 < self.separator_at < len(text):
            return text[: self.separator_at] + "·" + text[self.separator_at :]
        return text


_F = PlateFormat.from_template
#: Chinese formats (GA 36-2018). Order matters only for ties.
CN_FORMATS: tuple[PlateFormat, ...] = (
    _F(
        "cn_standard",
        "{P}{L}{X}{X}{X}{X}{X}",
        country="CN",
        kind="standard",
        colors=("blue", "yellow", "black", "white"),
        separator_at=2,
    ),
    _F(
        "cn_new_energy_small",
        "{P}{L}{E}{X}{D}{D}{D}{D}",
        country="CN",
        kind="new_energy",
        colors=("green",),
        separator_at=2,
    ),
    _F(
        "cn_new_energy_large",
        "{P}{L}{D}{D}{D}{D}{D}{F}",
        country="CN",
        kind="new_energy",
        colors=("green", "yellow"),
        separator_at=2,
    ),
    _F(
        "cn_police",
        "{P}{L}{X}{X}{X}{X}警",
        country="CN",
        kind="police",
        colors=("white",),
        prior=-0.5,
        separator_at=2,
    ),
    _F(
        "cn_coach",
        "{P}{L}{X}{X}{X}{X}学",
        country="CN",
        kind="coach",
        colors=("yellow",),
        prior=-0.5,
        separator_at=2,
    ),
    _F(
        "cn_trailer",
        "{P}{L}{X}{X}{X}{X}挂",
        country="CN",
        kind="trailer",
        colors=("yellow",),
        prior=-0.5,
        separator_at=2,
    ),
    _F(
        "cn_consulate",
        "{P}{L}{X}{X}{X}{X}领",
        country="CN",
        kind="consulate",
        colors=("black",),
        prior=-0.5,
        separator_at=2,
    ),
    _F(
        "cn_hong_kong_macao",
        "粤Z{X}{X}{X}{X}[港澳]",
        country="CN",
        kind="hong_kong_macao",
        colors=("black",),
        prior=-0.5,
        separator_at=2,
    ),
    _F(
        "cn_embassy",
        "使{D}{D}{D}{D}{D}{D}",
        country="CN",
        kind="embassy",
        colors=("black",),
        prior=-0.5,
        separator_at=4,
    ),
    _F(
        "cn_emergency",
        "{P}{L}{X}{X}{X}{X}应急",
        country="CN",
        kind="emergency",
        colors=("white", "yellow", "blue"),
        prior=-0.5,
        separator_at=2,
    ),
)

#: Pattern table: country code -> formats. Plug in other countries with register_formats().
FORMAT_TABLE: dict[str, tuple[PlateFormat, ...]] = {"CN": CN_FORMATS}


def register_formats(country: str, formats: Sequence[PlateFormat]) -> None:
    """Add (or replace) the plate formats of a country in :data:`FORMAT_TABLE`."""
    if not formats:
        raise ValueError("at least one format is needed")
    FORMAT_TABLE[country.upper()] = tuple(formats)


def formats_for(countries: Iterable[str] = ("CN",)) -> tuple[PlateFormat, ...]:
    out: list[PlateFormat] = []
    for c in countries:
        if c.upper() not in FORMAT_TABLE:
            raise KeyError(f"no plate formats registered for {c!r}")
        out.extend(FORMAT_TABLE[c.upper()])
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Text-level validation and correction
# --------------------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Strip separators and whitespace; fullwidth forms to ASCII (``皖Ａ·１２`` -> ``皖A12``)."""
    out = []
    for ch in text:
        if ch in SEPARATORS or ch.isspace():
            continue
        norm = unicodedata.normalize("NFKC", ch)
        out.append(norm if len(norm) == 1 else ch)
    return "".join(out)


def validate(text: str, formats: Sequence[PlateFormat] = CN_FORMATS) -> PlateFormat | None:
    """The first format ``text`` matches exactly (after :func:`normalise_text`), or None."""
    t = normalise_text(text)
    for fmt in formats:
        if fmt.matches(t):
            return fmt
    return None


@dataclass(frozen=True)
class Correction:
    text: str
    format: PlateFormat
    #: product of the credits of the corrections made (1.0 = no correction)
    cost: float
    changed: tuple[int, ...]


def correct_text(text: str, formats: Sequence[PlateFormat] = CN_FORMATS) -> Correction | None:
    """Fix position-dependent OCR confusions in ``text`` so that it fits a format.

    Only characters the format does not allow at a position are changed, and only into a
    known look-alike (see :data:`CONFUSIONS`). Returns the best fit (highest product of
    credits, then format prior) or None when no format fits.
    """
    t = normalise_text(text)
    best: Correction | None = None
    best_key = (-math.inf, -math.inf)
    for fmt in formats:
        if len(t) != len(fmt.slots):
            continue
        chars: list[str] = []
        changed: list[int] = []
        cost = 1.0
        for i, (ch, allowed) in enumerate(zip(t, fmt.slots, strict=True)):
            if ch in allowed:
                chars.append(ch)
                continue
            credits = confusion_credits(ch, allowed)
            if not credits:
                break
            target, credit = max(credits.items(), key=lambda kv: (kv[1], -allowed.index(kv[0])))
            chars.append(target)
            changed.append(i)
            cost *= credit
        else:
            key = (cost, fmt.prior)
            if key > best_key:
                best_key = key
                best = Correction("".join(chars), fmt, cost, tuple(changed))
    return best


# --------------------------------------------------------------------------------------------
# Grammar-constrained CTC decoding
# --------------------------------------------------------------------------------------------


@dataclass
class Reading:
    """The best reading of one text-line crop under one format."""

    text: str
    format: PlateFormat
    #: per-slot confidence: probability of the chosen character (with confusion credits)
    char_confidences: list[float]
    #: frame span [start, end) of every slot in the recogniser's output
    spans: list[tuple[int, int]]
    #: Viterbi log-score (+ format prior)
    score: float
    #: highest probability that a frame aligned to "blank" inside the plate holds a real
    #: character the format could not explain (a hint of a wrong format / extra text)
    unexplained: float
    #: number of frames of the recogniser output
    frames: int
    #: whether a position rule changed the raw best character somewhere
    corrected: tuple[int, ...] = field(default_factory=tuple)

    @property
    def confidence(self) -> float:
        """Probability that every character is right, if errors are independent."""
        p = 1.0
        for c in self.char_confidences:
            p *= c
        return p * (1.0 - self.unexplained)


class CTCGrammarDecoder:
    """Aligns a CTC probability matrix (T x V, column 0 = blank) with plate formats.

    ``vocab[i]`` is the character of column ``i`` (``vocab[0]`` is the blank and ignored).
    The decoder is built once per recogniser vocabulary and format set; :meth:`decode` is
    vectorised over formats and costs well under a millisecond for a plate crop.
    """

    def __init__(self, vocab: Sequence[str], formats: Sequence[PlateFormat] = CN_FORMATS) -> None:
        if not formats:
            raise ValueError("no plate formats")
        self.vocab = list(vocab)
        self.formats = tuple(formats)
        index: dict[str, int] = {}
        for i, ch in enumerate(self.vocab):
            if i == 0:
                continue
            index.setdefault(ch, i)
        self._index = index
        self.blank_cols = np.array(
            [0] + [i for ch, i in index.items() if ch in SEPARATORS or ch.isspace()],
            dtype=np.int64,
        )
        # distinct slot classes
        classes: list[str] = []
        for fmt in self.formats:
            for s in fmt.slots:
                if s not in classes:
                    classes.append(s)
        self.classes = classes
        # per class: the columns read (allowed chars + confusable sources) and a weight
        # matrix mapping them onto the allowed chars
        self._cls_cols: list[np.ndarray] = []
        self._cls_w: list[np.ndarray] = []
        self._cls_chars: list[str] = []
        for allowed in classes:
            present = "".join(ch for ch in allowed if ch in index)
            if not present:
                raise ValueError(f"recogniser cannot output any of {allowed!r}")
            cols: list[int] = [index[ch] for ch in present]
            weights: list[list[float]] = [
                [1.0 if j == k else 0.0 for j in range(len(present))] for k in range(len(present))
            ]
            for obs, i in index.items():
                if obs in present:
                    continue
                credits = confusion_credits(obs, present)
                if not credits:
                    continue
                row = [credits.get(ch, 0.0) for ch in present]
                cols.append(i)
                weights.append(row)
            self._cls_cols.append(np.array(cols, dtype=np.int64))
            self._cls_w.append(np.array(weights, dtype=np.float32))
            self._cls_chars.append(present)
        n_f = len(self.formats)
        nmax = max(len(f.slots) for f in self.formats)
        cmax = max(len(c) for c in self._cls_chars)
        self._nmax, self._cmax = nmax, cmax
        self._slot_cls = np.zeros((n_f, nmax), dtype=np.int64)
        self._nslots = np.array([len(f.slots) for f in self.formats], dtype=np.int64)
        # code point of every (format, slot, char) state; -1 = padding
        self._cid = np.full((n_f, nmax, cmax), -1, dtype=np.int64)
        for fi, fmt in enumerate(self.formats):
            for k, s in enumerate(fmt.slots):
                c = classes.index(s)
                self._slot_cls[fi, k] = c
                chars = self._cls_chars[c]
                self._cid[fi, k, : len(chars)] = [ord(ch) for ch in chars]
        self._prior = np.array([f.prior for f in self.formats], dtype=np.float64)

    def decode(self, probs: np.ndarray) -> list[Reading]:
        """All formats' best readings for one crop, best first.

        Exact Viterbi over CTC paths restricted to each format: one state per (slot,
        allowed character) plus the blanks between slots; two adjacent slots need a blank
        between them when they hold the same character (CTC would merge them otherwise).
        """
        p = np.asarray(probs, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(self.vocab):
            raise ValueError("probability matrix must be T x len(vocab)")
        n_t = p.shape[0]
        eps = 1e-9
        neg = -np.inf
        blank = np.clip(p[:, self.blank_cols].sum(axis=1), eps, 1.0)
        q_cls = [
            np.clip(p[:, cols] @ w, 0.0, 1.0)
            for cols, w in zip(self._cls_cols, self._cls_w, strict=True)
        ]
        n_f, nmax, cmax = len(self.formats), self._nmax, self._cmax
        # emissions of the character states: (T, F, N, C)
        log_q = np.full((len(q_cls), n_t, cmax), neg, dtype=np.float64)
        for c, q in enumerate(q_cls):
            log_q[c, :, : q.shape[1]] = np.log(np.maximum(q, eps))
        emis = log_q[self._slot_cls]  # F, N, T, C
        emis = np.moveaxis(emis, 2, 0)  # T, F, N, C
        valid = self._cid >= 0
        slot_ok = np.arange(nmax)[None, :] < self._nslots[:, None]  # F, N
        emis = np.where((valid & slot_ok[:, :, None])[None], emis, neg)
        log_b = np.log(blank)
        blank_ok = np.arange(nmax + 1)[None, :] <= self._nslots[:, None]  # F, N+1
        # scores
        sb = np.full((n_f, nmax + 1), neg)  # blank before slot k (k = 0..N)
        sc = np.full((n_f, nmax, cmax), neg)  # slot k holding char j
        sb[:, 0] = log_b[0]
        sc[:, 0, :] = emis[0, :, 0, :]
        # back-pointers: blanks: -1 stay, j = from char j of the previous slot;
        # chars: -1 stay, -2 from the blank before, j = from char j of the previous slot
        bb = np.zeros((n_t, n_f, nmax + 1), dtype=np.int16)
        bc = np.zeros((n_t, n_f, nmax, cmax), dtype=np.int16)
        fi_grid, k_grid = np.meshgrid(np.arange(n_f), np.arange(nmax), indexing="ij")
        pad_col = np.full((n_f, 1), neg)
        zero_col = np.zeros((n_f, 1), dtype=np.int64)
        none_col = np.full((n_f, 1), -2, dtype=np.int64)
        for t in range(1, n_t):
            # best and second best character of every slot (for the no-blank skip)
            j1 = sc.argmax(axis=2)
            top1 = sc[fi_grid, k_grid, j1]
            masked = sc.copy()
            masked[fi_grid, k_grid, j1] = neg
            j2 = masked.argmax(axis=2)
            top2 = masked[fi_grid, k_grid, j2]
            cid1 = self._cid[fi_grid, k_grid, j1]
            # blanks: stay, or come from the previous slot's best character
            from_slot = np.concatenate([pad_col, top1], axis=1)
            choose_prev = from_slot > sb
            new_b = np.where(choose_prev, from_slot, sb) + log_b[t]
            new_b[~blank_ok] = neg
            bb[t] = np.where(choose_prev, np.concatenate([zero_col, j1], axis=1), -1)
            # characters: stay, come from the blank before, or skip in from the previous slot
            from_blank = sb[:, :nmax, None]
            prev_top1 = np.concatenate([pad_col, top1[:, :-1]], axis=1)[:, :, None]
            prev_top2 = np.concatenate([pad_col, top2[:, :-1]], axis=1)[:, :, None]
            prev_j1 = np.concatenate([zero_col, j1[:, :-1]], axis=1)[:, :, None]
            prev_j2 = np.concatenate([zero_col, j2[:, :-1]], axis=1)[:, :, None]
            prev_cid1 = np.concatenate([none_col, cid1[:, :-1]], axis=1)[:, :, None]
            same = self._cid == prev_cid1
            skip = np.where(same, prev_top2, prev_top1)
            skip_j = np.where(same, prev_j2, prev_j1)
            best = np.maximum(np.maximum(sc, from_blank), skip)
            bc[t] = np.where(best == sc, -1, np.where(best == from_blank, -2, skip_j))
            sb, sc = new_b, best + emis[t]
        frame_arg = p.argmax(axis=1)
        frame_max = p[np.arange(n_t), frame_arg]
        readings: list[Reading] = []
        for fi, fmt in enumerate(self.formats):
            n = int(self._nslots[fi])
            if n_t < n:
                continue
            end_b = float(sb[fi, n])
            jl = int(np.argmax(sc[fi, n - 1]))
            end_c = float(sc[fi, n - 1, jl])
            total = max(end_b, end_c)
            if not math.isfinite(total):
                continue
            # backtrack into a state per frame: ("b", k) or ("c", k, j)
            path: list[tuple[int, int]] = [(-1, 0)] * n_t  # (slot or -1 for blank, j or k)
            state: tuple[str, int, int] = ("b", n, 0) if end_b >= end_c else ("c", n - 1, jl)
            for t in range(n_t - 1, -1, -1):
                kind, k, j = state
                if kind == "b":
                    path[t] = (-1, k)
                    ptr = int(bb[t, fi, k])
                    if t > 0 and ptr >= 0:
                        state = ("c", k - 1, ptr)
                else:
                    path[t] = (k, j)
                    ptr = int(bc[t, fi, k, j])
                    if t > 0:
                        if ptr == -2:
                            state = ("b", k, 0)
                        elif ptr >= 0:
                            state = ("c", k - 1, ptr)
            readings.append(
                self._reading(fi, fmt, path, total, p, q_cls, blank, frame_arg, frame_max)
            )
        readings.sort(key=lambda r: r.score, reverse=True)
        return readings

    def _reading(
        self,
        fi: int,
        fmt: PlateFormat,
        path: list[tuple[int, int]],
        total: float,
        p: np.ndarray,
        q_cls: list[np.ndarray],
        blank: np.ndarray,
        frame_arg: np.ndarray,
        frame_max: np.ndarray,
    ) -> Reading:
        n = len(fmt.slots)
        text: list[str] = []
        confs: list[float] = []
        spans: list[tuple[int, int]] = []
        corrected: list[int] = []
        slots_of_t = np.array([k for k, _ in path])
        for k in range(n):
            frames = np.nonzero(slots_of_t == k)[0]
            j = path[int(frames[0])][1]
            c = int(self._slot_cls[fi, k])
            ch = self._cls_chars[c][j]
            q = q_cls[c][frames, j]
            text.append(ch)
            confs.append(float(q.max()))
            spans.append((int(frames[0]), int(frames[-1]) + 1))
            # did a position rule beat the recogniser's own best character here?
            tb = int(frames[int(frame_max[frames].argmax())])
            raw_best = self.vocab[int(frame_arg[tb])]
            if raw_best != ch and float(frame_max[tb]) > float(p[frames, self._index[ch]].max()):
                corrected.append(k)
        first = int(np.nonzero(slots_of_t == 0)[0][0])
        last = int(np.nonzero(slots_of_t == n - 1)[0][-1])
        inner = [t for t in range(first, last + 1) if slots_of_t[t] < 0]
        unexplained = float((1.0 - blank[inner]).max()) if inner else 0.0
        return Reading(
            text="".join(text),
            format=fmt,
            char_confidences=confs,
            spans=spans,
            score=total + float(self._prior[fi]),
            unexplained=max(0.0, unexplained),
            frames=int(p.shape[0]),
            corrected=tuple(corrected),
        )
