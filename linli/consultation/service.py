"""Consultation logic: demands, topics, deliberation, opinion maps, votes, outcomes, dashboard.

Every function takes the caller's ``Ctx`` and scopes each query to ``ctx.community_id``; ids of
another community behave exactly like ids that do not exist. Functions flush, routes commit.
"""

from __future__ import annotations

import secrets
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linli.consultation import tally
from linli.consultation.models import (
    STATEMENT_META,
    ActionFollow,
    ActionItem,
    ActionUpdate,
    Comment,
    CommentReport,
    Demand,
    Meeting,
    Notification,
    Poll,
    PollBallot,
    PollOption,
    PollVoter,
    Statement,
    StatementVote,
    Topic,
    TopicExpert,
)
from linli.consultation.opinion import compute_opinion_map
from linli.consultation.schemas import (
    ActionIn,
    ActionUpdateIn,
    CommentIn,
    DemandIn,
    DemandOut,
    DemandReplyIn,
    HotIssue,
    MeetingIn,
    PollIn,
    TopicIn,
)
from linli.core import audit, events, mail
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.i18n import N_, platform_language
from linli.core.mail import Mailer
from linli.core.models import RoleGrant, User
from linli.core.roles import Perm, Role
from linli.core.web import Ctx
from linli.people.models import Building, Household, Ownership, Professional, Resident, Unit
from linli.workorders import service as workorders
from linli.workorders.models import CATEGORIES

# -- category suggestion and grouping ---------------------------------------------------------

#: words (Chinese and English) that describe each work-order category
CATEGORY_WORDS: dict[str, str] = {
    "elevator": "电梯 直梯 轿厢 困人 停运 卡住 elevator lift stuck",
    "water": "漏水 水管 停水 水压 渗水 下水道 堵塞 自来水 water leak pipe pressure drain flooding",
    "electric": "停电 电路 跳闸 电线 插座 充电桩 power outage electricity wiring socket charger",
    "lighting": "路灯 灯坏 照明 楼道灯 太暗 light lamp streetlight dark lighting bulb",
    "sanitation": "垃圾 清运 分类 垃圾桶 卫生 异味 保洁 garbage rubbish trash bin smell cleaning",
    "parking": "停车 车位 占道 乱停 电动车 车库 parking car park space vehicle blocked",
    "security": "门禁 保安 陌生人 盗窃 监控 安全隐患 security theft stranger gate guard cctv",
    "fire_safety": "消防 通道 灭火器 楼道堆物 火灾 fire extinguisher escape exit hazard",
    "environment": "绿化 树木 噪音 广场舞 扰民 草坪 noise tree green grass trees pollution",
    "facility": "设施 健身器材 座椅 破损 维修 屋顶 外墙 facility repair broken bench roof wall",
    "wellbeing": "老人 独居 助餐 看病 养老 关爱 elderly care meals lonely health",
    "neighbourhood": "邻居 纠纷 宠物 养狗 狗 遛狗 装修 neighbour dispute dog pet renovation",
}
GROUP_SIMILARITY = 0.25


def _vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=True, min_df=1)


def suggest_category(text: str) -> str:
    """The category whose word list shares most character n-grams with ``text``."""
    from sklearn.metrics.pairwise import cosine_similarity

    cats = list(CATEGORY_WORDS)
    docs = [CATEGORY_WORDS[c] for c in cats]
    vec = _vectorizer().fit([*docs, text])
    sims = cosine_similarity(vec.transform([text]), vec.transform(docs))[0]
    # single characters are too common across categories: require a hit of a keyword
    low = text.lower()
    hits = {c: sum(1 for w in CATEGORY_WORDS[c].split() if w in low) for c in cats}
    best = max(cats, key=lambda c: (hits[c], sims[cats.index(c)]))
    return best if hits[best] > 0 or sims[cats.index(best)] > 0.25 else "other"


def group_similar(texts: Sequence[str], threshold: float = GROUP_SIMILARITY) -> list[list[int]]:
    """Groups of indices of similar texts (char n-gram TF-IDF cosine, connected components)."""
    if not texts:
        return []
    from sklearn.metrics.pairwise import cosine_similarity

    vec = TfidfVectorizerBigram().fit_transform(texts)
    sims = cosine_similarity(vec)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if sims[i, j] >= threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        groups[find(i)].append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def TfidfVectorizerBigram() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 2), lowercase=True, min_df=1)


# -- demands ----------------------------------------------------------------------------------


def _is_manager(ctx: Ctx) -> bool:
    return ctx.can(Perm.CONSULTATION_MANAGE)


def _own_resident_id(ctx: Ctx) -> int | None:
    user = ctx.principal.user
    return user.resident_id if user is not None else None


def _check_building(s: Session, ctx: Ctx, building_id: int | None) -> None:
    if building_id is None:
        return
    b = s.get(Building, building_id)
    if b is None or b.community_id != ctx.community_id:
        raise NotFound("Building not found.", field="building_id", code="building_not_found")


def submit_demand(s: Session, ctx: Ctx, data: DemandIn, photo: str | None = None) -> Demand:
    """A resident's own demand, or one entered by staff (phone, in person)."""
    ctx.require(Perm.CONSULTATION_READ)
    if ctx.principal.user is None:
        raise Forbidden("This action needs a user, not an API token.")
    if data.category is not None and data.category not in CATEGORIES:
        raise ValidationFailed("Unknown category.", field="category")
    if _is_manager(ctx):
        resident_id = data.resident_id
        channel = data.channel
        if resident_id is not None:
            r = s.get(Resident, resident_id)
            if r is None or r.community_id != ctx.community_id:
                raise NotFound("Resident not found.", field="resident_id")
    else:
        resident_id = _own_resident_id(ctx)
        if resident_id is None:
            raise Forbidden("Only registered residents can submit demands.", code="not_a_resident")
        channel = "app"
    _check_building(s, ctx, data.building_id)
    suggested = suggest_category(data.text)
    d = Demand(
        community_id=ctx.community_id,
        resident_id=resident_id,
        submitted_by_user_id=ctx.user_id,
        channel=channel,
        anonymous=data.anonymous,
        text=data.text,
        category=data.category or suggested,
        suggested_category=suggested,
        building_id=data.building_id,
        location=data.location.strip() if data.location else None,
        photo=photo,
        status="submitted",
    )
    s.add(d)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "demand.submitted",
        "demand",
        d.id,
        community_id=ctx.community_id,
        details={"anonymous": d.anonymous, "channel": channel},
    )
    events.emit(
        s,
        "consultation.demand.submitted",
        {"id": d.id, "category": d.category, "building_id": d.building_id},
        community_id=ctx.community_id,
    )
    return d


def _demand_visible(ctx: Ctx, d: Demand) -> bool:
    if _is_manager(ctx):
        return True
    rid = _own_resident_id(ctx)
    return rid is not None and d.resident_id == rid


def get_demand(s: Session, ctx: Ctx, demand_id: int) -> Demand:
    ctx.require(Perm.CONSULTATION_READ)
    d = s.get(Demand, demand_id)
    if d is None or d.community_id != ctx.community_id or not _demand_visible(ctx, d):
        raise NotFound("Demand not found.", code="demand_not_found")
    return d


def list_demands(
    s: Session, ctx: Ctx, *, status: str | None = None, mine: bool = False, limit: int = 200
) -> list[Demand]:
    ctx.require(Perm.CONSULTATION_READ)
    q = select(Demand).where(Demand.community_id == ctx.community_id)
    if mine or not _is_manager(ctx):
        rid = _own_resident_id(ctx)
        if rid is None:
            return []
        q = q.where(Demand.resident_id == rid)
    if status:
        q = q.where(Demand.status == status)
    return list(s.scalars(q.order_by(Demand.id.desc()).limit(limit)))


def demand_out(s: Session, d: Demand) -> DemandOut:
    """The public view: no author name for anonymous demands, for anyone."""
    author = None
    if not d.anonymous and d.resident_id is not None:
        r = s.get(Resident, d.resident_id)
        author = r.name if r else None
    b = s.get(Building, d.building_id) if d.building_id else None
    return DemandOut(
        id=d.id,
        text=d.text,
        category=d.category,
        suggested_category=d.suggested_category,
        building_id=d.building_id,
        building=b.name if b else None,
        location=d.location,
        anonymous=d.anonymous,
        author=author,
        channel=d.channel,
        status=d.status,
        reply=d.reply,
        replied_at=d.replied_at,
        topic_id=d.topic_id,
        work_order_id=d.work_order_id,
        has_photo=d.photo is not None,
        created_at=d.created_at,
        resolved_at=d.resolved_at,
    )


def reveal_author(s: Session, ctx: Ctx, demand_id: int, reason: str) -> str | None:
    """Staff only, for abuse handling: the name behind an anonymous demand (audited)."""
    ctx.require(Perm.CONSULTATION_MANAGE)
    d = get_demand(s, ctx, demand_id)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("Give a reason.", field="reason")
    audit.record(
        s,
        ctx.actor,
        "demand.author_revealed",
        "demand",
        d.id,
        community_id=ctx.community_id,
        details={"reason": reason[:300]},
    )
    r = s.get(Resident, d.resident_id) if d.resident_id else None
    return r.name if r else None


def reply_demand(s: Session, ctx: Ctx, demand_id: int, data: DemandReplyIn) -> Demand:
    ctx.require(Perm.CONSULTATION_MANAGE)
    d = get_demand(s, ctx, demand_id)
    d.reply = data.reply
    d.replied_at = utcnow()
    d.status = data.status
    if data.status in ("resolved", "closed") and d.resolved_at is None:
        d.resolved_at = d.replied_at
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "demand.replied",
        "demand",
        d.id,
        community_id=ctx.community_id,
        details={"status": d.status},
    )
    events.emit(
        s,
        "consultation.demand.replied",
        {"id": d.id, "status": d.status},
        community_id=ctx.community_id,
    )
    _notify_demand_author(s, d, N_("Your demand has a reply."))
    return d


def _notify_demand_author(s: Session, d: Demand, title: str) -> None:
    if d.resident_id is None:
        return
    uids = list(s.scalars(select(User.id).where(User.resident_id == d.resident_id)))
    notify(
        s,
        d.community_id,
        uids,
        title,
        d.reply or d.text[:200],
        f"/c/{d.community_id}/consultation/demands/{d.id}",
    )


def demand_to_order(s: Session, ctx: Ctx, demand_id: int, severity: str = "minor") -> Demand:
    """Turn a demand into a work order (once; a second call returns the same order)."""
    ctx.require(Perm.CONSULTATION_MANAGE)
    d = get_demand(s, ctx, demand_id)
    title = d.text.strip().splitlines()[0][:120]
    wo = workorders.create_order(
        s,
        ctx.community_id,
        workorders.NewOrder(
            category=d.category if d.category in CATEGORIES else "other",
            title=title,
            severity=severity,
            description=d.text,
            building_id=d.building_id,
            location=d.location,
            source="demand",
            source_ref=f"demand:{d.id}",
            requester_resident_id=d.resident_id,
        ),
        ctx.actor,
    )
    d.work_order_id = wo.id
    if d.status == "submitted":
        d.status = "accepted"
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "demand.to_work_order",
        "demand",
        d.id,
        community_id=ctx.community_id,
        details={"work_order_id": wo.id},
    )
    return d


def on_work_order_changed(s: Session, community_id: int | None, payload: dict[str, Any]) -> None:
    """Follow the status of the work order a demand became (event handler; idempotent)."""
    ref = str(payload.get("source_ref") or "")
    if not ref.startswith("demand:") or not ref[7:].isdigit():
        return
    d = s.get(Demand, int(ref[7:]))
    if d is None or d.community_id != community_id:
        return
    status = payload.get("status")
    new = {
        "assigned": "accepted",
        "in_progress": "in_progress",
        "resolved": "resolved",
        "closed": "closed",
    }.get(str(status))
    if new is None or d.status == new:
        return
    d.status = new
    if new in ("resolved", "closed") and d.resolved_at is None:
        d.resolved_at = utcnow()
    s.flush()
    if new in ("resolved", "closed"):
        _notify_demand_author(s, d, N_("Your demand has been handled."))


def hot_issues(s: Session, ctx: Ctx, days: int = 90, limit: int = 20) -> list[HotIssue]:
    """Open demands grouped by similarity, ranked by how many distinct residents raise them.

    Only staff see the text of a demand; residents see the category and the counts."""
    ctx.require(Perm.CONSULTATION_READ)
    since = utcnow() - timedelta(days=days)
    rows = list(
        s.scalars(
            select(Demand)
            .where(
                Demand.community_id == ctx.community_id,
                Demand.created_at >= since,
                Demand.status.not_in(("closed", "rejected")),
            )
            .order_by(Demand.id)
            .limit(5000)
        )
    )
    out = []
    for g in group_similar([d.text for d in rows]):
        ds = [rows[i] for i in g]
        people = {f"r{d.resident_id}" if d.resident_id else f"d{d.id}" for d in ds}
        cat = Counter(d.category for d in ds).most_common(1)[0][0]
        out.append(
            HotIssue(
                demand_ids=[d.id for d in ds],
                residents=len(people),
                category=cat,
                sample=ds[0].text[:200] if _is_manager(ctx) else "",
            )
        )
    out.sort(key=lambda h: (-h.residents, -len(h.demand_ids), h.demand_ids[0]))
    return out[:limit]


# -- topics -----------------------------------------------------------------------------------


def get_topic(s: Session, ctx: Ctx, topic_id: int) -> Topic:
    ctx.require(Perm.CONSULTATION_READ)
    t = s.get(Topic, topic_id)
    if t is None or t.community_id != ctx.community_id:
        raise NotFound("Topic not found.", code="topic_not_found")
    return t


def list_topics(s: Session, ctx: Ctx) -> list[Topic]:
    ctx.require(Perm.CONSULTATION_READ)
    q = select(Topic).where(Topic.community_id == ctx.community_id)
    return list(s.scalars(q.order_by(Topic.id.desc())))


def create_topic(s: Session, ctx: Ctx, data: TopicIn) -> Topic:
    ctx.require(Perm.CONSULTATION_MANAGE)
    t = Topic(
        community_id=ctx.community_id,
        title=data.title,
        background=data.background,
        created_by_user_id=ctx.user_id,
    )
    s.add(t)
    s.flush()
    for did in data.demand_ids:
        d = get_demand(s, ctx, did)
        d.topic_id = t.id
        if d.status == "submitted":
            d.status = "accepted"
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "topic.created",
        "topic",
        t.id,
        community_id=ctx.community_id,
        details={"demands": list(data.demand_ids)},
    )
    events.emit(s, "consultation.topic.created", {"id": t.id}, community_id=ctx.community_id)
    return t


def set_topic_status(s: Session, ctx: Ctx, topic_id: int, status: str) -> Topic:
    ctx.require(Perm.CONSULTATION_MANAGE)
    t = get_topic(s, ctx, topic_id)
    if status not in ("open", "closed"):
        raise ValidationFailed("Unknown status.", field="status")
    t.status = status
    s.flush()
    audit.record(s, ctx.actor, f"topic.{status}", "topic", t.id, community_id=ctx.community_id)
    return t


def topic_demands(s: Session, ctx: Ctx, topic_id: int) -> list[Demand]:
    get_topic(s, ctx, topic_id)
    return list(s.scalars(select(Demand).where(Demand.topic_id == topic_id).order_by(Demand.id)))


def invite_expert(s: Session, ctx: Ctx, topic_id: int, professional_id: int) -> TopicExpert:
    ctx.require(Perm.CONSULTATION_MANAGE)
    t = get_topic(s, ctx, topic_id)
    p = s.get(Professional, professional_id)
    if p is None or p.community_id != ctx.community_id:
        raise NotFound("Professional not found.", field="professional_id")
    existing = s.scalar(
        select(TopicExpert).where(TopicExpert.topic_id == t.id, TopicExpert.professional_id == p.id)
    )
    if existing is not None:
        return existing
    e = TopicExpert(topic_id=t.id, professional_id=p.id)
    s.add(e)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "topic.expert_invited",
        "topic",
        t.id,
        community_id=ctx.community_id,
        details={"professional_id": p.id},
    )
    if p.user_id is not None:
        notify(
            s,
            ctx.community_id,
            [p.user_id],
            N_("You are invited to a consultation panel."),
            t.title,
            f"/c/{ctx.community_id}/consultation/topics/{t.id}",
        )
    return e


def topic_experts(s: Session, ctx: Ctx, topic_id: int) -> list[Professional]:
    get_topic(s, ctx, topic_id)
    q = (
        select(Professional)
        .join(TopicExpert, TopicExpert.professional_id == Professional.id)
        .where(TopicExpert.topic_id == topic_id)
        .order_by(Professional.name)
    )
    return list(s.scalars(q))


def _aware(ctx: Ctx, value: datetime) -> datetime:
    """A time typed without a zone is a time in the community's zone."""
    if value.tzinfo is None:
        return value.replace(tzinfo=ZoneInfo(ctx.timezone))
    return value


def add_meeting(s: Session, ctx: Ctx, topic_id: int, data: MeetingIn) -> Meeting:
    ctx.require(Perm.CONSULTATION_MANAGE)
    t = get_topic(s, ctx, topic_id)
    doc = data.model_dump()
    doc["starts_at"] = _aware(ctx, data.starts_at)
    m = Meeting(topic_id=t.id, **doc)
    s.add(m)
    s.flush()
    audit.record(s, ctx.actor, "meeting.created", "meeting", m.id, community_id=ctx.community_id)
    return m


def save_minutes(s: Session, ctx: Ctx, topic_id: int, meeting_id: int, minutes: str) -> Meeting:
    ctx.require(Perm.CONSULTATION_MANAGE)
    get_topic(s, ctx, topic_id)
    m = s.get(Meeting, meeting_id)
    if m is None or m.topic_id != topic_id:
        raise NotFound("Meeting not found.", code="meeting_not_found")
    if len(minutes) > 20000:
        raise ValidationFailed("The minutes are too long.", field="minutes")
    m.minutes = minutes.strip() or None
    s.flush()
    audit.record(s, ctx.actor, "meeting.minutes", "meeting", m.id, community_id=ctx.community_id)
    return m


def list_meetings(s: Session, ctx: Ctx, topic_id: int) -> list[Meeting]:
    get_topic(s, ctx, topic_id)
    q = select(Meeting).where(Meeting.topic_id == topic_id).order_by(Meeting.starts_at)
    return list(s.scalars(q))


# -- deliberation -----------------------------------------------------------------------------


def _expert_for(s: Session, ctx: Ctx, topic_id: int) -> Professional | None:
    if ctx.user_id is None:
        return None
    q = (
        select(Professional)
        .join(TopicExpert, TopicExpert.professional_id == Professional.id)
        .where(TopicExpert.topic_id == topic_id, Professional.user_id == ctx.user_id)
    )
    return s.scalar(q)


def add_comment(s: Session, ctx: Ctx, topic_id: int, data: CommentIn) -> Comment:
    ctx.require(Perm.CONSULTATION_READ)
    user = ctx.principal.user
    if user is None:
        raise Forbidden("This action needs a user, not an API token.")
    t = get_topic(s, ctx, topic_id)
    if t.status != "open":
        raise Conflict("The topic is closed.", code="topic_closed")
    if data.parent_id is not None:
        parent = s.get(Comment, data.parent_id)
        if parent is None or parent.topic_id != t.id:
            raise NotFound("Comment not found.", field="parent_id")
    pro = _expert_for(s, ctx, t.id)
    c = Comment(
        topic_id=t.id,
        parent_id=data.parent_id,
        author_user_id=user.id,
        author_name=user.display_name,
        professional_id=pro.id if pro else None,
        text=data.text,
    )
    s.add(c)
    s.flush()
    events.emit(
        s,
        "consultation.comment.posted",
        {"id": c.id, "topic_id": t.id},
        community_id=ctx.community_id,
    )
    return c


def list_comments(s: Session, ctx: Ctx, topic_id: int) -> list[Comment]:
    get_topic(s, ctx, topic_id)
    q = select(Comment).where(Comment.topic_id == topic_id).order_by(Comment.id)
    return list(s.scalars(q))


def _get_comment(s: Session, ctx: Ctx, topic_id: int, comment_id: int) -> Comment:
    get_topic(s, ctx, topic_id)
    c = s.get(Comment, comment_id)
    if c is None or c.topic_id != topic_id:
        raise NotFound("Comment not found.", code="comment_not_found")
    return c


def report_comment(
    s: Session, ctx: Ctx, topic_id: int, comment_id: int, reason: str | None
) -> Comment:
    ctx.require(Perm.CONSULTATION_READ)
    if ctx.user_id is None:
        raise Forbidden("This action needs a user, not an API token.")
    c = _get_comment(s, ctx, topic_id, comment_id)
    try:
        with s.begin_nested():
            s.add(CommentReport(comment_id=c.id, user_id=ctx.user_id, reason=reason))
    except IntegrityError:
        raise Conflict("You have already reported this comment.", code="already_reported") from None
    c.reports += 1
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "comment.reported",
        "comment",
        c.id,
        community_id=ctx.community_id,
        details={"reason": (reason or "")[:300]},
    )
    return c


def hide_comment(
    s: Session, ctx: Ctx, topic_id: int, comment_id: int, reason: str, hidden: bool = True
) -> Comment:
    ctx.require(Perm.CONSULTATION_MANAGE)
    c = _get_comment(s, ctx, topic_id, comment_id)
    if hidden and not reason.strip():
        raise ValidationFailed("Give a reason.", field="reason")
    c.hidden = hidden
    c.hidden_reason = reason.strip()[:300] if hidden else None
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "comment.hidden" if hidden else "comment.shown",
        "comment",
        c.id,
        community_id=ctx.community_id,
        details={"reason": reason[:300]},
    )
    return c


def comment_view(s: Session, ctx: Ctx, c: Comment) -> dict[str, Any]:
    pro = s.get(Professional, c.professional_id) if c.professional_id else None
    mod = _is_manager(ctx)
    return {
        "id": c.id,
        "parent_id": c.parent_id,
        "author": c.author_name,
        "expert": pro is not None,
        "profession": pro.profession if pro else None,
        "text": c.text if (not c.hidden or mod) else None,
        "hidden": c.hidden,
        "hidden_reason": c.hidden_reason,
        "reports": c.reports if mod else None,
        "created_at": c.created_at,
    }


# -- opinion map ------------------------------------------------------------------------------


def add_statement(s: Session, ctx: Ctx, topic_id: int, text: str) -> Statement:
    ctx.require(Perm.CONSULTATION_READ)
    t = get_topic(s, ctx, topic_id)
    if t.status != "open":
        raise Conflict("The topic is closed.", code="topic_closed")
    st = Statement(topic_id=t.id, text=text, author_user_id=ctx.user_id, moderated=1)
    s.add(st)
    s.flush()
    return st


def moderate_statement(
    s: Session, ctx: Ctx, topic_id: int, statement_id: int, moderated: int
) -> Statement:
    ctx.require(Perm.CONSULTATION_MANAGE)
    get_topic(s, ctx, topic_id)
    st = s.get(Statement, statement_id)
    if st is None or st.topic_id != topic_id:
        raise NotFound("Statement not found.", code="statement_not_found")
    st.moderated = 1 if moderated >= 0 else (STATEMENT_META if moderated == STATEMENT_META else -1)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "statement.moderated",
        "statement",
        st.id,
        community_id=ctx.community_id,
        details={"moderated": st.moderated},
    )
    return st


def vote_statement(s: Session, ctx: Ctx, topic_id: int, statement_id: int, vote: int) -> None:
    ctx.require(Perm.CONSULTATION_READ)
    if ctx.user_id is None:
        raise Forbidden("This action needs a user, not an API token.")
    if vote not in (-1, 0, 1):
        raise ValidationFailed("A vote must be 1 (agree), -1 (disagree) or 0 (pass).")
    t = get_topic(s, ctx, topic_id)
    if t.status != "open":
        raise Conflict("The topic is closed.", code="topic_closed")
    st = s.get(Statement, statement_id)
    if st is None or st.topic_id != t.id or st.moderated < 0:
        raise NotFound("Statement not found.", code="statement_not_found")
    key = f"u:{ctx.user_id}"
    row = s.scalar(
        select(StatementVote).where(
            StatementVote.statement_id == st.id, StatementVote.participant == key
        )
    )
    if row is None:
        s.add(StatementVote(topic_id=t.id, statement_id=st.id, participant=key, vote=vote))
    else:
        row.vote = vote
        row.at = utcnow()
    s.flush()
    events.emit(
        s,
        "consultation.statement.voted",
        {"topic_id": t.id, "statement_id": st.id},
        community_id=ctx.community_id,
    )


def list_statements(s: Session, ctx: Ctx, topic_id: int) -> list[Statement]:
    get_topic(s, ctx, topic_id)
    q = select(Statement).where(Statement.topic_id == topic_id).order_by(Statement.id)
    return list(s.scalars(q))


def my_statement_votes(s: Session, ctx: Ctx, topic_id: int) -> dict[int, int]:
    q = select(StatementVote.statement_id, StatementVote.vote).where(
        StatementVote.topic_id == topic_id, StatementVote.participant == f"u:{ctx.user_id}"
    )
    return {sid: v for sid, v in s.execute(q).all()}


def opinion_map(s: Session, ctx: Ctx, topic_id: int) -> dict[str, Any]:
    """The topic's opinion map: groups, map coordinates, consensus and divisive statements."""
    statements = {st.id: st for st in list_statements(s, ctx, topic_id)}
    votes = list(
        s.execute(
            select(
                StatementVote.participant,
                StatementVote.statement_id,
                StatementVote.vote,
                StatementVote.at,
            )
            .where(StatementVote.topic_id == topic_id)
            .order_by(StatementVote.at)
        ).all()
    )
    out_ids = [sid for sid, st in statements.items() if st.moderated < 0]
    m = compute_opinion_map([tuple(v) for v in votes], moderated_out=out_ids)
    coords = list(m.coordinates.items())
    xs = [c[1][0] for c in coords] or [0.0]
    ys = [c[1][1] for c in coords] or [0.0]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    points = [
        {
            "x": round(10 + 280 * (x - min(xs)) / span_x, 1),
            "y": round(10 + 180 * (y - min(ys)) / span_y, 1),
            "group": m.participants.get(p, 0),
            "me": p == f"u:{ctx.user_id}",
        }
        for p, (x, y) in coords
    ]

    def stmt(cid: Any) -> dict[str, Any]:
        st = statements.get(cid)
        cs = m.comments.get(cid)
        return {
            "id": cid,
            "text": st.text if st else "",
            "total": cs.total.to_dict() if cs else {},
            "groups": [g.to_dict() for g in cs.groups] if cs else [],
        }

    return {
        "groups": m.k,
        "group_sizes": m.group_sizes,
        "participants": len(m.participants),
        "votes": m.n_votes,
        "points": points,
        "consensus": [stmt(c) for c in m.consensus[:10]],
        "divisive": [stmt(c) for c in m.divisive[:10]],
        "repness": {
            str(g): [{**stmt(r.comment_id), "repful_for": r.repful_for} for r in reps[:5]]
            for g, reps in m.repness.items()
        },
    }


MAX_POLIS_BYTES = 20 * 1024 * 1024


def import_polis(
    s: Session,
    ctx: Ctx,
    topic_id: int,
    comments_csv: bytes,
    votes_csv: bytes,
    *,
    auto_meta: bool = True,
    meta: str = "",
) -> dict[str, Any]:
    """Import a Pol.is conversation (comments.csv + votes.csv) into a topic's opinion map.

    Meta statements — those comments.csv marks (``is-meta``), or, when it has no such column
    and ``auto_meta``, those recognised from their text as describing the participant
    (:mod:`linli.consultation.meta`), plus the ids listed in ``meta`` ("1-14,20") — are stored
    as meta (``moderated`` = -2): left out of the opinion map as Pol.is does, listed for staff
    on the topic page, where they can be restored. The result lists them.
    Everything is read and checked before anything is written: a malformed file saves nothing.
    """
    from linli.consultation.meta import parse_ids
    from linli.consultation.polis import PolisImportError, load_polis_export

    ctx.require(Perm.CONSULTATION_MANAGE)
    t = get_topic(s, ctx, topic_id)
    if len(comments_csv) > MAX_POLIS_BYTES or len(votes_csv) > MAX_POLIS_BYTES:
        raise ValidationFailed("The file is too large.", code="too_large")
    try:
        declared = parse_ids(meta)
    except ValueError as exc:
        raise ValidationFailed(
            "Statement ids must be whole numbers or ranges, e.g. 1-14,20: %(part)s",
            code="bad_id_list",
            field="meta",
            params={"part": str(exc)},
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "comments.csv").write_bytes(comments_csv)
        (Path(tmp) / "votes.csv").write_bytes(votes_csv)
        try:
            conv = load_polis_export(tmp, with_participants=False)
        except PolisImportError as exc:
            raise ValidationFailed(
                "The Pol.is export cannot be read: %(reason)s",
                code="bad_polis_export",
                params={"reason": exc.describe()},
                errors=[exc.to_dict()],
            ) from None
    if any(len(c.text) > 5000 for c in conv.comments):
        raise ValidationFailed("A comment is too long (5000 characters at most).")
    unknown = declared - set(conv.comment_ids)
    if unknown:
        raise ValidationFailed(
            "These statement ids are not in comments.csv: %(ids)s",
            code="unknown_statement",
            field="meta",
            params={"ids": ", ".join(map(str, sorted(unknown)))},
        )
    findings = {f.comment_id: f for f in conv.detected_meta()} if auto_meta else {}
    meta_ids = conv.meta_statements(auto=auto_meta, declared=declared)
    ids: dict[int, int] = {}
    listed: list[dict[str, Any]] = []
    for c in conv.comments:
        if c.moderated < 0:
            moderated = -1
        elif c.comment_id in meta_ids:
            # Pol.is leaves meta statements out of its math exactly as moderated-out ones (its
            # mod-update puts them in mod-out): zeroed in the math and in no list
            moderated = STATEMENT_META
        else:
            moderated = c.moderated if c.moderated else 1
        st = Statement(
            topic_id=t.id,
            text=c.text.strip() or "—",
            moderated=moderated,
            external_id=f"polis:{c.comment_id}",
        )
        s.add(st)
        s.flush()
        ids[c.comment_id] = st.id
        if moderated == STATEMENT_META:
            finding = findings.get(c.comment_id)
            listed.append(
                {
                    "statement_id": st.id,
                    "polis_id": c.comment_id,
                    "text": st.text,
                    # why: the export's is-meta flag, the ids given, or the detected category
                    "source": "export"
                    if c.is_meta
                    else ("declared" if c.comment_id in declared else "detected"),
                    "category": finding.category if finding else None,
                }
            )
    latest: dict[tuple[int, int], tuple[int, int | None]] = {}
    for v in conv.votes:  # only the latest vote per voter and comment counts
        key = (v.participant_id, v.comment_id)
        prev = latest.get(key)
        if prev is None or (v.timestamp or 0) >= (prev[1] or 0):
            latest[key] = (v.vote, v.timestamp)
    s.add_all(
        StatementVote(topic_id=t.id, statement_id=ids[cid], participant=f"polis:{pid}", vote=vote)
        for (pid, cid), (vote, _) in latest.items()
    )
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "topic.polis_imported",
        "topic",
        t.id,
        community_id=ctx.community_id,
        details={
            "comments": len(ids),
            "votes": len(latest),
            "meta": len(listed),
            "meta_polis_ids": [m["polis_id"] for m in listed],
            "auto_meta": auto_meta,
        },
    )
    return {
        "statements": len(ids),
        "votes": len(latest),
        "meta": len(listed),
        "meta_statements": listed,
    }


# -- polls ------------------------------------------------------------------------------------

OWNER_OPTIONS = ("agree", "disagree", "abstain")


def get_poll(s: Session, ctx: Ctx, poll_id: int) -> Poll:
    ctx.require(Perm.CONSULTATION_READ)
    p = s.get(Poll, poll_id)
    if p is None or p.community_id != ctx.community_id:
        raise NotFound("Vote not found.", code="poll_not_found")
    return p


def list_polls(s: Session, ctx: Ctx, topic_id: int | None = None) -> list[Poll]:
    ctx.require(Perm.CONSULTATION_READ)
    q = select(Poll).where(Poll.community_id == ctx.community_id)
    if topic_id is not None:
        q = q.where(Poll.topic_id == topic_id)
    return list(s.scalars(q.order_by(Poll.id.desc())))


def poll_options(s: Session, poll_id: int) -> list[PollOption]:
    q = select(PollOption).where(PollOption.poll_id == poll_id).order_by(PollOption.position)
    return list(s.scalars(q))


def voter_count(s: Session, poll_id: int) -> int:
    return s.scalar(select(func.count()).where(PollVoter.poll_id == poll_id)) or 0


def create_poll(s: Session, ctx: Ctx, data: PollIn) -> Poll:
    ctx.require(Perm.CONSULTATION_MANAGE)
    if data.topic_id is not None:
        get_topic(s, ctx, data.topic_id)
    options = list(data.options)
    unit = data.unit
    if data.kind == "owners":
        options = list(OWNER_OPTIONS)
        unit = "owner"
    elif len(options) < 2:
        raise ValidationFailed("A vote needs at least two options.", field="options")
    if data.kind != "owners" and data.special_matter:
        raise ValidationFailed(
            "Only owners' assembly decisions have special matters.", field="special_matter"
        )
    max_choices = data.max_choices if data.kind == "multiple" else 1
    if max_choices > len(options):
        raise ValidationFailed("More choices allowed than there are options.", field="max_choices")
    p = Poll(
        community_id=ctx.community_id,
        topic_id=data.topic_id,
        title=data.title,
        description=data.description,
        kind=data.kind,
        unit=unit,
        secret=data.secret,
        special_matter=data.special_matter,
        max_choices=max_choices,
        quorum=data.quorum,
        threshold=data.threshold,
        status="open",
        closes_at=_aware(ctx, data.closes_at) if data.closes_at else None,
        created_by_user_id=ctx.user_id,
    )
    s.add(p)
    s.flush()
    for i, label in enumerate(options):
        s.add(PollOption(poll_id=p.id, label=label, position=i))
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "poll.created",
        "poll",
        p.id,
        community_id=ctx.community_id,
        details={
            "kind": p.kind,
            "unit": p.unit,
            "secret": p.secret,
            "special_matter": p.special_matter,
        },
    )
    events.emit(s, "consultation.poll.opened", {"id": p.id}, community_id=ctx.community_id)
    return p


def owners_of(s: Session, community_id: int) -> dict[int, float]:
    """Eligible owners of the community (resident id -> counted area), see tally.owner_register."""
    rows = s.execute(
        select(Ownership.id, Ownership.resident_id, Ownership.unit_id).where(
            Ownership.community_id == community_id
        )
    ).all()
    areas = dict(
        s.execute(select(Unit.id, Unit.area_m2).where(Unit.community_id == community_id)).all()
    )
    return tally.owner_register([(r[0], r[1], r[2]) for r in rows], areas)


def _voter_key(s: Session, ctx: Ctx, p: Poll) -> tuple[str, int, float]:
    rid = _own_resident_id(ctx)
    r = s.get(Resident, rid) if rid is not None else None
    if r is None or r.community_id != ctx.community_id:
        raise Forbidden("Only registered residents can vote.", code="not_a_resident")
    if p.unit == "household":
        if r.household_id is None:
            raise Forbidden("You are not registered in a household.", code="no_household")
        return f"h:{r.household_id}", r.id, 0.0
    if p.unit == "owner":
        owners = owners_of(s, ctx.community_id)
        if r.id not in owners:
            raise Forbidden(
                "Only owners (the designated owner of a unit) can vote in an owners' assembly.",
                code="not_an_owner",
            )
        return f"o:{r.id}", r.id, owners[r.id]
    return f"r:{r.id}", r.id, 0.0


def cast_ballot(s: Session, ctx: Ctx, poll_id: int, choices: list[int]) -> None:
    """One person (or household, or owner) one vote: the register row is unique per poll."""
    ctx.require(Perm.CONSULTATION_READ)
    p = get_poll(s, ctx, poll_id)
    now = utcnow()
    if p.status != "open" or (p.closes_at is not None and p.closes_at <= now):
        raise Conflict("Voting on this has closed.", code="poll_closed")
    key, rid, area = _voter_key(s, ctx, p)
    valid = {o.id for o in poll_options(s, p.id)}
    if len(set(choices)) != len(choices) or not set(choices) <= valid:
        raise ValidationFailed("Choose among the options of this vote.", field="choices")
    if p.kind in ("single", "owners") and len(choices) != 1:
        raise ValidationFailed("Choose exactly one option.", field="choices")
    if p.kind == "multiple" and len(choices) > p.max_choices:
        raise ValidationFailed(
            "Choose at most %(n)s options.", field="choices", params={"n": p.max_choices}
        )
    try:
        with s.begin_nested():
            s.add(
                PollVoter(
                    poll_id=p.id, voter_key=key, resident_id=rid, user_id=ctx.user_id, voted_at=now
                )
            )
            s.flush()
    except IntegrityError:
        raise Conflict("You have already voted.", code="already_voted") from None
    s.add(
        PollBallot(
            id=secrets.token_hex(16),
            poll_id=p.id,
            voter_key=None if p.secret else key,
            choices=list(choices),
            area_m2=area,
        )
    )
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "poll.voted",
        "poll",
        p.id,
        community_id=ctx.community_id,
        details={"voter": key} if not p.secret else {"secret": True},
    )


def has_voted(s: Session, ctx: Ctx, p: Poll) -> bool:
    rid = _own_resident_id(ctx)
    if rid is None:
        return False
    q = select(PollVoter.id).where(PollVoter.poll_id == p.id, PollVoter.resident_id == rid)
    if p.unit == "household":
        r = s.get(Resident, rid)
        if r is None or r.household_id is None:
            return False
        q = select(PollVoter.id).where(
            PollVoter.poll_id == p.id, PollVoter.voter_key == f"h:{r.household_id}"
        )
    return s.scalar(q) is not None


def _eligible(s: Session, p: Poll) -> int:
    if p.unit == "owner":
        return len(owners_of(s, p.community_id))
    if p.unit == "household":
        return s.scalar(select(func.count()).where(Household.community_id == p.community_id)) or 0
    return s.scalar(select(func.count()).where(Resident.community_id == p.community_id)) or 0


def compute_result(s: Session, p: Poll) -> dict[str, Any]:
    options = poll_options(s, p.id)
    ids = [o.id for o in options]
    ballots = list(s.scalars(select(PollBallot).where(PollBallot.poll_id == p.id)))
    if p.kind == "owners":
        by_pos = {o.id: OWNER_OPTIONS[o.position] for o in options}
        register = owners_of(s, p.community_id)  # taken at closing
        res = tally.owners_decision(
            len(register),
            sum(register.values()),
            [(b.area_m2, by_pos[b.choices[0]]) for b in ballots],
            special_matter=p.special_matter,
        )
        return {**res.to_dict(), "kind": "owners"}
    eligible = _eligible(s, p)
    if p.kind == "ranked":
        irv = tally.instant_runoff(ids, [b.choices for b in ballots])
        n = len(ballots)
        quorum_met = n > 0 and (not p.quorum or (eligible > 0 and n / eligible >= p.quorum))
        return {
            **irv,
            "kind": "ranked",
            "eligible": eligible,
            "quorum_met": quorum_met,
            "winners": [irv["winner"]] if irv["winner"] is not None and quorum_met else [],
        }
    out = tally.choice_tally(
        ids,
        [b.choices for b in ballots],
        eligible=eligible,
        quorum=p.quorum,
        threshold=p.threshold,
    )
    out["kind"] = p.kind
    return out


def close_poll(s: Session, ctx: Ctx, poll_id: int) -> Poll:
    ctx.require(Perm.CONSULTATION_MANAGE)
    p = get_poll(s, ctx, poll_id)
    if p.status == "closed":
        raise Conflict("The vote is already closed.", code="poll_closed")
    p.status = "closed"
    p.closed_at = utcnow()
    p.result = compute_result(s, p)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "poll.closed",
        "poll",
        p.id,
        community_id=ctx.community_id,
        details={"result": p.result},
    )
    events.emit(s, "consultation.poll.closed", {"id": p.id}, community_id=ctx.community_id)
    return p


# -- outcomes and notifications ---------------------------------------------------------------


def set_mailer(mailer: Mailer | None) -> None:
    """Send notification e-mail through ``mailer`` (``None``: no e-mail); see linli.core.mail."""
    mail.configure(mailer)


def notify(
    s: Session,
    community_id: int | None,
    user_ids: Sequence[int],
    title: str,
    body: str | None = None,
    link: str | None = None,
) -> int:
    """In-app notifications for these users, and e-mail to those with an address.

    ``title`` is an English source string (``N_``), stored untranslated and shown in each
    reader's language; ``body`` is the residents' or staff's own text. The e-mail goes out
    after the transaction commits (event ``consultation.notification.created``, one per
    notification), in the recipient's language, when a mailer is configured
    (linli.core.mail)."""
    n = 0
    for uid in dict.fromkeys(user_ids):
        note = Notification(
            community_id=community_id, user_id=uid, title=title, body=body, link=link
        )
        s.add(note)
        s.flush()
        events.emit(
            s,
            "consultation.notification.created",
            {"notification_id": note.id},
            community_id=community_id,
        )
        n += 1
    return n


def mail_notification(s: Session, notification_id: int) -> bool:
    """E-mail one notification to its user in the user's language. True when sent.

    Nothing is sent without a mailer, an address or the notification; an SMTP failure raises
    (``OSError``) so that the event is delivered again later."""
    from linli.core.i18n import translate_in

    mailer = mail.get_mailer()
    note = s.get(Notification, notification_id)
    if mailer is None or note is None:
        return False
    user = s.get(User, note.user_id)
    if user is None or not user.email or not user.is_active:
        return False
    lang = user.language or platform_language()
    subject = translate_in(lang, note.title)
    parts = [subject]
    if note.body:
        parts.append(note.body)
    if note.link:
        parts.append(translate_in(lang, "Open in Linli: %(link)s", link=note.link))
    mailer.send(user.email, f"[{translate_in(lang, 'Linli')}] {subject}", "\n\n".join(parts))
    return True


def unread_count(s: Session, user_id: int | None) -> int:
    if user_id is None:
        return 0
    q = select(func.count()).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    return s.scalar(q) or 0


def my_notifications(s: Session, user_id: int | None, limit: int = 100) -> list[Notification]:
    if user_id is None:
        return []
    q = select(Notification).where(Notification.user_id == user_id)
    return list(s.scalars(q.order_by(Notification.id.desc()).limit(limit)))


def open_notification(s: Session, user_id: int | None, notification_id: int) -> str | None:
    """Mark one of the user's notifications read; returns where it points (an in-app path).

    Someone else's notification is not found (``NotFound``), as if it did not exist."""
    note = s.get(Notification, notification_id)
    if user_id is None or note is None or note.user_id != user_id:
        raise NotFound("Notification not found.", code="notification_not_found")
    if note.read_at is None:
        note.read_at = utcnow()
        s.flush()
    link = note.link or ""
    # only paths inside Linli: never an open redirect
    return link if link.startswith("/") and not link.startswith("//") else None


def notification_timezones(s: Session, notes: Sequence[Notification]) -> dict[int | None, str]:
    """Community id -> its time zone, for showing notifications of several communities."""
    ids = {n.community_id for n in notes if n.community_id is not None}
    out: dict[int | None, str] = {None: "Asia/Shanghai"}
    if ids:
        from linli.people.models import Community

        for cid, tz in s.execute(
            select(Community.id, Community.timezone).where(Community.id.in_(ids))
        ):
            out[cid] = tz
    return out


def mark_read(s: Session, user_id: int | None) -> None:
    if user_id is None:
        return
    for n in s.scalars(
        select(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    ):
        n.read_at = utcnow()
    s.flush()


def get_action(s: Session, ctx: Ctx, action_id: int) -> ActionItem:
    ctx.require(Perm.CONSULTATION_READ)
    a = s.get(ActionItem, action_id)
    if a is None or a.community_id != ctx.community_id:
        raise NotFound("Action item not found.", code="action_not_found")
    return a


def list_actions(s: Session, ctx: Ctx) -> list[ActionItem]:
    ctx.require(Perm.CONSULTATION_READ)
    q = select(ActionItem).where(ActionItem.community_id == ctx.community_id)
    return list(s.scalars(q.order_by(ActionItem.id.desc())))


def create_action(s: Session, ctx: Ctx, data: ActionIn) -> ActionItem:
    ctx.require(Perm.CONSULTATION_MANAGE)
    if data.topic_id is not None:
        get_topic(s, ctx, data.topic_id)
    if data.poll_id is not None:
        get_poll(s, ctx, data.poll_id)
    a = ActionItem(community_id=ctx.community_id, **data.model_dump())
    s.add(a)
    s.flush()
    audit.record(s, ctx.actor, "action.created", "action", a.id, community_id=ctx.community_id)
    if a.owner_user_id is not None:
        notify(
            s,
            ctx.community_id,
            [a.owner_user_id],
            N_("An action item was assigned to you."),
            a.title,
            f"/c/{ctx.community_id}/consultation/actions",
        )
    return a


def follow_action(s: Session, ctx: Ctx, action_id: int) -> None:
    ctx.require(Perm.CONSULTATION_READ)
    a = get_action(s, ctx, action_id)
    if ctx.user_id is None:
        raise Forbidden("This action needs a user, not an API token.")
    exists = s.scalar(
        select(ActionFollow.id).where(
            ActionFollow.action_id == a.id, ActionFollow.user_id == ctx.user_id
        )
    )
    if exists is None:
        s.add(ActionFollow(action_id=a.id, user_id=ctx.user_id))
        s.flush()


def update_action(s: Session, ctx: Ctx, action_id: int, data: ActionUpdateIn) -> ActionItem:
    a = get_action(s, ctx, action_id)
    if not _is_manager(ctx) and a.owner_user_id != ctx.user_id:
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    a.progress = data.progress
    a.status = data.status or ("done" if data.progress == 100 else "in_progress")
    s.add(
        ActionUpdate(action_id=a.id, text=data.text, progress=data.progress, author=ctx.actor.name)
    )
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "action.updated",
        "action",
        a.id,
        community_id=ctx.community_id,
        details={"progress": a.progress, "status": a.status},
    )
    followers = list(s.scalars(select(ActionFollow.user_id).where(ActionFollow.action_id == a.id)))
    notify(
        s,
        ctx.community_id,
        followers,
        N_("An action item you follow has progressed."),
        f"{a.title}: {data.text[:200]}",
        f"/c/{ctx.community_id}/consultation/actions",
    )
    return a


def action_updates(s: Session, action_id: int) -> list[ActionUpdate]:
    q = select(ActionUpdate).where(ActionUpdate.action_id == action_id).order_by(ActionUpdate.id)
    return list(s.scalars(q))


# -- dashboard --------------------------------------------------------------------------------


def dashboard(s: Session, ctx: Ctx, now: datetime | None = None) -> dict[str, Any]:
    """Participation per building, demand categories per month, response / resolution times."""
    ctx.require(Perm.CONSULTATION_MANAGE)
    now = now or utcnow()
    cid = ctx.community_id
    buildings = {
        b.id: b.name for b in s.scalars(select(Building).where(Building.community_id == cid))
    }
    residents_per_building: Counter[int] = Counter()
    res_building: dict[int, int] = {}
    for rid, bid in s.execute(
        select(Resident.id, Unit.building_id)
        .join(Household, Resident.household_id == Household.id)
        .join(Unit, Household.unit_id == Unit.id)
        .where(Resident.community_id == cid)
    ).all():
        residents_per_building[bid] += 1
        res_building[rid] = bid
    active: dict[int, set[int]] = defaultdict(set)
    for (voter,) in s.execute(
        select(Demand.resident_id).where(
            Demand.community_id == cid, Demand.resident_id.is_not(None)
        )
    ).all():
        if voter in res_building:
            active[res_building[voter]].add(voter)
    for (voter,) in s.execute(
        select(PollVoter.resident_id)
        .join(Poll, Poll.id == PollVoter.poll_id)
        .where(Poll.community_id == cid, PollVoter.resident_id.is_not(None))
    ).all():
        if voter in res_building:
            active[res_building[voter]].add(voter)
    participation = [
        {
            "building": name,
            "residents": residents_per_building.get(bid, 0),
            "participants": len(active.get(bid, set())),
            "rate": round(len(active.get(bid, set())) / residents_per_building[bid], 3)
            if residents_per_building.get(bid)
            else 0.0,
        }
        for bid, name in sorted(buildings.items(), key=lambda x: x[1])
    ]
    months: dict[str, Counter[str]] = defaultdict(Counter)
    respond: list[float] = []
    resolve: list[float] = []
    for d in s.scalars(select(Demand).where(Demand.community_id == cid)):
        months[d.created_at.strftime("%Y-%m")][d.category] += 1
        if d.replied_at is not None:
            respond.append((d.replied_at - d.created_at).total_seconds() / 3600)
        if d.resolved_at is not None:
            resolve.append((d.resolved_at - d.created_at).total_seconds() / 3600)

    def avg(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 1) if xs else None

    total = sum(sum(c.values()) for c in months.values())
    return {
        "participation": participation,
        "categories": {m: dict(c) for m, c in sorted(months.items())},
        "demands": total,
        "avg_response_hours": avg(respond),
        "avg_resolution_hours": avg(resolve),
        "resolved": len(resolve),
    }


def staff_user_ids(s: Session, community_id: int) -> list[int]:
    q = select(RoleGrant.user_id).where(
        RoleGrant.community_id == community_id, RoleGrant.role == Role.STAFF.value
    )
    return list(s.scalars(q))
