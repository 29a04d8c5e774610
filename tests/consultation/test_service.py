"""Consultation services on a real database: demands, topics, moderation, votes, tallies."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from linli.consultation import service, tally
from linli.consultation.models import PollBallot, PollVoter
from linli.consultation.schemas import (
    ActionIn,
    ActionUpdateIn,
    CommentIn,
    DemandIn,
    DemandReplyIn,
    PollIn,
    TopicIn,
)
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.events import Dispatcher, InProcessBus
from linli.core.models import AuditEntry, RoleGrant, User
from linli.core.web import Principal, build_ctx, system_ctx
from linli.people.models import Household, Ownership, Professional, Resident, Unit

# -- pure tally functions ----------------------------------------------------------------------


def test_owners_exactly_two_thirds_participation_passes() -> None:
    reg = {1: 100.0, 2: 100.0, 3: 100.0}
    r = tally.owners_tally(reg, [(1, "agree"), (2, "agree")])
    assert r.quorum_met and r.approved
    r = tally.owners_tally(reg, [(1, "agree")])
    assert not r.quorum_met and not r.approved


def test_owners_area_and_headcount_both_needed() -> None:
    # owner 1 holds most of the area; 2 of 3 heads vote but with little area
    reg = {1: 500.0, 2: 50.0, 3: 50.0}
    r = tally.owners_tally(reg, [(2, "agree"), (3, "agree")])
    assert not r.quorum_met  # 100 / 600 area
    r = tally.owners_tally(reg, [(1, "agree"), (2, "disagree"), (3, "disagree")])
    assert r.quorum_met and not r.approved  # area > 1/2 but headcount 1/3
    assert any("owners" in x for x in r.reasons)


def test_owners_tie_is_not_more_than_half() -> None:
    reg = {1: 80.0, 2: 80.0, 3: 80.0, 4: 80.0}
    r = tally.owners_tally(reg, [(1, "agree"), (2, "agree"), (3, "disagree"), (4, "disagree")])
    assert r.quorum_met and not r.approved


def test_owners_special_matter_three_quarters() -> None:
    reg = {i: 90.0 for i in range(1, 5)}
    ballots = [(1, "agree"), (2, "agree"), (3, "agree"), (4, "disagree")]
    assert tally.owners_tally(reg, ballots, special_matter=True).approved  # exactly 3/4
    ballots[2] = (3, "abstain")
    assert not tally.owners_tally(reg, ballots, special_matter=True).approved
    assert not tally.owners_tally(reg, ballots, special_matter=False).approved  # 2/4


def test_owners_several_units_counted_once_and_co_owners() -> None:
    # ownership (id, resident, unit): resident 1 owns units 10 and 11; unit 12 co-owned by 2, 3
    reg = tally.owner_register(
        [(1, 1, 10), (2, 1, 11), (3, 3, 12), (4, 2, 12)], {10: 90.0, 11: 60.5, 12: 100.0}
    )
    assert reg == {1: 150.5, 3: 100.0}  # 3 was registered first for unit 12
    with pytest.raises(ValueError):
        tally.owners_tally(reg, [(2, "agree")])  # co-owner who is not designated: refused
    with pytest.raises(ValueError):
        tally.owners_tally(reg, [(1, "agree"), (1, "agree")])
    r = tally.owners_tally(reg, [(1, "agree"), (3, "disagree")])
    assert r.total_owners == 2 and r.voted_area == 250.5
    assert r.approved is False  # headcount 1 of 2 is not more than half


def test_owners_exact_thresholds_with_decimal_areas() -> None:
    # 33.3 m² each: two owners hold exactly 2/3 of 99.9 m² (exact arithmetic, not floats)
    reg = {1: 33.3, 2: 33.3, 3: 33.3}
    r = tally.owners_tally(reg, [(1, "agree"), (2, "abstain")])
    assert r.quorum_met and r.voted_area == 66.6
    assert not r.approved  # abstaining participants count in the denominators: 1 of 2
    # exactly 3/4 of the participating area and headcount passes a special matter ("以上")
    reg = {1: 30.1, 2: 30.1, 3: 30.1, 4: 30.1}
    ballots = [(1, "agree"), (2, "agree"), (3, "agree"), (4, "disagree")]
    assert tally.owners_tally(reg, ballots, special_matter=True).approved


def test_owners_area_tie_or_headcount_tie_fails() -> None:
    # 3 of 4 owners agree (headcount 3/4) but hold exactly half of the participating area
    reg = {1: 50.0, 2: 50.0, 3: 50.0, 4: 150.0}
    r = tally.owners_tally(reg, [(1, "agree"), (2, "agree"), (3, "agree"), (4, "disagree")])
    assert r.quorum_met and not r.approved
    assert r.reasons == ["agreeing area not more than 1/2 of the participating area"]
    # special matter: 3/4 of the area but only 2 of 4 heads
    reg = {1: 200.0, 2: 100.0, 3: 50.0, 4: 50.0}
    r = tally.owners_tally(
        reg, [(1, "agree"), (2, "agree"), (3, "disagree"), (4, "disagree")], special_matter=True
    )
    assert r.agree_area == 300.0 and not r.approved
    assert r.reasons == ["agreeing owners not 3/4 of the participating owners"]
    # nobody voted: neither quorum nor approval, no division by zero
    r = tally.owners_tally(reg, [])
    assert not r.quorum_met and not r.approved


def test_owner_of_several_units_outweighs_but_counts_once() -> None:
    # owner 1 holds 4 units (400 m²), owners 2 and 3 one each: 1 head of 3, 2/3 of the area
    reg = tally.owner_register(
        [(1, 1, 10), (2, 1, 11), (3, 1, 12), (4, 1, 13), (5, 2, 14), (6, 3, 15)],
        {u: 100.0 for u in range(10, 16)},
    )
    assert reg == {1: 400.0, 2: 100.0, 3: 100.0}
    r = tally.owners_tally(reg, [(1, "agree"), (2, "agree")])
    assert r.quorum_met and r.approved and r.total_owners == 3
    r = tally.owners_tally(reg, [(1, "agree"), (2, "disagree")])  # 1 of 2 heads: a tie
    assert r.quorum_met and not r.approved and r.agree_area == 400.0


def test_choice_tally_quorum_threshold_tie() -> None:
    r = tally.choice_tally([1, 2], [[1], [2]], eligible=4)
    assert r["tie"] and r["winners"] == []
    r = tally.choice_tally([1, 2], [[1], [1], [2]], eligible=10, quorum=0.5)
    assert not r["quorum_met"] and r["winners"] == []
    r = tally.choice_tally([1, 2, 3], [[1, 2], [1], [2, 3]], eligible=3, threshold=0.5)
    assert r["winners"] == [1, 2]


def test_instant_runoff() -> None:
    ballots = [[1, 2]] * 4 + [[2, 1]] * 3 + [[3, 2]] * 2
    r = tally.instant_runoff([1, 2, 3], ballots)
    assert r["winner"] == 2 and len(r["rounds"]) == 2
    assert tally.instant_runoff([1, 2], [[1], [2]])["tie"]
    assert tally.instant_runoff([1, 2], [])["winner"] is None


# -- services --------------------------------------------------------------------------------


def _ctx(s, world, name):  # type: ignore[no-untyped-def]
    from linli.core.web import _load_user_principal

    user = s.get(User, world.users[name])
    p: Principal = _load_user_principal(s, user, None)
    return build_ctx(s, p, world.a)


def test_category_suggestion_and_grouping() -> None:
    assert service.suggest_category("3号楼电梯又坏了，老人被困") == "elevator"
    assert service.suggest_category("The streetlight near the gate is broken, too dark") == (
        "lighting"
    )
    assert service.suggest_category("垃圾桶满了，臭味很大") == "sanitation"
    groups = service.group_similar(
        ["小区东门乱停车堵住消防通道", "东门乱停车太严重", "希望增加健身器材"]
    )
    assert [0, 1] in groups and [2] in groups


def test_demand_lifecycle_anonymous_and_work_order(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        rc = _ctx(s, world, "resident")
        d = service.submit_demand(
            s,
            rc,
            DemandIn(text="2号楼电梯经常停运", anonymous=True, building_id=world.buildings_a[1]),
        )
        assert d.category == "elevator" and d.resident_id == world.residents_a[0]
        out = service.demand_out(s, d)
        assert out.author is None and out.anonymous
        assert [x.id for x in service.list_demands(s, rc)] == [d.id]
        # another resident cannot see it
        sc = _ctx(s, world, "staff")
        d = service.demand_to_order(s, sc, d.id, "major")
        assert d.work_order_id is not None and d.status == "accepted"
        again = service.demand_to_order(s, sc, d.id)
        assert again.work_order_id == d.work_order_id
        name = service.reveal_author(s, sc, d.id, "abusive content")
        assert name is not None
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "demand.author_revealed"))
        service.reply_demand(s, sc, d.id, DemandReplyIn(reply="已派单维修", status="in_progress"))
        assert service.unread_count(s, world.users["resident"]) == 1
        with pytest.raises(Forbidden):
            service.reveal_author(s, rc, d.id, "curious")
        pc = _ctx(s, world, "pro")
        with pytest.raises(NotFound):
            service.get_demand(s, pc, d.id)
        with pytest.raises(Forbidden):  # a professional without a resident record
            service.submit_demand(s, pc, DemandIn(text="hello"))
        # the work order resolving resolves the demand
        service.on_work_order_changed(
            s, world.a, {"source_ref": f"demand:{d.id}", "status": "resolved"}
        )
        assert d.status == "resolved" and d.resolved_at is not None


def test_hot_issues_rank_distinct_residents(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        for rid in world.residents_a:
            service.submit_demand(s, sc, DemandIn(text="东门乱停车堵住消防通道", resident_id=rid))
        service.submit_demand(
            s, sc, DemandIn(text="东门乱停车堵住消防通道了", resident_id=world.residents_a[0])
        )
        service.submit_demand(s, sc, DemandIn(text="希望增加儿童游乐设施", channel="phone"))
        hot = service.hot_issues(s, sc)
        assert hot[0].residents == 2 and len(hot[0].demand_ids) == 3


def test_topic_comments_moderation_and_experts(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        pro = Professional(
            community_id=world.a, name="王律师", profession="lawyer", user_id=world.users["pro"]
        )
        s.add(pro)
        s.flush()
        t = service.create_topic(s, sc, TopicIn(title="加装电梯", background="背景"))
        service.invite_expert(s, sc, t.id, pro.id)
        pc = _ctx(s, world, "pro")
        c = service.add_comment(s, pc, t.id, CommentIn(text="依法需要三分之二业主同意"))
        assert c.professional_id == pro.id
        rc = _ctx(s, world, "resident")
        bad = service.add_comment(s, rc, t.id, CommentIn(text="<script>alert(1)</script>"))
        service.report_comment(s, rc, t.id, bad.id, "spam")
        with pytest.raises(Conflict):
            service.report_comment(s, rc, t.id, bad.id, "again")
        with pytest.raises(Forbidden):
            service.hide_comment(s, rc, t.id, bad.id, "no")
        with pytest.raises(ValidationFailed):
            service.hide_comment(s, sc, t.id, bad.id, "  ")
        service.hide_comment(s, sc, t.id, bad.id, "script injection")
        view = service.comment_view(s, rc, bad)
        assert view["text"] is None and view["hidden_reason"] == "script injection"
        assert service.comment_view(s, rc, c)["expert"] is True
        service.set_topic_status(s, sc, t.id, "closed")
        with pytest.raises(Conflict):
            service.add_comment(s, rc, t.id, CommentIn(text="late"))


def test_opinion_map_from_votes(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        t = service.create_topic(s, sc, TopicIn(title="广场舞噪音"))
        st = [service.add_statement(s, sc, t.id, f"观点{i}") for i in range(3)]
        for name, votes in (("staff", (1, 1, -1)), ("resident", (1, -1, 1)), ("pro", (1, -1, 0))):
            ctx = _ctx(s, world, name)
            for x, v in zip(st, votes, strict=True):
                service.vote_statement(s, ctx, t.id, x.id, v)
        service.vote_statement(s, sc, t.id, st[0].id, 1)  # re-vote replaces
        m = service.opinion_map(s, sc, t.id)
        assert m["participants"] == 3 and m["votes"] == 9 and len(m["points"]) == 3
        with pytest.raises(ValidationFailed):
            service.vote_statement(s, sc, t.id, st[0].id, 2)


def test_resident_poll_secret_one_vote(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        p = service.create_poll(
            s, sc, PollIn(title="活动时间", options=["周六", "周日"], secret=True, quorum=0.5)
        )
        opts = service.poll_options(s, p.id)
        rc = _ctx(s, world, "resident")
        service.cast_ballot(s, rc, p.id, [opts[0].id])
        with pytest.raises(Conflict):
            service.cast_ballot(s, rc, p.id, [opts[1].id])
        with pytest.raises(ValidationFailed):
            service.cast_ballot(s, rc, p.id, [opts[0].id, opts[1].id])
        ballot = s.scalar(select(PollBallot).where(PollBallot.poll_id == p.id))
        assert ballot is not None and ballot.voter_key is None  # unlinkable
        assert s.scalar(select(PollVoter.voter_key).where(PollVoter.poll_id == p.id)) == (
            f"r:{world.residents_a[0]}"
        )
        service.close_poll(s, sc, p.id)
        assert p.result is not None and p.result["ballots"] == 1
        assert p.result["quorum_met"] is True  # 1 of 2 residents
        with pytest.raises(Conflict):
            service.cast_ballot(s, rc, p.id, [opts[0].id])


def test_owners_assembly_refuses_non_owner(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        # a tenant with a login in community A: not an owner
        h = s.scalar(select(Household).where(Household.community_id == world.a))
        assert h is not None
        tenant = Resident(community_id=world.a, household_id=h.id, name="租户", tags=[])
        s.add(tenant)
        s.flush()
        u = User(username="tenant", display_name="租户", password_hash="", resident_id=tenant.id)
        s.add(u)
        s.flush()
        s.add(RoleGrant(user_id=u.id, community_id=world.a, role="resident"))
        world.users["tenant"] = u.id
        # the first resident also owns a second unit of 60 m²
        unit = s.scalar(select(Unit).where(Unit.community_id == world.a))
        assert unit is not None
        u2 = Unit(community_id=world.a, building_id=unit.building_id, label="1-102", area_m2=60)
        s.add(u2)
        s.flush()
        s.add(Ownership(community_id=world.a, resident_id=world.residents_a[0], unit_id=u2.id))
        s.flush()
        sc = _ctx(s, world, "staff")
        p = service.create_poll(
            s, sc, PollIn(title="使用维修资金", kind="owners", special_matter=True)
        )
        opts = service.poll_options(s, p.id)
        with pytest.raises(Forbidden):
            service.cast_ballot(s, _ctx(s, world, "tenant"), p.id, [opts[0].id])
        service.cast_ballot(s, _ctx(s, world, "resident"), p.id, [opts[0].id])
        service.close_poll(s, sc, p.id)
        r = p.result
        assert r is not None
        assert r["total_owners"] == 2 and r["total_area"] == 240.0
        assert r["voted_area"] == 150.0 and r["voters"] == 1
        assert r["quorum_met"] is False and r["approved"] is False


def test_household_vote_once_per_household(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        r0 = s.get(Resident, world.residents_a[0])
        assert r0 is not None
        spouse = Resident(community_id=world.a, household_id=r0.household_id, name="配偶", tags=[])
        s.add(spouse)
        s.flush()
        u = User(username="spouse", display_name="配偶", password_hash="", resident_id=spouse.id)
        s.add(u)
        s.flush()
        s.add(RoleGrant(user_id=u.id, community_id=world.a, role="resident"))
        world.users["spouse"] = u.id
        sc = _ctx(s, world, "staff")
        p = service.create_poll(
            s, sc, PollIn(title="方案", kind="ranked", unit="household", options=["A", "B", "C"])
        )
        opts = [o.id for o in service.poll_options(s, p.id)]
        service.cast_ballot(s, _ctx(s, world, "resident"), p.id, [opts[1], opts[0]])
        with pytest.raises(Conflict):
            service.cast_ballot(s, _ctx(s, world, "spouse"), p.id, opts)
        service.close_poll(s, sc, p.id)
        assert p.result is not None and p.result["winner"] == opts[1]


def test_actions_notifications_and_mail(db, world) -> None:  # type: ignore[no-untyped-def]
    sent: list[tuple[str, str, str]] = []

    class FakeSender:
        def send(self, to: str, subject: str, body: str) -> None:
            sent.append((to, subject, body))

    service.set_mailer(FakeSender())
    try:
        with db.session() as s:
            user = s.get(User, world.users["resident"])
            assert user is not None
            user.email = "r@example.org"
            sc = _ctx(s, world, "staff")
            a = service.create_action(
                s,
                sc,
                ActionIn(
                    title="修复路灯", owner_name="物业", owner_user_id=world.users["property"]
                ),
            )
            rc = _ctx(s, world, "resident")
            service.follow_action(s, rc, a.id)
            with pytest.raises(Forbidden):
                service.update_action(s, rc, a.id, ActionUpdateIn(text="x", progress=10))
            service.update_action(
                s, _ctx(s, world, "property"), a.id, ActionUpdateIn(text="已采购灯具", progress=50)
            )
            assert a.status == "in_progress"
            assert service.unread_count(s, world.users["resident"]) == 1
            assert sent == []  # e-mail leaves once the transaction committed
        Dispatcher(db, InProcessBus()).drain()
        assert [to for to, _, _ in sent] == ["r@example.org"]
        with db.session() as s:
            sc = _ctx(s, world, "staff")
            service.mark_read(s, world.users["resident"])
            assert service.unread_count(s, world.users["resident"]) == 0
            d = service.dashboard(s, sc)
            assert {"participation", "categories", "avg_response_hours"} <= set(d)
    finally:
        service.set_mailer(None)


def test_other_community_ids_not_found(db, world) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        t = service.create_topic(s, system_ctx(world.b), TopicIn(title="B topic"))
        with pytest.raises(NotFound):
            service.get_topic(s, _ctx(s, world, "staff"), t.id)


def test_demo_seed(db) -> None:  # type: ignore[no-untyped-def]
    from linli.consultation.demo import seed_consultation
    from linli.people.demo import seed_demo

    with db.session() as s:
        community, _ = seed_demo(s)
        s.flush()
        seed_consultation(s, community.id)
        ctx = system_ctx(community.id)
        topic = service.list_topics(s, ctx)[0]
        m = service.opinion_map(s, ctx, topic.id)
        assert m["groups"] >= 2 and m["participants"] >= 30
        assert service.hot_issues(s, ctx)[0].residents >= 3


def test_polis_import_treats_meta_statements_as_polis_does(db, world) -> None:  # type: ignore[no-untyped-def]
    from linli.consultation.models import STATEMENT_META, Statement

    comments = (
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body,is-meta\n"
        "1,x,0,0,0,0,1,I am between 15 and 19 years old,true\n"
        "1,x,1,1,0,0,1,More trees,false\n"
        "1,x,2,1,0,0,1,Less parking,\n"
    )
    votes = "timestamp,datetime,comment-id,voter-id,vote\n" + "".join(
        f"{i},x,{c},{p},{1 if (p + c) % 2 else -1}\n"
        for i, (p, c) in enumerate((p, c) for p in range(6) for c in range(3))
    )
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        t = service.create_topic(s, sc, TopicIn(title="导入"))
        out = service.import_polis(s, sc, t.id, comments.encode(), votes.encode())
        assert (out["statements"], out["votes"], out["meta"]) == (3, 18, 1)
        assert [(m["polis_id"], m["source"]) for m in out["meta_statements"]] == [(0, "export")]
        mods = {
            st.external_id: st.moderated
            for st in s.scalars(select(Statement).where(Statement.topic_id == t.id))
        }
        # meta statements are left out of the math (Pol.is mod-out), the others are accepted
        assert mods == {"polis:0": STATEMENT_META, "polis:1": 1, "polis:2": 1}
        m = service.opinion_map(s, sc, t.id)
        assert m["participants"] == 6
        bad = comments.replace("years old,true", "years old,perhaps")
        with pytest.raises(ValidationFailed):
            service.import_polis(s, sc, t.id, bad.encode(), votes.encode())


def test_polis_import_recognises_meta_statements_without_an_is_meta_column(db, world) -> None:  # type: ignore[no-untyped-def]
    from linli.consultation.models import STATEMENT_META, Statement

    comments = (
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
        "1,x,0,0,0,0,1,我今年65岁\n"  # the moderator's questionnaire
        "1,x,1,0,0,0,1,我是租户\n"
        "1,x,2,0,0,0,1,I have used the shared bikes\n"
        "1,x,3,4,0,0,1,我觉得应该增加停车位\n"  # opinions
        "1,x,4,5,0,0,1,I am in favour of more benches\n"
        "1,x,5,5,0,0,-1,I am 40 years old\n"  # moderated out stays moderated out
    )
    votes = "timestamp,datetime,comment-id,voter-id,vote\n" + "".join(
        f"{i},x,{c},{p},{1 if (p + c) % 2 else -1}\n"
        for i, (p, c) in enumerate((p, c) for p in range(8) for c in range(6))
    )

    def imported(**options: object) -> tuple[dict[str, object], dict[str, int]]:
        with db.session() as s:
            sc = _ctx(s, world, "staff")
            t = service.create_topic(s, sc, TopicIn(title="导入"))
            out = service.import_polis(s, sc, t.id, comments.encode(), votes.encode(), **options)  # type: ignore[arg-type]
            mods = {
                st.external_id or "": st.moderated
                for st in s.scalars(select(Statement).where(Statement.topic_id == t.id))
            }
            m = service.opinion_map(s, sc, t.id)
            assert m["participants"] == 8
            s.commit()
            return out, mods

    out, mods = imported()
    assert out["meta"] == 3
    assert [(m["polis_id"], m["category"], m["source"]) for m in out["meta_statements"]] == [  # type: ignore[attr-defined]
        (0, "age", "detected"),
        (1, "tenure", "detected"),
        (2, "experience", "detected"),
    ]
    assert mods == {
        "polis:0": STATEMENT_META,
        "polis:1": STATEMENT_META,
        "polis:2": STATEMENT_META,
        "polis:3": 1,
        "polis:4": 1,
        "polis:5": -1,
    }
    # staff override: no detection, or their own list
    out, mods = imported(auto_meta=False)
    assert out["meta"] == 0 and mods["polis:0"] == 1
    out, mods = imported(auto_meta=False, meta="3-4")
    assert [m["source"] for m in out["meta_statements"]] == ["declared", "declared"]  # type: ignore[attr-defined]
    assert (mods["polis:0"], mods["polis:3"], mods["polis:4"]) == (
        1,
        STATEMENT_META,
        STATEMENT_META,
    )
    with pytest.raises(ValidationFailed) as info:
        imported(meta="1-x")
    assert info.value.code == "bad_id_list"
    with pytest.raises(ValidationFailed) as info:
        imported(meta="99")
    assert info.value.code == "unknown_statement"
    # a meta statement can be restored, and a statement marked meta by hand
    with db.session() as s:
        sc = _ctx(s, world, "staff")
        st = s.scalars(select(Statement).where(Statement.external_id == "polis:0")).first()
        assert st is not None
        assert service.moderate_statement(s, sc, st.topic_id, st.id, 1).moderated == 1
        assert (
            service.moderate_statement(s, sc, st.topic_id, st.id, STATEMENT_META).moderated
            == STATEMENT_META
        )
        assert service.moderate_statement(s, sc, st.topic_id, st.id, -7).moderated == -1
