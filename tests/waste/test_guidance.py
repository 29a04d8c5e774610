"""Sorting guidance on the real Shanghai item list (../shared/data/waste)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from linli.waste import guidance as g
from linli.waste.cli import app


@pytest.fixture(scope="module")
def list_path(shared_data: Path) -> Path:
    path = shared_data / "waste" / "garbage_items.csv"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def items(list_path: Path) -> dict[str, int]:
    return g.load_item_list(list_path)


@pytest.fixture(scope="module")
def full_guide(items: dict[str, int]) -> g.WasteGuide:
    """Shipped model + the real list (what `linli waste guide` uses)."""
    return g.WasteGuide(g.LinearModel.load(), items)


# --- codes and the list -------------------------------------------------------------------


def test_summed_codes_map_to_one_cautious_answer() -> None:
    assert g.categories_of_code(2) == ("hazardous",)
    assert g.categories_of_code(3) == ("hazardous", "recyclable")
    assert g.categories_of_code(12) == ("residual", "kitchen")
    assert g.primary_category(5) == "recyclable"
    assert g.primary_category(16 + 8) == "bulky"
    for bad in (0, -1, 32, 64):
        with pytest.raises(g.GuidanceDataError) as err:
            g.categories_of_code(bad)
        assert isinstance(err.value, ValueError)
        assert err.value.code == "bad_code"


def test_combined_code_answer_names_the_alternatives() -> None:
    guide = g.WasteGuide(g.LinearModel.load(), {"测试旧物": 1 | 2})
    answer = guide.guide("测试旧物")
    assert answer.source == "list"
    assert answer.category == "hazardous"
    assert answer.alternatives == ("recyclable",)
    assert answer.confidence == g.COMBINED_CODE_CONFIDENCE


def test_list_loads_every_row(items: dict[str, int], list_path: Path) -> None:
    rows = list_path.read_text(encoding="utf-8").strip().splitlines()[1:]
    # a few names differ only by case/width and are merged
    assert len(rows) - 20 <= len(items) <= len(rows)
    assert {c for code in items.values() for c in g.categories_of_code(code)} == set(g.CATEGORIES)


def test_items_on_the_list_are_answered_from_it(
    full_guide: g.WasteGuide, items: dict[str, int]
) -> None:
    for name in sorted(items)[::40]:
        answer = full_guide.guide(name)
        assert answer.source == "list", name
        assert answer.category == g.primary_category(items[name]), name
        assert answer.confidence == 1.0
        assert not answer.ask_staff


def test_normalisation_width_case_traditional_and_question(
    full_guide: g.WasteGuide, items: dict[str, int]
) -> None:
    assert "电池" in items and "cpu" in items
    for query in ("ＣＰＵ", " Cpu ", "電池", "电池属于什么垃圾？", "电池。"):
        answer = full_guide.guide(query)
        assert answer.source == "list", query
        assert answer.item == query
    assert full_guide.guide("電池").category == "hazardous"


# --- items that are not on the list --------------------------------------------------------

UNSEEN = {
    # compounds written for this test: none of them is on the list
    "过期的感冒胶囊": "hazardous",
    "废旧锂电池组": "hazardous",
    "吃剩的红烧肉": "kitchen",
    "烂掉的苹果核": "kitchen",
    "变质的香蕉皮": "kitchen",
    "碎掉的陶瓷花瓶": "residual",
    "用过的湿纸巾": "residual",
    "空的可乐易拉罐": "recyclable",
    "旧的纯棉衬衫": "recyclable",
    "坏掉的实木衣柜": "bulky",
}


def test_unseen_compounds_follow_their_head_noun(full_guide: g.WasteGuide) -> None:
    right = 0
    for query, expected in UNSEEN.items():
        assert g.normalize_item(query) not in full_guide.items, query
        answer = full_guide.guide(query)
        assert answer.source == "inferred"
        assert answer.explanation_en and answer.explanation_zh
        right += answer.category == expected
    assert right >= len(UNSEEN) - 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("battery", "hazardous"),
        ("Batteries", "hazardous"),
        ("banana peel", "kitchen"),
        ("newspaper", "recyclable"),
        ("glass bottle", "recyclable"),
        ("expired medicine", "hazardous"),
        ("fluorescent tube", "hazardous"),
        ("leftover rice", "kitchen"),
        ("used tissues", "residual"),
        ("cigarette butt", "residual"),
        ("aluminium can", "recyclable"),
        ("old sofa", "bulky"),
    ],
)
def test_english_queries(full_guide: g.WasteGuide, query: str, expected: str) -> None:
    answer = full_guide.guide(query)
    assert answer.category == expected, answer
    assert answer.matched and g._CJK.search(answer.matched)
    assert "Understood as" in answer.explanation_en


def test_unknown_words_ask_staff(full_guide: g.WasteGuide) -> None:
    answer = full_guide.guide("qwxzkj flurbo")
    assert answer.ask_staff
    assert answer.confidence < g.ASK_STAFF_BELOW
    assert "ask the staff" in answer.explanation_en
    assert "咨询" in answer.explanation_zh
    # nothing understood and nothing alike on the list: the official fallback
    assert answer.category == "residual" and answer.confidence == 0.0


def test_a_brand_name_nobody_translated_is_judged_from_the_list_names_like_it(
    full_guide: g.WasteGuide,
) -> None:
    """No glossary word in "macbook", but the list has ipad, kindle and xbox: the answer is
    recyclable, said with the ask-staff hint (never confident without a known word)."""
    answer = full_guide.guide("macbook")
    assert answer.source == "inferred" and answer.category == "recyclable"
    assert answer.ask_staff and 0 < answer.confidence < g.ASK_STAFF_BELOW
    assert "not a word" in answer.explanation_en and "已知词语" in answer.explanation_zh


def test_an_inferred_answer_names_the_most_similar_listed_items(
    full_guide: g.WasteGuide, items: dict[str, int]
) -> None:
    query = "过期的感冒胶囊"
    assert query not in items
    answer = full_guide.guide(query)
    assert answer.source == "inferred" and answer.category == "hazardous"
    nb = full_guide.neighbours()
    assert nb is not None
    _, nearest = nb.vote([query])
    shown = [nb.names[j] for j in nearest[0][: g.SHOWN_NEIGHBOURS]]
    assert len(shown) == g.SHOWN_NEIGHBOURS and all(n in items for n in shown)
    assert any("胶囊" in n for n in shown), shown
    for name in shown:
        assert name in answer.explanation_en and name in answer.explanation_zh
    assert "most similar listed items" in answer.explanation_en
    assert "最相似的清单物品" in answer.explanation_zh


def test_the_neighbour_vote_goes_to_the_nearest_listed_names() -> None:
    """Four residual boxes and three recyclable biscuit tins: a big biscuit tin's nearest names
    are the tins, whose similarity outweighs the more numerous, less similar boxes."""
    items = {
        "饼干盒": 1, "铁饼干盒": 1, "旧饼干盒": 1, "塑料盒": 8, "餐盒": 8, "药盒": 8, "外卖盒": 8,
        "报纸": 1, "纸箱": 1, "电池": 2, "药片": 2, "香蕉皮": 4, "剩饭": 4, "纸巾": 8,
    }  # fmt: skip
    model = g.train_model(items, calibrate=False)
    guide = g.WasteGuide(model, items)
    nb = guide.neighbours()
    assert nb is not None
    vote, nearest = nb.vote(["大饼干盒"])
    assert model.classes[int(np.argmax(vote[0]))] == "recyclable"
    assert {nb.names[j] for j in nearest[0][:3]} == {"饼干盒", "铁饼干盒", "旧饼干盒"}
    # without a list there is nothing to vote with
    assert g.WasteGuide(model, {}).neighbours() is None
    assert g.WasteGuide(model, items, neighbours=False).neighbours() is None


def test_the_lists_embeddings_are_kept_on_disk_for_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINLI_CACHE_DIR", str(tmp_path / "cache"))
    items = {"电池": 2, "旧报纸": 1, "苹果皮": 4, "纸巾": 8, "沙发": 16, "药片": 2}
    model = g.train_model(items, calibrate=False)
    first = g.WasteGuide(model, items, cache_vectors=True).neighbours()
    assert first is not None
    files = list((tmp_path / "cache" / "waste").glob("vectors-*.npz"))
    assert len(files) == 1

    def no_embedding(texts: object) -> object:
        raise AssertionError("the list should not be embedded again")

    real_gloss = g.gloss_vectors
    monkeypatch.setattr(g, "gloss_vectors", no_embedding)
    second = g.WasteGuide(model, items, cache_vectors=True).neighbours()  # loaded from disk
    assert second is not None and first.gloss is not None and second.gloss is not None
    np.testing.assert_allclose(second.gloss, first.gloss, atol=1e-6)
    # a damaged file is computed again and replaced
    monkeypatch.setattr(g, "gloss_vectors", real_gloss)
    files[0].write_bytes(b"not an npz file")
    third = g.WasteGuide(model, items, cache_vectors=True).neighbours()
    assert third is not None and third.gloss is not None
    np.testing.assert_allclose(third.gloss, first.gloss, atol=1e-6)
    with np.load(files[0]) as again:
        assert again["gloss"].shape == (len(items), g.GLOSS_DIM)


def test_heldout_accuracy_floor(items: dict[str, int]) -> None:
    """Train on a stratified 80% of the list and judge the 20% it never saw."""
    ev = g.holdout_evaluation(items, test_fraction=0.2, seed=0)
    assert ev.n >= 600
    assert ev.accuracy >= 0.80, ev.to_dict()
    for category in ("recyclable", "kitchen", "residual", "hazardous"):
        correct, n = ev.per_category[category]
        assert correct / n >= 0.70, (category, ev.to_dict())
    # answers given without the "ask staff" hint must be more reliable than the rest
    assert ev.confident_accuracy > ev.accuracy


def test_confidence_is_calibrated_enough(items: dict[str, int]) -> None:
    names = sorted(items)
    test = set(names[::5])
    guide = g.WasteGuide.from_items({n: c for n, c in items.items() if n not in test})
    conf, ok = [], []
    for name in sorted(test):
        answer = guide.guide(name)
        conf.append(answer.confidence)
        ok.append(answer.category in g.categories_of_code(items[name]))
    conf_a, ok_a = np.array(conf), np.array(ok)
    # mean confidence close to the accuracy, and high confidence means high accuracy
    assert abs(conf_a.mean() - ok_a.mean()) < 0.08
    assert ok_a[conf_a >= 0.9].mean() >= 0.9


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "empty_query"),
        ("   \t\n", "empty_query"),
        ("电" * 10_000, "query_too_long"),
        ("a" * (g.MAX_QUERY_CHARS + 1), "query_too_long"),
        ("!!!???", "no_letters"),
        ("12345", "no_letters"),
        (None, "not_text"),
    ],
)
def test_bad_input_raises_value_error_with_code(
    full_guide: g.WasteGuide, query: object, code: str
) -> None:
    with pytest.raises(g.GuidanceInputError) as err:
        full_guide.guide(query)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)
    assert err.value.code == code
    assert code in g.REASONS


def test_malformed_list_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,kind\n电池,2\n", encoding="utf-8")
    with pytest.raises(g.GuidanceDataError) as err:
        g.load_item_list(bad)
    assert err.value.code == "bad_list"
    bad.write_text("item,category_code\n电池,x\n", encoding="utf-8")
    with pytest.raises(g.GuidanceDataError) as err:
        g.load_item_list(bad)
    assert err.value.code == "bad_code"


# --- model storage ------------------------------------------------------------------------


def test_model_json_round_trip(items: dict[str, int], tmp_path: Path) -> None:
    subset = {n: c for n, c in sorted(items.items())[::4]}
    model = g.train_model(subset, calibrate=False)
    path = tmp_path / "model.json"
    model.save(path)
    loaded = g.LinearModel.load(path)
    probe = ["塑料瓶盖", "香蕉皮", "过期药品", "旧沙发", "脏纸巾"]
    assert np.allclose(model.predict_proba(probe), loaded.predict_proba(probe), atol=2e-3)
    with pytest.raises(g.GuidanceDataError):
        g.LinearModel.from_json({"format": "other"})


def test_shipped_model_fits_the_list(items: dict[str, int]) -> None:
    model = g.LinearModel.load()
    assert model.classes == g.CATEGORIES
    # rebuild with `linli waste build-model` after editing the lexicon
    assert model.meta["lexicon_sha256"] == g.lexicon_fingerprint()
    names = sorted(items)
    pred = model.predict_proba(names).argmax(axis=1)
    right = sum(
        model.classes[p] in g.categories_of_code(items[n]) for n, p in zip(names, pred, strict=True)
    )
    assert right / len(names) >= 0.9


# --- CLI -----------------------------------------------------------------------------------


def test_cli_prints_one_json_object_per_item(shared_data: Path) -> None:
    result = CliRunner().invoke(app, ["guide", "电池", "banana peel", "一只旧拖鞋"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [d["item"] for d in lines] == ["电池", "banana peel", "一只旧拖鞋"]
    for d in lines:
        assert d["category"] in g.CATEGORIES
        assert 0.0 <= d["confidence"] <= 1.0
        assert d["source"] in ("list", "inferred")
        assert d["explanation"]["en"] and d["explanation"]["zh"]
    assert lines[0]["source"] == "list" and lines[0]["category"] == "hazardous"
    assert lines[1]["category"] == "kitchen"


def test_cli_bad_items_are_reported_not_crashing(shared_data: Path) -> None:
    result = CliRunner().invoke(app, ["guide", "", "电池", "x" * 10_000])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [d.get("error") for d in lines] == ["empty_query", None, "query_too_long"]
    assert lines[1]["category"] == "hazardous"
    assert len(lines[2]["item"]) < 100


def test_cli_with_own_list(tmp_path: Path) -> None:
    own = tmp_path / "list.csv"
    rows = [
        "item,category_code",
        "电池,2",
        "旧报纸,1",
        "苹果皮,4",
        "纸巾,8",
        "沙发,16",
        "药片,2",
        "易拉罐,1",
        "剩饭,4",
        "烟头,8",
        "衣柜,16",
    ]
    own.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["guide", "--list", str(own), "旧报纸", "香蕉皮"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.strip().splitlines())
    assert first["source"] == "list" and first["category"] == "recyclable"
    assert second["source"] == "inferred"


def test_a_community_list_is_trained_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list the shipped model was not trained on: the first process trains on it and keeps
    the model in the cache directory; the next process loads it instead of training again,
    and a damaged cache file is replaced, not trusted."""
    own = tmp_path / "list.csv"
    rows = ["电池,2", "旧报纸,1", "苹果皮,4", "纸巾,8", "沙发,16", "药片,2", "易拉罐,1", "剩饭,4"]
    own.write_text("item,category_code\n" + "\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("LINLI_WASTE_ITEMS", str(own))
    monkeypatch.setenv("LINLI_CACHE_DIR", str(tmp_path / "cache"))
    trained: list[int] = []
    real_train = g.train_model

    def counting_train(items: dict[str, int], **kw: object) -> g.LinearModel:
        trained.append(len(items))
        return real_train(items, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(g, "train_model", counting_train)
    g._default_guide.cache_clear()
    try:
        first = g.default_guide()
        assert trained == [8] and first.model.meta["list_sha256"] == g.file_sha256(own)
        cached = list((tmp_path / "cache" / "waste").glob("model-*.json"))
        assert len(cached) == 1
        g._default_guide.cache_clear()  # a new process
        second = g.default_guide()
        assert trained == [8]  # loaded, not trained
        assert second.guide("香蕉皮").category == first.guide("香蕉皮").category
        cached[0].write_text("{not json", encoding="utf-8")
        g._default_guide.cache_clear()
        g.default_guide()
        assert trained == [8, 8]
        assert json.loads(cached[0].read_text(encoding="utf-8"))["format"] == g.MODEL_FORMAT
    finally:
        g._default_guide.cache_clear()
