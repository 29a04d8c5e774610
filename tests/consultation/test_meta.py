"""Meta statements (statements that describe the participant): the text rules in English and
Chinese, the seeding condition on experience, and what is flagged on real Pol.is conversations."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from linli.consultation.meta import (
    CATEGORY_REASONS,
    describe_participant,
    detect_meta,
    parse_ids,
)
from linli.consultation.polis import load_polis_export

# -- the text rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I am 67 years old.", "age"),
        ("I am over 60", "age"),
        ("I'm in my thirties", "age"),
        ("I identify as a woman", "gender"),
        ("I am non-binary", "gender"),
        ("I am Māori", "ethnicity"),
        ("My religion is Buddhist", "ethnicity"),
        ("Mandarin is my mother tongue", "language"),
        ("I speak Cantonese at home", "language"),
        ("I live in building 3", "residence"),
        ("I was born in Shanghai", "residence"),
        ("I am a resident of this estate", "residence"),
        ("My highest qualification is a university degree", "education"),
        ("I am a student", "education"),
        ("I work in retail", "occupation"),
        ("I'm a retired nurse", "occupation"),
        ("I have two children", "household"),
        ("Our family lives alone? no: I live alone", None),  # a second sentence: not a profile
        ("I rent my flat", "tenure"),
        ("I am a homeowner", "tenure"),
        ("I use a wheelchair", "health"),
        ("Are you over 65?", "age"),
        ("我今年65岁", "age"),
        ("我的年龄在60岁以上", "age"),
        ("我是80后", "age"),
        ("我是男性", "gender"),
        ("我是回族", "ethnicity"),
        ("我的母语是粤语", "language"),
        ("我住在3号楼", "residence"),
        ("我是本小区居民", "residence"),
        ("我是大学本科毕业", "education"),
        ("我是退休教师", "occupation"),
        ("我是計程車司機。", "occupation"),  # traditional characters
        ("我家有两个孩子", "household"),
        ("我是业主", "tenure"),
        ("我是租户", "tenure"),
        ("我是残疾人", "health"),
        ("你今年多大年纪？", "age"),
    ],
)
def test_self_descriptions_are_recognised(text: str, category: str | None) -> None:
    hit = describe_participant(text)
    assert (hit[0] if hit else None) == category, hit


@pytest.mark.parametrize(
    "text",
    [
        # opinions that start like a self-description
        "I am in favour of STV",
        "I am worried about security issues with online voting.",
        "I am opposed to more parking in the courtyard",
        "I am pleased with the current electoral system.",
        "I am prepared to pay a higher tax rate to improve our public services",
        "I am more concerned with my province's interests than my specific district's.",
        "I am against closing the youth centre",
        "I am a strong believer in proportional representation",
        "I am tired of young people being stopped and searched",
        "I am sure the police can do better",
        "I am more interested by an individual's beliefs than by their identity.",
        "I think mandatory voting should be implemented.",
        "I support a form of proportional representation",
        "I would like ballots to be more expressive",
        "I want my vote to count, because it doesn't now.",
        "I live in fear of burglaries",
        "I am a teacher and I think schools need more counsellors",
        "I live in a rural area. Buses there are too rare.",
        # about others, not about oneself
        "Young people aged 15 to 19 should be heard",
        "Households with an income above $150,000 should pay more tax",
        "Landlords should register every tenant",
        "Owners should pay for the new lift",
        # Chinese opinions
        "我觉得应该增加停车位",
        "我觉得 Uber 应该向营业地的政府纳税。",
        "我覺得UberX已與現有國內運輸業產生不公平競爭的情形。",
        "我认为物业费太高",
        "我支持垃圾分类",
        "我赞成加装电梯",
        "我反对在楼下开餐馆",
        "我希望小区多装路灯",
        "我担心老年人过马路不安全",
        "我想要更多的绿地",
        "我是业主，我觉得物业应该公开账目",
        "我是老人，希望有电梯",
        "我们小区的停车位太少",
        "",
    ],
)
def test_opinions_are_not_meta(text: str) -> None:
    assert describe_participant(text) is None


@dataclass(frozen=True)
class _C:
    comment_id: int
    text: str
    author_id: int | None = 0
    is_seed: bool | None = None


def test_experience_counts_only_when_the_moderator_seeded_it() -> None:
    comments = [
        _C(0, "What should the estate do about parking?", author_id=0),
        _C(1, "I have used the shared bikes", author_id=0),  # moderator (first statement's author)
        _C(2, "I have used the shared bikes", author_id=17),  # a participant arguing
        _C(3, "I am 70 years old", author_id=17),  # demographic: whoever wrote it
        _C(4, "我有用过共享单车", author_id=0),
        _C(5, "我曾经投诉过物业", author_id=23),
    ]
    found = {f.comment_id: f.category for f in detect_meta(comments)}
    assert found == {1: "experience", 3: "age", 4: "experience"}
    # an is-seed column, when the export has one, says who seeded
    seeded = [_C(0, "Hello", author_id=5), _C(1, "I own a car", author_id=9, is_seed=True)]
    assert [f.comment_id for f in detect_meta(seeded)] == [1]
    unseeded = [_C(0, "Hello", author_id=5), _C(1, "I own a car", author_id=5, is_seed=False)]
    assert detect_meta(unseeded) == []


@pytest.mark.parametrize(
    "text",
    [
        # a participant telling what happened to them or what they saw: part of the debate
        "I have waited over 2 years for a reply from the council",
        "I was stopped by a man in uniform",
        "I was helped by a nurse after the accident",
        "I had a black officer help me",
        "I saw kids being searched outside the station",
        "I rarely see police in my neighbourhood",
        "I called a doctor",
        "我昨天看到一个学生被警察拦下",
        "我在小区门口遇到过保安",
        "我带孩子去公园",
    ],
)
def test_what_a_participant_experienced_is_not_meta(text: str) -> None:
    statements = [_C(0, "What would make the estate safer?", author_id=0), _C(1, text, 42)]
    assert detect_meta(statements) == []


def test_a_finding_explains_itself() -> None:
    (f,) = detect_meta([_C(3, "My household income is above $50,000 per year")])
    assert (f.category, f.matched) == ("household", "household")
    assert f.label == CATEGORY_REASONS["household"]
    assert f.to_dict() == {
        "id": 3,
        "category": "household",
        "matched": "household",
        "text": "My household income is above $50,000 per year",
    }


def test_parse_ids() -> None:
    assert parse_ids("1-3, 7,，9") == {1, 2, 3, 7, 9}
    assert parse_ids("") == set()
    for bad in ("x", "3-1", "1-", "-2"):
        with pytest.raises(ValueError):
            parse_ids(bad)


# -- real Pol.is conversations ----------------------------------------------------------------

# What the detector flags on each conversation of ../shared/data/polis (statements moderated out
# are left out anyway and not listed). Every one of them describes the participant.
EXPECTED = {
    "15-per-hour-seattle": set(),
    # I voted to Leave / Remain; I consider myself working / middle class; I can speak a
    # European language
    "brexit-consensus": {0, 1, 10, 11, 15},
    # I always vote (seeded); I live in an urban area; I am eligible to vote in Canada; I
    # consider myself as a person with a disability; I am under 40; I identify as female
    "canadian-electoral-reform": {5, 77, 89, 113, 124, 154},
    # age brackets, gender, first language, ethnicity, an encounter with the police
    "london.youth.policing": {1, *range(4, 15)},
    # age, where one lives, qualification, property, business, employment, household income
    "scoop-hivemind.taxes": set(range(15)),
    # 我有用過 Uber 叫車 (seeded); 我有小型車駕駛執照 (seeded); 我有職業駕照
    "vtaiwan.uberx": {0, 14, 15},
}


def _conversation(shared_data: Path, name: str) -> Path:
    directory = shared_data / "polis" / name
    if not (directory / "comments.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Pol.is conversation missing in CI: {directory}")
        pytest.skip(f"Pol.is conversation not in shared data: {directory}")
    return directory


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_statements_flagged_on_real_conversations(shared_data: Path, name: str) -> None:
    conv = load_polis_export(_conversation(shared_data, name), with_participants=False)
    assert not conv.has_meta_column
    found = conv.detected_meta()
    assert {f.comment_id for f in found} == EXPECTED[name]
    for f in found:  # each one speaks about the participant, none gives an opinion
        assert f.text.startswith(("I ", "My ", "我")) or " is my " in f.text, f
        assert not f.text.startswith(("I think", "I am worried", "I would", "我覺得", "我認為")), f
    # the first-person opinions of these conversations stay in
    first_person = [c for c in conv.comments if c.text.startswith(("I think", "我覺得"))]
    assert not {c.comment_id for c in first_person} & EXPECTED[name]


def test_no_detection_when_the_export_says_which_are_meta(tmp_path: Path) -> None:
    comments = (
        "timestamp,comment-id,author-id,agrees,disagrees,moderated,is-meta,comment-body\n"
        "1,0,0,0,0,1,false,I am between 15 and 19 years old.\n"
        "2,1,0,0,0,1,true,More trees\n"
    )
    folder = tmp_path / "flagged"
    folder.mkdir()
    (folder / "comments.csv").write_text(comments, encoding="utf-8")
    (folder / "votes.csv").write_text("timestamp,comment-id,voter-id,vote\n", encoding="utf-8")
    conv = load_polis_export(folder)
    assert conv.has_meta_column and conv.detected_meta() == []
    assert conv.meta_statements() == {1}  # the export's word, even where it looks odd
    assert conv.meta_statements(declared={0}) == {0, 1}
