"""Pages of the consultation domain: demands, topics, opinion maps, votes, outcomes, dashboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from linli.consultation import service
from linli.consultation.models import DEMAND_STATUSES, POLL_KINDS, POLL_UNITS, STATEMENT_META
from linli.consultation.schemas import (
    ActionIn,
    ActionUpdateIn,
    CommentIn,
    DemandIn,
    DemandReplyIn,
    MeetingIn,
    PollIn,
    StatementIn,
    TopicIn,
)
from linli.core import i18n, nav
from linli.core.errors import AppError, TooLarge
from linli.core.i18n import N_
from linli.core.roles import Perm
from linli.core.web import (
    Ctx,
    Principal,
    current_principal,
    flash,
    form_errors,
    get_session,
    page_router,
    render,
    require,
)
from linli.people import service as people
from linli.workorders.api import MAX_PHOTO_BYTES, check_photo
from linli.workorders.models import CATEGORIES

router = page_router()
READ = Depends(require(Perm.CONSULTATION_READ))
MANAGE = Depends(require(Perm.CONSULTATION_MANAGE))

nav.register(
    nav.NavItem("consultation", N_("Consultation"), "/consultation", Perm.CONSULTATION_READ),
    nav.NavItem(
        "consultation", N_("Raise a concern"), "/consultation/demands/new", Perm.CONSULTATION_READ
    ),
    nav.NavItem("consultation", N_("Demands"), "/consultation/demands", Perm.CONSULTATION_READ),
    nav.NavItem(
        "consultation", N_("Action items"), "/consultation/actions", Perm.CONSULTATION_READ
    ),
    nav.NavItem(
        "consultation", N_("Notifications"), "/consultation/notifications", Perm.CONSULTATION_READ
    ),
    nav.NavItem(
        "consultation",
        N_("Consultation dashboard"),
        "/consultation/dashboard",
        Perm.CONSULTATION_MANAGE,
    ),
)

LABELS: dict[str, str] = {
    "facility": N_("facilities"),
    "fire_safety": N_("fire safety"),
    "water": N_("water"),
    "electric": N_("electricity"),
    "elevator": N_("elevator"),
    "lighting": N_("lighting"),
    "sanitation": N_("sanitation"),
    "security": N_("security"),
    "wellbeing": N_("wellbeing"),
    "parking": N_("parking"),
    "environment": N_("environment"),
    "neighbourhood": N_("neighbourhood"),
    "other": N_("other"),
    "submitted": N_("submitted"),
    "accepted": N_("accepted"),
    "in_progress": N_("in progress"),
    "resolved": N_("resolved"),
    "closed": N_("closed"),
    "rejected": N_("rejected"),
    "open": N_("open"),
    "done": N_("done"),
    "app": N_("app"),
    "phone": N_("phone"),
    "in_person": N_("in person"),
    "online": N_("online"),
    "on_site": N_("on site"),
    "single": N_("single choice"),
    "multiple": N_("multiple choice"),
    "ranked": N_("ranked (instant-runoff)"),
    "owners": N_("owners' assembly (Civil Code art. 278)"),
    "resident": N_("one vote per resident"),
    "household": N_("one vote per household"),
    "owner": N_("one vote per owner"),
    "agree": N_("agree"),
    "disagree": N_("disagree"),
    "abstain": N_("abstain"),
    "lawyer": N_("lawyer"),
    "teacher": N_("teacher"),
    "police_officer": N_("police officer"),
    "property_manager": N_("property manager"),
    "doctor": N_("doctor"),
    "social_worker": N_("social worker"),
    "engineer": N_("engineer"),
}


def _page(request: Request, s: Session, ctx: Ctx, template: str, **extra: Any) -> Response:
    request.state.principal = ctx.principal
    status = extra.pop("status", 200)
    extra.setdefault("errors", {})
    extra.setdefault("form", {})
    extra.update(
        community=people.get_community(s, ctx),
        labels=LABELS,
        manager=ctx.can(Perm.CONSULTATION_MANAGE),
        unread=service.unread_count(s, ctx.user_id),
        base=f"/c/{ctx.community_id}/consultation",
    )
    return render(request, template, extra, status=status)


def _g(form: Any, key: str) -> str:
    v = form.get(key)
    return v.strip() if isinstance(v, str) else ""


def _error_text(exc: Exception) -> str:
    errs = form_errors(exc)
    return "; ".join(errs.values()) or i18n.gettext("Invalid value.")


def _act(request: Request, s: Session, fn: Callable[[], object], back: str, ok: str) -> Response:
    """Run a small action from a form: commit and flash ``ok``, or flash the error."""
    try:
        fn()
    except (ValidationError, AppError) as exc:
        s.rollback()
        flash(request, _error_text(exc), "error")
        return RedirectResponse(back, status_code=303)
    s.commit()
    flash(request, i18n.gettext(ok))
    return RedirectResponse(back, status_code=303)


# -- home -------------------------------------------------------------------------------------


@router.get("/c/{cid}/consultation")
def home(request: Request, s: Session = Depends(get_session), ctx: Ctx = READ) -> Response:
    return _page(
        request,
        s,
        ctx,
        "consultation_home.html",
        hot=service.hot_issues(s, ctx, limit=10),
        topics=service.list_topics(s, ctx),
        polls=service.list_polls(s, ctx),
        mine=[service.demand_out(s, d) for d in service.list_demands(s, ctx, mine=True)],
    )


# -- demands ----------------------------------------------------------------------------------


def _demand_form(request: Request, s: Session, ctx: Ctx, **extra: Any) -> Response:
    return _page(
        request,
        s,
        ctx,
        "consultation_demand_form.html",
        categories=CATEGORIES,
        buildings=people.list_buildings(s, ctx),
        residents=[],
        **extra,
    )


@router.get("/c/{cid}/consultation/demands/new")
def demand_new(request: Request, s: Session = Depends(get_session), ctx: Ctx = READ) -> Response:
    return _demand_form(request, s, ctx)


@router.post("/c/{cid}/consultation/demands/new")
async def demand_submit(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    raw = await request.form()
    form = {
        k: _g(raw, k)
        for k in ("text", "category", "building_id", "location", "channel", "resident_id")
    }
    form["anonymous"] = "on" if _g(raw, "anonymous") == "on" else ""
    try:
        data = DemandIn.model_validate(
            {
                "text": form["text"],
                "category": form["category"] or None,
                "building_id": form["building_id"] or None,
                "location": form["location"] or None,
                "anonymous": form["anonymous"] == "on",
                "channel": form["channel"] or "app",
                "resident_id": form["resident_id"] or None,
            }
        )
        photo = None
        upload = raw.get("photo")
        if upload is not None and not isinstance(upload, str) and upload.filename:
            content = await upload.read(MAX_PHOTO_BYTES + 1)
            if len(content) > MAX_PHOTO_BYTES:
                raise TooLarge("The photo is larger than 10 MB.", field="photo")
            check_photo(content)
            photo = content
        d = service.submit_demand(
            s, ctx, data, request.app.state.files.put(photo) if photo else None
        )
    except (ValidationError, AppError) as exc:
        s.rollback()
        return _demand_form(request, s, ctx, errors=form_errors(exc), form=form, status=422)
    s.commit()
    flash(request, i18n.gettext("Thank you. Your demand has been received."))
    return RedirectResponse(f"/c/{ctx.community_id}/consultation/demands/{d.id}", status_code=303)


@router.get("/c/{cid}/consultation/demands")
def demands_page(
    request: Request, status: str = "", s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    st = status if status in DEMAND_STATUSES else None
    items = [service.demand_out(s, d) for d in service.list_demands(s, ctx, status=st)]
    return _page(
        request,
        s,
        ctx,
        "consultation_demands.html",
        items=items,
        status_filter=st or "",
        statuses=DEMAND_STATUSES,
    )


@router.get("/c/{cid}/consultation/demands/{demand_id}")
def demand_page(
    request: Request, demand_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    d = service.demand_out(s, service.get_demand(s, ctx, demand_id))
    return _page(request, s, ctx, "consultation_demand.html", d=d, statuses=DEMAND_STATUSES)


@router.post("/c/{cid}/consultation/demands/{demand_id}/reply")
async def demand_reply(
    request: Request, demand_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    back = f"/c/{ctx.community_id}/consultation/demands/{demand_id}"
    return _act(
        request,
        s,
        lambda: service.reply_demand(
            s,
            ctx,
            demand_id,
            DemandReplyIn.model_validate(
                {"reply": _g(raw, "reply"), "status": _g(raw, "status") or "accepted"}
            ),
        ),
        back,
        N_("The reply has been sent."),
    )


@router.post("/c/{cid}/consultation/demands/{demand_id}/work-order")
async def demand_work_order(
    request: Request, demand_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    sev = _g(raw, "severity") or "minor"
    back = f"/c/{ctx.community_id}/consultation/demands/{demand_id}"
    return _act(
        request,
        s,
        lambda: service.demand_to_order(s, ctx, demand_id, sev),
        back,
        N_("A work order has been created."),
    )


# -- topics -----------------------------------------------------------------------------------


@router.post("/c/{cid}/consultation/topics")
async def topic_create(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    ids = [int(x) for x in raw.getlist("demand_ids") if isinstance(x, str) and x.isdigit()]
    try:
        t = service.create_topic(
            s,
            ctx,
            TopicIn.model_validate(
                {
                    "title": _g(raw, "title"),
                    "background": _g(raw, "background") or None,
                    "demand_ids": ids,
                }
            ),
        )
    except (ValidationError, AppError) as exc:
        s.rollback()
        flash(request, _error_text(exc), "error")
        return RedirectResponse(f"/c/{ctx.community_id}/consultation", status_code=303)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/consultation/topics/{t.id}", status_code=303)


@router.get("/c/{cid}/consultation/topics/{topic_id}")
def topic_page(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    t = service.get_topic(s, ctx, topic_id)
    comments = [service.comment_view(s, ctx, c) for c in service.list_comments(s, ctx, t.id)]
    statements = service.list_statements(s, ctx, t.id)
    return _page(
        request,
        s,
        ctx,
        "consultation_topic.html",
        t=t,
        demands=[service.demand_out(s, d) for d in service.topic_demands(s, ctx, t.id)],
        experts=service.topic_experts(s, ctx, t.id),
        professionals=people.list_professionals(s, ctx)
        if ctx.can(Perm.CONSULTATION_MANAGE)
        else [],
        meetings=service.list_meetings(s, ctx, t.id),
        comments=comments,
        statements=[x for x in statements if x.moderated >= 0],
        # statements left out of the map (moderated out, or meta), for staff to restore
        left_out=[x for x in statements if x.moderated < 0]
        if ctx.can(Perm.CONSULTATION_MANAGE)
        else [],
        meta_value=STATEMENT_META,
        my_votes=service.my_statement_votes(s, ctx, t.id),
        opinion=service.opinion_map(s, ctx, t.id),
        polls=service.list_polls(s, ctx, t.id),
        kinds=POLL_KINDS,
        units=POLL_UNITS,
    )


def _topic_back(ctx: Ctx, topic_id: int, anchor: str = "") -> str:
    return f"/c/{ctx.community_id}/consultation/topics/{topic_id}" + (
        f"#{anchor}" if anchor else ""
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/status")
async def topic_status(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    st = _g(raw, "status")
    return _act(
        request,
        s,
        lambda: service.set_topic_status(s, ctx, topic_id, st),
        _topic_back(ctx, topic_id),
        N_("Saved."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/experts")
async def topic_expert(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    pid = _g(raw, "professional_id")
    return _act(
        request,
        s,
        lambda: service.invite_expert(s, ctx, topic_id, int(pid) if pid.isdigit() else 0),
        _topic_back(ctx, topic_id, "experts"),
        N_("The professional has been invited."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/meetings")
async def topic_meeting(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    doc = {k: _g(raw, k) or None for k in ("title", "mode", "starts_at", "place", "agenda")}
    doc["mode"] = doc["mode"] or "on_site"
    return _act(
        request,
        s,
        lambda: service.add_meeting(s, ctx, topic_id, MeetingIn.model_validate(doc)),
        _topic_back(ctx, topic_id, "meetings"),
        N_("The meeting has been scheduled."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/meetings/{meeting_id}/minutes")
async def topic_minutes(
    request: Request,
    topic_id: int,
    meeting_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = MANAGE,
) -> Response:
    raw = await request.form()
    text = _g(raw, "minutes")
    return _act(
        request,
        s,
        lambda: service.save_minutes(s, ctx, topic_id, meeting_id, text),
        _topic_back(ctx, topic_id, "meetings"),
        N_("Saved."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/comments")
async def topic_comment(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    raw = await request.form()
    parent = _g(raw, "parent_id")
    doc = {"text": _g(raw, "text"), "parent_id": int(parent) if parent.isdigit() else None}
    return _act(
        request,
        s,
        lambda: service.add_comment(s, ctx, topic_id, CommentIn.model_validate(doc)),
        _topic_back(ctx, topic_id, "comments"),
        N_("Your comment has been posted."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/comments/{comment_id}/report")
async def topic_comment_report(
    request: Request,
    topic_id: int,
    comment_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = READ,
) -> Response:
    raw = await request.form()
    reason = _g(raw, "reason")[:300] or None
    return _act(
        request,
        s,
        lambda: service.report_comment(s, ctx, topic_id, comment_id, reason),
        _topic_back(ctx, topic_id, "comments"),
        N_("Thank you, moderators will look at it."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/comments/{comment_id}/hide")
async def topic_comment_hide(
    request: Request,
    topic_id: int,
    comment_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = MANAGE,
) -> Response:
    raw = await request.form()
    reason = _g(raw, "reason")
    hidden = _g(raw, "hidden") != "0"
    return _act(
        request,
        s,
        lambda: service.hide_comment(s, ctx, topic_id, comment_id, reason, hidden),
        _topic_back(ctx, topic_id, "comments"),
        N_("Saved."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/statements")
async def topic_statement(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    raw = await request.form()
    doc = {"text": _g(raw, "text")}
    return _act(
        request,
        s,
        lambda: service.add_statement(s, ctx, topic_id, StatementIn.model_validate(doc).text),
        _topic_back(ctx, topic_id, "opinion"),
        N_("Your statement has been added."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/statements/{statement_id}/vote")
async def topic_statement_vote(
    request: Request,
    topic_id: int,
    statement_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = READ,
) -> Response:
    raw = await request.form()
    v = _g(raw, "vote")
    vote = int(v) if v in ("1", "0", "-1") else 9
    return _act(
        request,
        s,
        lambda: service.vote_statement(s, ctx, topic_id, statement_id, vote),
        _topic_back(ctx, topic_id, "opinion"),
        N_("Your vote has been recorded."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/statements/{statement_id}/moderate")
async def topic_statement_moderate(
    request: Request,
    topic_id: int,
    statement_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = MANAGE,
) -> Response:
    raw = await request.form()
    value = _g(raw, "moderated")
    # -1 moderate out (the default), -2 meta (describes the participant), 1 restore
    moderated = int(value) if value in ("1", "-1", str(STATEMENT_META)) else -1
    return _act(
        request,
        s,
        lambda: service.moderate_statement(s, ctx, topic_id, statement_id, moderated),
        _topic_back(ctx, topic_id, "opinion"),
        N_("Saved."),
    )


@router.post("/c/{cid}/consultation/topics/{topic_id}/polis")
async def topic_polis(
    request: Request, topic_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    back = _topic_back(ctx, topic_id, "opinion")
    files: dict[str, bytes] = {}
    for name in ("comments", "votes"):
        up = raw.get(name)
        if up is None or isinstance(up, str) or not up.filename:
            flash(request, i18n.gettext("Choose comments.csv and votes.csv."), "error")
            return RedirectResponse(back, status_code=303)
        files[name] = await up.read(service.MAX_POLIS_BYTES + 1)
    try:
        out = service.import_polis(
            s,
            ctx,
            topic_id,
            files["comments"],
            files["votes"],
            auto_meta=_g(raw, "auto_meta") == "on",
            meta=_g(raw, "meta"),
        )
    except (ValidationError, AppError) as exc:
        s.rollback()
        flash(request, _error_text(exc), "error")
        return RedirectResponse(back, status_code=303)
    s.commit()
    message = i18n.gettext("The Pol.is conversation has been imported.")
    if out["meta"]:
        message += " " + i18n.ngettext(
            "%(num)s statement describes the participant and was left out of the map as meta; "
            "it is listed under “Left out of the map”, where it can be restored.",
            "%(num)s statements describe the participant and were left out of the map as "
            "meta; they are listed under “Left out of the map”, where they can be restored.",
            out["meta"],
        )
    flash(request, message)
    return RedirectResponse(back, status_code=303)


# -- polls ------------------------------------------------------------------------------------


@router.post("/c/{cid}/consultation/polls")
async def poll_create(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    topic = _g(raw, "topic_id")
    doc: dict[str, Any] = {
        "title": _g(raw, "title"),
        "description": _g(raw, "description") or None,
        "topic_id": int(topic) if topic.isdigit() else None,
        "kind": _g(raw, "kind") or "single",
        "unit": _g(raw, "unit") or "resident",
        "secret": _g(raw, "secret") == "on",
        "special_matter": _g(raw, "special_matter") == "on",
        "options": _g(raw, "options").splitlines(),
        "max_choices": _g(raw, "max_choices") or 1,
        "quorum": _g(raw, "quorum") or 0,
        "threshold": _g(raw, "threshold") or 0,
    }
    back = (
        _topic_back(ctx, doc["topic_id"], "polls")
        if doc["topic_id"]
        else f"/c/{ctx.community_id}/consultation"
    )
    try:
        p = service.create_poll(s, ctx, PollIn.model_validate(doc))
    except (ValidationError, AppError) as exc:
        s.rollback()
        flash(request, _error_text(exc), "error")
        return RedirectResponse(back, status_code=303)
    s.commit()
    return RedirectResponse(f"/c/{ctx.community_id}/consultation/polls/{p.id}", status_code=303)


@router.get("/c/{cid}/consultation/polls/{poll_id}")
def poll_page(
    request: Request, poll_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    p = service.get_poll(s, ctx, poll_id)
    options = service.poll_options(s, p.id)
    return _page(
        request,
        s,
        ctx,
        "consultation_poll.html",
        p=p,
        options=options,
        option_label={str(o.id): o.label for o in options},
        voted=service.has_voted(s, ctx, p),
        voters=service.voter_count(s, p.id),
    )


@router.post("/c/{cid}/consultation/polls/{poll_id}/vote")
async def poll_vote(
    request: Request, poll_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    raw = await request.form()
    p = service.get_poll(s, ctx, poll_id)
    if p.kind == "ranked":
        ranks: list[tuple[int, int]] = []
        for o in service.poll_options(s, p.id):
            r = _g(raw, f"rank_{o.id}")
            if r.isdigit() and int(r) > 0:
                ranks.append((int(r), o.id))
        choices = [oid for _, oid in sorted(ranks)]
    else:
        choices = [int(x) for x in raw.getlist("choice") if isinstance(x, str) and x.isdigit()]
    back = f"/c/{ctx.community_id}/consultation/polls/{poll_id}"
    if not choices:
        flash(request, i18n.gettext("Choose among the options of this vote."), "error")
        return RedirectResponse(back, status_code=303)
    return _act(
        request,
        s,
        lambda: service.cast_ballot(s, ctx, poll_id, choices),
        back,
        N_("Your vote has been recorded."),
    )


@router.post("/c/{cid}/consultation/polls/{poll_id}/close")
async def poll_close(
    request: Request, poll_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    return _act(
        request,
        s,
        lambda: service.close_poll(s, ctx, poll_id),
        f"/c/{ctx.community_id}/consultation/polls/{poll_id}",
        N_("The vote is closed."),
    )


# -- outcomes ---------------------------------------------------------------------------------


@router.get("/c/{cid}/consultation/actions")
def actions_page(request: Request, s: Session = Depends(get_session), ctx: Ctx = READ) -> Response:
    items = service.list_actions(s, ctx)
    return _page(
        request,
        s,
        ctx,
        "consultation_actions.html",
        items=[(a, service.action_updates(s, a.id)) for a in items],
        topics=service.list_topics(s, ctx),
        today=date.today(),
    )


@router.post("/c/{cid}/consultation/actions")
async def action_create(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    raw = await request.form()
    topic = _g(raw, "topic_id")
    doc = {
        "title": _g(raw, "title"),
        "owner_name": _g(raw, "owner_name"),
        "due_date": _g(raw, "due_date") or None,
        "topic_id": int(topic) if topic.isdigit() else None,
    }
    return _act(
        request,
        s,
        lambda: service.create_action(s, ctx, ActionIn.model_validate(doc)),
        f"/c/{ctx.community_id}/consultation/actions",
        N_("The action item has been created."),
    )


@router.post("/c/{cid}/consultation/actions/{action_id}/updates")
async def action_update(
    request: Request, action_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    raw = await request.form()
    doc = {"text": _g(raw, "text"), "progress": _g(raw, "progress") or 0}
    return _act(
        request,
        s,
        lambda: service.update_action(s, ctx, action_id, ActionUpdateIn.model_validate(doc)),
        f"/c/{ctx.community_id}/consultation/actions",
        N_("Saved."),
    )


@router.post("/c/{cid}/consultation/actions/{action_id}/follow")
async def action_follow(
    request: Request, action_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    return _act(
        request,
        s,
        lambda: service.follow_action(s, ctx, action_id),
        f"/c/{ctx.community_id}/consultation/actions",
        N_("You will be notified of progress."),
    )


@router.get("/c/{cid}/consultation/notifications")
def notifications_page(ctx: Ctx = READ) -> Response:
    """The notifications of every community are in one inbox (the bell of the top bar)."""
    return RedirectResponse("/notifications", status_code=303)


@router.post("/c/{cid}/consultation/notifications/read")
async def notifications_read(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    return _act(
        request,
        s,
        lambda: service.mark_read(s, ctx.user_id),
        f"/c/{ctx.community_id}/consultation/notifications",
        N_("Saved."),
    )


@router.get("/c/{cid}/consultation/dashboard")
def dashboard_page(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> Response:
    return _page(request, s, ctx, "consultation_dashboard.html", d=service.dashboard(s, ctx))


# -- the notification bell (every page, see templates/base.html) -----------------------------


@router.get("/notifications")
def inbox_page(
    request: Request, s: Session = Depends(get_session), p: Principal = Depends(current_principal)
) -> Response:
    """The user's notifications from every community, newest first."""
    request.state.principal = p
    uid = p.user.id if p.user else None
    items = service.my_notifications(s, uid)
    return render(
        request,
        "consultation_inbox.html",
        {
            "items": items,
            "unread": service.unread_count(s, uid),
            "zones": service.notification_timezones(s, items),
        },
    )


@router.get("/notifications/bell")
def bell(
    request: Request, s: Session = Depends(get_session), p: Principal = Depends(current_principal)
) -> Response:
    """The bell with the number of unread notifications (loaded by htmx into every page)."""
    request.state.principal = p
    uid = p.user.id if p.user else None
    return render(request, "consultation_bell.html", {"unread": service.unread_count(s, uid)})


@router.get("/notifications/{notification_id}")
def open_notification(
    request: Request,
    notification_id: int,
    s: Session = Depends(get_session),
    p: Principal = Depends(current_principal),
) -> Response:
    """Mark the notification read and go where it points."""
    link = service.open_notification(s, p.user.id if p.user else None, notification_id)
    s.commit()
    return RedirectResponse(link or "/notifications", status_code=303)


@router.post("/notifications/read")
async def inbox_read(
    request: Request, s: Session = Depends(get_session), p: Principal = Depends(current_principal)
) -> Response:
    service.mark_read(s, p.user.id if p.user else None)
    s.commit()
    flash(request, i18n.gettext("All notifications are marked as read."))
    return RedirectResponse("/notifications", status_code=303)
