"""Demo data for consultation: demands (some grouped into hot issues), a topic with an expert
panel, a meeting, comments, an opinion map with votes, a household vote, an owners' assembly
decision and action items. Deterministic (seeded)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.consultation import service
from linli.consultation.models import Comment, Demand, StatementVote
from linli.consultation.schemas import (
    ActionIn,
    ActionUpdateIn,
    DemandIn,
    DemandReplyIn,
    MeetingIn,
    PollIn,
    TopicIn,
)
from linli.core.db import utcnow
from linli.core.models import User
from linli.core.web import system_ctx
from linli.people.models import Building, Ownership, Professional, Resident

DEMANDS = (
    "东门乱停车，堵住了消防通道",
    "东门口车辆乱停，消防车进不来",
    "小区东门乱停车严重，消防通道被堵",
    "3号楼电梯经常停运，老人上下楼困难",
    "3号楼电梯又坏了",
    "晚上广场舞噪音太大，影响休息",
    "广场舞音响声音太大，晚上九点后还在跳",
    "路灯坏了好几盏，晚上很黑",
    "垃圾桶满了没人清运，异味很大",
    "希望增加儿童游乐设施",
    "楼道堆放杂物，存在消防隐患",
    "有人遛狗不拴绳，孩子害怕",
)
STATEMENTS = (
    "广场舞应在晚上八点半前结束",
    "应划定专门的广场舞区域，远离住宅楼",
    "音响音量应有上限",
    "广场舞是老年人重要的锻炼方式，不应限制",
    "可以改用无线耳机跳舞",
    "周末可以适当延长时间",
)


def seed_consultation(s: Session, community_id: int) -> None:
    rng = random.Random(278)
    ctx = system_ctx(community_id, "demo")
    residents = list(
        s.scalars(
            select(Resident).where(Resident.community_id == community_id).order_by(Resident.id)
        )
    )
    buildings = list(
        s.scalars(
            select(Building).where(Building.community_id == community_id).order_by(Building.id)
        )
    )
    if not residents:
        return
    now = utcnow()
    demands: list[Demand] = []
    for i, text in enumerate(DEMANDS):
        r = residents[(i * 7) % len(residents)]
        d = service.submit_demand(
            s,
            ctx,
            DemandIn(
                text=text,
                resident_id=r.id,
                channel="app" if i % 3 else "phone",
                anonymous=i % 4 == 1,
                building_id=buildings[i % len(buildings)].id if buildings else None,
            ),
        )
        d.created_at = now - timedelta(days=rng.randint(1, 80), hours=rng.randint(0, 23))
        demands.append(d)
    s.flush()
    service.reply_demand(
        s, ctx, demands[7].id, DemandReplyIn(reply="已更换灯泡。", status="resolved")
    )
    service.demand_to_order(s, ctx, demands[3].id, "major")

    topic = service.create_topic(
        s,
        ctx,
        TopicIn(
            title="广场舞噪音与居民休息",
            background="多位居民反映晚间广场舞噪音扰民；也有老年居民希望保留锻炼场地。",
            demand_ids=[demands[5].id, demands[6].id],
        ),
    )
    for p in s.scalars(
        select(Professional).where(Professional.community_id == community_id).limit(2)
    ):
        service.invite_expert(s, ctx, topic.id, p.id)
    service.add_meeting(
        s,
        ctx,
        topic.id,
        MeetingIn(
            title="居民议事会",
            mode="on_site",
            starts_at=now + timedelta(days=7),
            place="社区活动中心二楼",
            agenda="1. 情况介绍\n2. 各方意见\n3. 形成方案",
        ),
    )
    for i, text in enumerate(("建议错峰跳舞", "可以降低音量，大家互相体谅")):
        s.add(
            Comment(
                topic_id=topic.id,
                author_user_id=None,
                author_name=residents[i].name,
                text=text,
            )
        )
    statements = [service.add_statement(s, ctx, topic.id, t) for t in STATEMENTS]
    # two camps of residents, voting with some noise
    for j, r in enumerate(residents[:60]):
        camp = j % 2
        for k, st in enumerate(statements):
            if rng.random() < 0.2:
                continue
            lean = 1 if (k in (0, 1, 2) and camp == 0) or (k in (3, 5) and camp == 1) else -1
            if k == 1 or rng.random() < 0.15:
                lean = 1 if k == 1 else 0
            s.add(
                StatementVote(
                    topic_id=topic.id, statement_id=st.id, participant=f"demo:{r.id}", vote=lean
                )
            )
    s.flush()

    service.create_poll(
        s,
        ctx,
        PollIn(
            title="广场舞时间方案",
            topic_id=topic.id,
            kind="ranked",
            unit="household",
            options=["19:00–20:30", "18:30–20:00", "19:30–21:00"],
        ),
    )
    owners = list(
        s.scalars(
            select(Ownership.resident_id).where(Ownership.community_id == community_id).distinct()
        )
    )
    service.create_poll(
        s,
        ctx,
        PollIn(
            title="使用专项维修资金更换3号楼电梯",
            kind="owners",
            special_matter=True,
            secret=True,
            description=f"共有 {len(owners)} 位业主有表决权。",
        ),
    )
    a = service.create_action(
        s,
        ctx,
        ActionIn(
            title="在广场东侧划定活动区域并设置音量提示牌",
            owner_name="社区居委会",
            topic_id=topic.id,
            due_date=(now + timedelta(days=30)).date(),
        ),
    )
    service.update_action(s, ctx, a.id, ActionUpdateIn(text="已完成现场勘查。", progress=30))
    for u in s.scalars(select(User).where(User.resident_id.is_not(None)).limit(3)):
        service.notify(
            s, community_id, [u.id], "An action item you follow has progressed.", a.title
        )
    s.flush()
