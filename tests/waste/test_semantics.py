"""Dictionary glosses and their embeddings (linli.waste.semantics), with the real packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from linli.waste import guidance as g
from linli.waste import semantics as sem

# 32 everyday names, 8 per bin
SMALL_LIST = {
    "苹果": 4, "香蕉": 4, "橘子": 4, "葡萄": 4, "牛肉": 4, "猪肉": 4, "鸡蛋": 4, "米饭": 4,
    "报纸": 1, "纸箱": 1, "衬衫": 1, "裤子": 1, "铁锅": 1, "易拉罐": 1, "玻璃瓶": 1, "书本": 1,
    "电池": 2, "药片": 2, "胶囊": 2, "油漆": 2, "灯管": 2, "温度计": 2, "农药": 2, "指甲油": 2,
    "纸巾": 8, "烟头": 8, "陶瓷": 8, "尿布": 8, "灰尘": 8, "橡皮泥": 8, "创可贴": 8, "毛发": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> sem.GlossEmbedder:
    return sem.default_embedder()


def test_glossary_segments_by_headwords_and_glosses_in_english(embedder: sem.GlossEmbedder) -> None:
    glossary = embedder.glossary
    assert glossary.segment("大闸蟹壳")[-1] == "壳"  # the head of the compound comes last
    whole, head = glossary.gloss("鲍鱼")
    assert "abalone" in whole and "abalone" in head
    whole, head = glossary.gloss("过期的感冒胶囊")
    assert "capsule" in head and "cold" in whole
    # an English name is its own gloss; characters no headword covers give no gloss
    assert glossary.gloss("banana peel") == ("banana peel", "peel")
    assert glossary.gloss("\u9fa5\u9fa5") == ("", "")


def test_glossary_file_is_read_strictly(tmp_path: Path) -> None:
    path = tmp_path / "cedict.u8"
    path.write_text(
        "# comment\n"
        "牡蠣 牡蛎 [mu3 li4] /oyster/CL:隻|只[zhi1]/\n"
        "not a dictionary line\n"
        "紙 纸 [zhi3] /paper/variant of 帋[zhi3]/\n",
        encoding="utf-8",
    )
    glossary = sem.Glossary.load(path)
    assert glossary.definitions == {"牡蛎": ["oyster"], "纸": ["paper"]}
    with pytest.raises(sem.SemanticsUnavailable):
        sem.Glossary.load(tmp_path / "missing.u8")


def test_embeddings_are_unit_vectors_independent_of_batching(embedder: sem.GlossEmbedder) -> None:
    texts = ["abalone", "sea urchin", "a cardboard box for shoes", "battery"]
    together = embedder.model.encode(texts)
    alone = np.vstack([embedder.model.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_embeddings_carry_meaning(embedder: sem.GlossEmbedder) -> None:
    e = embedder.model.encode(["abalone", "oyster", "newspaper", "wool sweater", "clothes"])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1  # seafood is near seafood, not near paper
    assert e[3] @ e[4] > e[3] @ e[2] + 0.1
    # names that share no character are close through their glosses: 鲍鱼 (abalone), 牡蛎
    v = embedder.vectors(["鲍鱼", "牡蛎", "报纸"])
    assert v.shape == (3, sem.GLOSS_DIM)
    assert v[0] @ v[1] > v[0] @ v[2]
    # no gloss at all: a zero vector, not an arbitrary one
    assert not embedder.vectors(["\u9fa5"]).any()


def test_glosses_let_a_small_model_judge_names_it_shares_no_character_with() -> None:
    train = dict(SMALL_LIST)
    unseen = {"榴莲": "kitchen", "海参": "kitchen", "羊排": "kitchen", "夹克": "recyclable",
              "盘尼西林": "hazardous"}  # fmt: skip
    for name in unseen:  # none of these shares a character with the training names
        assert not set(name) & set("".join(train)), name
    # with only 32 examples the glosses need more weight than beside 2,500 (GLOSS_SCALE)
    # (the glosses alone: no word vectors, no neighbour vote)
    model = g.train_model(train, calibrate=False, gloss_scale=2.0, word_scale=0.0)
    assert model.n_features == model.n_sparse + sem.GLOSS_DIM
    with_glosses = g.WasteGuide(model, train, neighbours=False)
    assert {n: with_glosses.guide(n).category for n in unseen} == unseen
    plain = g.train_model(train, calibrate=False, gloss_scale=0.0, word_scale=0.0)
    without = g.WasteGuide(plain, train, neighbours=False)
    assert sum(without.guide(n).category == c for n, c in unseen.items()) <= 1


def test_model_json_keeps_the_gloss_block(tmp_path: Path) -> None:
    train = {"苹果": 4, "香蕉": 4, "报纸": 1, "纸箱": 1, "电池": 2, "药片": 2, "纸巾": 8, "烟头": 8}
    model = g.train_model(train, calibrate=False)
    path = tmp_path / "model.json"
    model.save(path)
    loaded = g.LinearModel.load(path)
    assert loaded.gloss_scale == model.gloss_scale
    names = ["芒果", "旧衬衫", "过期药"]
    np.testing.assert_allclose(loaded.predict_proba(names), model.predict_proba(names), atol=1e-3)
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["gloss"]["coef"] = raw["gloss"]["coef"][:2]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(g.GuidanceDataError):
        g.LinearModel.load(path)
    # a model without the blocks needs no embeddings at all
    plain = g.train_model(train, calibrate=False, gloss_scale=0.0, word_scale=0.0)
    assert plain.n_features == plain.n_sparse
    assert "gloss" not in plain.to_json() and "words" not in plain.to_json()


def test_shipped_model_uses_glosses() -> None:
    model = g.LinearModel.load()
    assert model.gloss_scale > 0 and model.meta.get("gloss") is True


@pytest.fixture(scope="module")
def word_vectors() -> sem.WordVectors:
    return sem.default_word_vectors()


def test_word_vectors_segment_on_their_vocabulary_and_know_what_things_are(
    word_vectors: sem.WordVectors,
) -> None:
    assert word_vectors.segment("过期的感冒胶囊") == ["过期", "的", "感冒", "胶囊"]
    assert len(word_vectors.index) > 100_000 and word_vectors.dim == sem.WORD_DIM
    v = word_vectors.vectors(["鲍鱼", "海参", "报纸", "夹克", "外套"])
    assert v.shape == (5, 2 * sem.WORD_DIM)
    head = v[:, : sem.WORD_DIM]
    np.testing.assert_allclose(np.linalg.norm(head, axis=1), 1.0, atol=1e-5)
    assert head[0] @ head[1] > head[0] @ head[2] + 0.2  # abalone ~ sea cucumber, not newspaper
    assert head[3] @ head[4] > head[3] @ head[2] + 0.2  # jacket ~ coat
    # head word and mean differ for a compound: 旧报纸 has the head 报纸
    compound = word_vectors.vectors(["旧报纸"])[0]
    np.testing.assert_allclose(compound[: sem.WORD_DIM], head[2], atol=1e-6)
    # nothing known: zeros, not an arbitrary vector
    assert not word_vectors.vectors(["\u9fa5\u9fa5"]).any()


def test_word_vectors_let_a_small_model_judge_names_it_shares_no_character_with() -> None:
    train = dict(SMALL_LIST)
    unseen = {"榴莲": "kitchen", "海参": "kitchen", "夹克": "recyclable", "荔枝": "kitchen"}
    for name in unseen:
        assert not set(name) & set("".join(train)), name
    # the word vectors alone (no glosses, no neighbour vote), weighted for 32 examples
    model = g.train_model(train, calibrate=False, gloss_scale=0.0, word_scale=2.0)
    assert model.n_features == model.n_sparse + sem.WORD_DIM
    guide = g.WasteGuide(model, train, neighbours=False)
    assert {n: guide.guide(n).category for n in unseen} == unseen


def test_model_json_keeps_the_word_vector_block(tmp_path: Path) -> None:
    train = {"苹果": 4, "香蕉": 4, "报纸": 1, "纸箱": 1, "电池": 2, "药片": 2, "纸巾": 8, "烟头": 8}
    model = g.train_model(train, calibrate=False, gloss_scale=0.0)
    assert model.word_scale == g.WORD_SCALE and model.n_features == model.n_sparse + sem.WORD_DIM
    path = tmp_path / "model.json"
    model.save(path)
    loaded = g.LinearModel.load(path)
    assert (loaded.gloss_scale, loaded.word_scale) == (0.0, g.WORD_SCALE)
    names = ["芒果", "旧衬衫", "过期药"]
    np.testing.assert_allclose(loaded.predict_proba(names), model.predict_proba(names), atol=1e-3)
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["words"]["coef"] = [row[:50] for row in raw["words"]["coef"]]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(g.GuidanceDataError):
        g.LinearModel.load(path)


def test_shipped_model_uses_word_vectors() -> None:
    model = g.LinearModel.load()
    assert model.word_scale > 0 and model.meta.get("word_vectors") is True
