"""Meta statements: statements that describe the participant instead of giving an opinion.

Pol.is lets a moderator tick "metadata" on a statement (``is_meta``): demographic questions
seeded into a conversation ("I am between 15 and 19 years old.", "I own property") so that the
groups can later be described by who is in them. Pol.is leaves such statements out of its math:
they say who someone is, not what they think, and a block of them would otherwise shape the
opinion groups (age brackets and ethnicities instead of opinions). Exports that carry an
``is-meta`` column say which they are; older exports, and many conversations imported from
elsewhere, do not. This module recognises them from their text, in English and Chinese.

A statement is taken as meta when all of these hold:

1. it speaks about the participant: it starts with "I" / "My" (我 / 本人 / 我的 …), or asks
   the participant about themselves ("Are you …?", "你是…吗？");
2. it is one short sentence (at most 25 words, or 40 Chinese characters) and says nothing
   evaluative: no word of opinion, wish or feeling ("think", "support", "should", "in favour",
   "worried", "too", 觉得, 支持, 应该, 担心, 太 …) and no reasoning ("because", 因为);
3. what it says about the participant is one of the attributes of a demographic questionnaire:
   age, gender, ethnicity or religion, language, where they live or come from, education,
   occupation or role, household and income, home or property ownership, disability — or their
   own experience of the topic ("I have used Uber", "I had an encounter with the police",
   "I own a car", 我有驾照).

Experience is the weakest of these signals: "I always vote" or "I have read the report" are
how some participants argue. A statement of experience therefore only counts when the moderator
seeded it (Pol.is ``is-seed``; in exports without that column, the author of the conversation's
first statement, participant 0 in Pol.is) — demographic questionnaires are written by the
moderator, arguments by participants.

The detector is deliberately a short list of readable rules, not a model: every decision comes
with the rule that made it (:class:`MetaFinding`), and staff can override it (the CLI's
``--no-auto-meta`` / ``--meta``, the import form's options, restoring a statement on the topic
page). Only the standard library is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Machine code -> English label; the label is what a user sees (translated through gettext).
CATEGORY_REASONS: dict[str, str] = {
    "age": "age",
    "gender": "gender",
    "ethnicity": "ethnicity, origin or religion",
    "language": "language",
    "residence": "where the participant lives or comes from",
    "education": "education",
    "occupation": "occupation or role",
    "household": "household, family or income",
    "tenure": "home or property ownership",
    "health": "disability or health",
    "experience": "personal experience of the topic",
}

MAX_WORDS = 25  # English: a self-description is short; longer statements argue
MAX_HAN = 40  # Chinese characters

# -- normalisation ------------------------------------------------------------------------------

# Traditional -> simplified for the characters the Chinese rules use (vTaiwan writes traditional).
_T2S = str.maketrans(
    "歲齡紀別業職駕駛車覺認為對擔歡應該須來戶學歷畢醫護師機農員兒媽殘屬從過經們區鄉鎮"
    "縣語說講國獨買貸務勞動證執贊討厭議張體見黨願誌離喪孫爺資險養單讀當給個與這裡劃傳"
    "線網憂慮滿聽關錢樓層遷輛鄰號棟華僑營計試隊藥",
    "岁龄纪别业职驾驶车觉认为对担欢应该须来户学历毕医护师机农员儿妈残属从过经们区乡镇"
    "县语说讲国独买贷务劳动证执赞讨厌议张体见党愿志离丧孙爷资险养单读当给个与这里划传"
    "线网忧虑满听关钱楼层迁辆邻号栋华侨营计试队药",
)
_SPACES = re.compile(r"\s+")
# a sentence end followed by more text: a self-description is one sentence
_SECOND_SENTENCE = re.compile(r"[.!?;](?=\s*\w)|[。！？；](?=.)")
_HAN = re.compile(r"[\u3400-\u9fff]")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, single spaces, simplified Chinese characters."""
    text = text.translate(_T2S).replace("\u2019", "'").replace("\u2018", "'")
    return _SPACES.sub(" ", text).strip().lower()


# -- English rules --------------------------------------------------------------------------------

_EN_SELF = re.compile(r"^(i|i'm|i've|i'd|my|me|myself)\b|\b(is|are) my\b")
_EN_ASK = re.compile(r"^(are|do|did|have|were|is) you(r)?\b|^(how old|where do you|what is your)\b")
# Opinion, wish, feeling, judgement or reasoning: the statement is an opinion, not a profile.
_EN_OPINION = re.compile(
    r"\b(think|thought|believ\w*|feel|feels|felt|support\w*|oppos\w*|want\w*|wish\w*|hope\w*|"
    r"prefer\w*|agree\w*|disagree\w*|should|shouldn't|must|ought|need|needs|would|wouldn't|"
    r"could|propos\w*|suggest\w*|recommend\w*|worr\w*|concern\w*|afraid|fear\w*|"
    r"favou?r\w*|against|pleased|happy|unhappy|glad|like|likes|love|loves|hate|hates|"
    r"dislike\w*|trust\w*|distrust\w*|doubt\w*|expect\w*|prepared|willing|ready|sure|"
    r"convinced|disappoint\w*|angry|frustrat\w*|tired|fed up|satisf\w*|dissatisf\w*|better|"
    r"worse|best|worst|unfair|fair|wrong|important|proud|ashamed|scared|confident|"
    r"optimistic|pessimistic|s[ck]eptic\w*|critic\w*|fan of|advocat\w*|enjoy\w*|appreciat\w*|"
    r"welcome|reject\w*|accept\w*|demand\w*|insist\w*|because|so that|therefore|"
    r"understand\w*|know|knows|explain|can't wait|mind|too|very|problem\w*|see|saw|seen|"
    r"notice\w*|hear|heard|watch\w*|read)\b"
)
# "I am …" / "I'm …", optionally with "a", "an", "now", "either" or one more word in between
_I_AM = r"^i('m| am)( a| an| now| either| aged| currently)?( \w+)?"
_EN_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "age",
        re.compile(
            r"\b\d{1,3} ?(years?|yrs?)( of age| old)\b|\byears old\b|\b(my age|age group)\b|"
            r"^(i('m| am)|are you)( either| aged| now)? (under|over|above|below|between|"
            r"older than|younger than|aged)? ?\d{1,3}\b|"
            r"^i('m| am) (a )?(teenager|in my (teens|twenties|thirties|forties|fifties|sixties|"
            r"seventies|eighties|\d0s))\b"
        ),
    ),
    (
        "gender",
        re.compile(
            r"^i('m| am) (a )?(male|female|man|woman|boy|girl|non-?binary|trans\w*)\b|"
            r"\bidentify as\b|\bmy (gender|sex)\b|\bnon-?binary\b|\btransgender\b"
        ),
    ),
    (
        "ethnicity",
        re.compile(
            r"\b(ethnicity|ethnic (group|background|minority|origin)|race|racial|heritage|"
            r"descent|religion)\b|" + _I_AM + r" ?(white|black|asian|hispanic|latin[oax]|"
            r"indigenous|aboriginal|first nations|m[aā]ori|p[aā]keh[aā]|arab|caucasian|african|"
            r"caribbean|muslim|christian|jewish|hindu|buddhist|sikh|atheist)\b"
        ),
    ),
    (
        "language",
        re.compile(
            r"\b(first|native|home|main|second) language\b|\bmother tongue\b|"
            r"^i (can )?(speak|spoke) (\w+ )?(\w+ )?(language|languages|english|french|spanish|"
            r"german|chinese|mandarin|cantonese|arabic|hindi|maori|te reo|welsh|gaelic)\b|"
            r"\bbilingual\b"
        ),
    ),
    (
        "residence",
        re.compile(
            r"^i (live|lived|have lived|'ve lived|reside|grew up|was born|am from|come from)\b|"
            r"^i'm from\b|\b(born in|resident of|citizen\w*|nationality|immigrant|migrant|"
            r"refugee|eligible to vote|(urban|rural|suburban) area)\b|" + _I_AM + r" ?resident\b|"
            r"^my (home ?town|neighbou?rhood|postcode|zip code|suburb|district|borough|county|"
            r"region|address) is\b"
        ),
    ),
    (
        "education",
        re.compile(
            r"\b(qualification\w*|diploma|graduated|phd|(a|my|university|bachelor'?s?|"
            r"master'?s?) degree|my education)\b|"
            + _I_AM
            + r" ?(student|pupil|graduate|undergraduate|postgraduate|apprentice)\b|"
            r"^i (study|studied|go to|went to|attend\w*|left) (a |the )?(\w+ )?(school|college|"
            r"university)\b"
        ),
    ),
    (
        "occupation",
        re.compile(
            r"\b(employed|unemployed|self-employed|retired|pensioner|my job|my occupation|"
            r"my profession|full-time|part-time|freelance\w*|own (a|my own|my) business|"
            r"business owner)\b|^i (work|worked)\b|"
            + _I_AM
            + r" ?(driver|teacher|nurse|doctor|farmer|police officer|officer|civil servant|"
            r"shop ?keeper|employee|employer|volunteer|carer|caregiver|homemaker|worker|"
            r"engineer|lawyer|manager|cleaner|guard)s?\b"
        ),
    ),
    (
        "household",
        re.compile(
            r"\b(household\w*|income|salary|wages?|married|divorced|widow\w*|live alone|"
            r"living alone|working class|middle class|upper class|lower class)\b|^i earn\b|"
            r"^i have (\w+ )?(children|child|kids|grandchildren|dependants)\b|"
            r"\bmy (children|child|kids|son|daughter|partner|husband|wife|spouse)\b|"
            + _I_AM
            + r" ?(parent|mother|father|mum|mom|dad|grandparent|grandmother|grandfather)\b"
        ),
    ),
    (
        "tenure",
        re.compile(
            r"\b(own (a |my |our )?(home|house|flat|apartment|property|properties|condo|land)|"
            r"homeowner|home owner|property owner|owner-occupier|tenant|renter|mortgage|"
            r"social housing|council housing|public housing|landlord)\b|^i rent\b"
        ),
    ),
    (
        "health",
        re.compile(
            r"\b(disability|disabilities|impairment|chronic (illness|condition)|wheelchair user|"
            r"use a wheelchair)\b|" + _I_AM + r" ?(disabled|blind|deaf)\b"
        ),
    ),
    (
        "experience",
        re.compile(
            r"^i (have|'ve|had|have had|'ve had|have been|was|have never|'ve never|never|have "
            r"not|haven't|do not have|don't have|have not had|own|drive|ride|cycle|commute|use|"
            r"used|usually|regularly|often|always|sometimes|voted|vote)\b|^i've\b"
        ),
    ),
)

# -- Chinese rules ----------------------------------------------------------------------------

_ZH_SELF = re.compile(r"^(我|本人|俺)")
_ZH_ASK = re.compile(r"^(你|您)(是|的|今年|住|有|家)")
_ZH_OPINION = re.compile(
    r"觉得|认为|以为|感觉|支持|反对|赞成|同意|希望|建议|主张|担心|害怕|喜欢|讨厌|相信|期待|期望|"
    r"要求|呼吁|应该|应当|不应|必须|需要|可以|不能|最好|欢迎|满意|不满|愿意|想要|我想|怕|"
    r"因为|所以|但是|不过|太|非常|很|不好|糟糕|问题|公平|合理|看到|看见|听说|发现|注意到"
)
# "我是…" / "我从事…" / "我当…": a role the participant has
_ZH_I_AM = r"^(我|本人)(是|从事|做|当)[^，,]{0,12}"
_ZH_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "age",
        re.compile(
            r"\d+ ?岁|[一二三四五六七八九十几]+岁|年龄|年纪|岁数|\d0后|[五六七八九零〇]零后|"
            r"\d{2,4}年出生|出生于\d|未成年|成年人"
        ),
    ),
    ("gender", re.compile(r"男性|女性|男生|女生|男士|女士|性别|^我是(男|女)|跨性别")),
    (
        "ethnicity",
        re.compile(
            r"民族|汉族|[回藏维蒙壮满苗彝]族|宗教|信仰|佛教|基督|伊斯兰|穆斯林|天主教|原住民"
        ),
    ),
    ("language", re.compile(r"母语|第一语言|方言|^(我|本人)(会|能)(说|讲)[^，,]{0,6}(话|语|文)")),
    (
        "residence",
        re.compile(
            r"^(我|本人)(家)?(住在|住|居住|现居|常住)|我家在|户籍|户口|本地人|外地人|本地居民|"
            r"^(我|本人)(来自|出生在|出生于)|籍贯|老家在|搬来|搬到|新市民|本小区|这个小区|"
            r"(\d+|[一二三四五六七八九十]+)(号楼|栋|幢|单元)"
        ),
    ),
    (
        "education",
        re.compile(
            r"学历|文化程度|毕业于|(大学|本科|高中|初中|中专|大专|研究生)毕业|在读|"
            + _ZH_I_AM
            + r"(学生|本科|研究生|硕士|博士|大学生|中学生|小学生)"
        ),
    ),
    (
        "occupation",
        re.compile(
            r"职业|退休|失业|无业|待业|上班族|全职|兼职|个体户|"
            r"^(我|本人)(在)[^，,]{0,12}(工作|上班)|"
            + _ZH_I_AM
            + r"(司机|老板|员工|职工|工人|农民|教师|老师|医生|护士|警察|律师|公务员|干部|商人|"
            r"保安|保洁|快递员|外卖员|党员|志愿者|退伍军人|军人|家庭主妇|工程师|会计|个体)"
        ),
    ),
    (
        "household",
        re.compile(
            r"家庭|收入|月薪|年薪|工资|已婚|未婚|离异|丧偶|独居|一个人住|独生|口人|低保|"
            r"^(我|本人)(家)?(有|没有)[^，,]{0,8}(孩子|子女|儿子|女儿|小孩|老人)|"
            r"我的(孩子|子女|儿子|女儿|小孩|父母|爱人|丈夫|妻子)|"
            + _ZH_I_AM
            + r"(父亲|母亲|爸爸|妈妈|家长|爷爷|奶奶|外公|外婆)"
        ),
    ),
    (
        "tenure",
        re.compile(
            r"业主|租户|租客|房东|租房|租住|自有住房|买房|有房|房产|按揭|房贷|公租房|廉租房|产权|"
            r"车主|有车|私家车|车位"
        ),
    ),
    ("health", re.compile(r"残疾|残障|慢性病|行动不便|轮椅|视障|听障")),
    (
        "experience",
        re.compile(
            r"(用|坐|搭|乘|叫|去|住|来|见|遇|遇到|参加|经历|接触|打|开|骑|投诉|报警)过|"
            r"驾照|执照|驾驶证"
        ),
    ),
    (
        "experience",
        re.compile(
            r"^(我|本人)(曾|以前|之前|过去|有|没有|从未|从来没|经常|常常|每天|每周|平时|一直)"
        ),
    ),
)


@dataclass(frozen=True)
class MetaFinding:
    """Why a statement was taken as meta: its category and the words that matched."""

    comment_id: int
    category: str  # key of CATEGORY_REASONS
    matched: str  # the words of the statement that matched the category's rule
    text: str

    @property
    def label(self) -> str:
        return CATEGORY_REASONS[self.category]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.comment_id,
            "category": self.category,
            "matched": self.matched,
            "text": self.text,
        }


def describe_participant(text: str) -> tuple[str, str] | None:
    """``(category, matched words)`` when ``text`` describes the participant, else ``None``.

    Rules 1–3 of the module docstring; the seeding condition on experience is applied by
    :func:`detect_meta`, which knows who wrote the statement.
    """
    norm = normalise(text)
    if not norm:
        return None
    if _SECOND_SENTENCE.search(norm):
        return None
    han = len(_HAN.findall(norm))
    if han >= 2:  # Chinese
        if han > MAX_HAN or not (_ZH_SELF.search(norm) or _ZH_ASK.search(norm)):
            return None
        if _ZH_OPINION.search(norm):
            return None
        rules = _ZH_CATEGORIES
    else:
        if len(norm.split()) > MAX_WORDS or not (_EN_SELF.search(norm) or _EN_ASK.search(norm)):
            return None
        if _EN_OPINION.search(norm):
            return None
        rules = _EN_CATEGORIES
    for category, pattern in rules:
        m = pattern.search(norm)
        if m:
            return category, m.group(0).strip()
    return None


class _Comment(Protocol):
    @property
    def comment_id(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def author_id(self) -> int | None: ...
    @property
    def is_seed(self) -> bool | None: ...


def moderator_of(comments: Sequence[_Comment]) -> int | None:
    """The author of the conversation's first statement (Pol.is: the owner, participant 0)."""
    first = min(comments, key=lambda c: c.comment_id, default=None)
    return first.author_id if first is not None else None


def detect_meta(comments: Iterable[_Comment]) -> list[MetaFinding]:
    """Statements that describe the participant (see the module docstring), in id order."""
    items = sorted(comments, key=lambda c: c.comment_id)
    owner = moderator_of(items)
    found: list[MetaFinding] = []
    for c in items:
        hit = describe_participant(c.text)
        if hit is None:
            continue
        category, matched = hit
        if category == "experience":
            seeded = c.is_seed
            if seeded is None:
                seeded = owner is not None and c.author_id == owner
            if not seeded:
                continue
        found.append(MetaFinding(c.comment_id, category, matched, c.text))
    return found


def parse_ids(text: str) -> set[int]:
    """Statement ids written as ``"1-14,20"`` -> {1, ..., 14, 20}.

    Raises ``ValueError`` whose message is the part that is not a whole number or a range."""
    out: set[int] = set()
    for part in text.replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise ValueError(part) from None
        if first < 0 or last < first:
            raise ValueError(part)
        out.update(range(first, last + 1))
    return out
