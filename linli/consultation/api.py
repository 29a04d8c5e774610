"""JSON API of the consultation domain: /api/v1/communities/{cid}/consultation/..."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from linli.consultation import service
from linli.consultation.models import Poll
from linli.consultation.schemas import (
    ActionIn,
    ActionOut,
    ActionUpdateIn,
    BallotIn,
    CommentIn,
    CommentOut,
    DemandIn,
    DemandOut,
    DemandReplyIn,
    HideIn,
    HotIssue,
    MeetingIn,
    MeetingOut,
    NotificationOut,
    OptionOut,
    PollIn,
    PollOut,
    ReportIn,
    StatementIn,
    StatementVoteIn,
    ToOrderIn,
    TopicIn,
    TopicOut,
)
from linli.core import i18n
from linli.core.errors import NotFound, TooLarge
from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, require
from linli.workorders.api import check_photo, text_and_photo

router = api_router(prefix="/api/v1/communities/{cid}/consultation", tags=["consultation"])
READ = Depends(require(Perm.CONSULTATION_READ))
MANAGE = Depends(require(Perm.CONSULTATION_MANAGE))


def store_photo(request: Request, data: bytes | None) -> str | None:
    if data is None:
        return None
    check_photo(data)
    digest: str = request.app.state.files.put(data)
    return digest


# -- demands ----------------------------------------------------------------------------------


@router.post("/demands", response_model=DemandOut, status_code=201)
async def submit_demand(
    request: Request, s: Session = Depends(get_session), ctx: Ctx = READ
) -> DemandOut:
    """JSON, or a multipart form with an optional ``photo`` (checked to be a real image)."""
    data, photo = await text_and_photo(request, DemandIn)
    if photo is not None:
        check_photo(photo)  # refuse before anything is stored
    d = service.submit_demand(s, ctx, data, store_photo(request, photo))
    s.commit()
    return service.demand_out(s, d)


@router.get("/demands", response_model=list[DemandOut])
def list_demands(
    status: str | None = None,
    mine: bool = False,
    s: Session = Depends(get_session),
    ctx: Ctx = READ,
) -> list[DemandOut]:
    return [
        service.demand_out(s, d) for d in service.list_demands(s, ctx, status=status, mine=mine)
    ]


@router.get("/demands/hot", response_model=list[HotIssue])
def hot_issues(s: Session = Depends(get_session), ctx: Ctx = READ) -> list[HotIssue]:
    return service.hot_issues(s, ctx)


@router.get("/demands/{demand_id}", response_model=DemandOut)
def get_demand(demand_id: int, s: Session = Depends(get_session), ctx: Ctx = READ) -> DemandOut:
    return service.demand_out(s, service.get_demand(s, ctx, demand_id))


@router.get("/demands/{demand_id}/photo")
def demand_photo(
    demand_id: int, request: Request, s: Session = Depends(get_session), ctx: Ctx = READ
) -> Response:
    d = service.get_demand(s, ctx, demand_id)
    files = request.app.state.files
    if d.photo is None or not files.exists(d.photo):
        raise NotFound("No photo.", code="photo_not_found")
    data = files.get(d.photo)
    return Response(data, media_type=check_photo(data))


@router.post("/demands/{demand_id}/reply", response_model=DemandOut)
def reply_demand(
    demand_id: int, data: DemandReplyIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> DemandOut:
    d = service.reply_demand(s, ctx, demand_id, data)
    s.commit()
    return service.demand_out(s, d)


@router.post("/demands/{demand_id}/reveal")
def reveal_author(
    demand_id: int, data: HideIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> dict[str, str | None]:
    """Staff, for abuse handling only: who wrote an anonymous demand (audited with the reason)."""
    name = service.reveal_author(s, ctx, demand_id, data.reason)
    s.commit()
    return {"author": name}


@router.post("/demands/{demand_id}/work-order", response_model=DemandOut)
def demand_to_order(
    demand_id: int, data: ToOrderIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> DemandOut:
    d = service.demand_to_order(s, ctx, demand_id, data.severity)
    s.commit()
    return service.demand_out(s, d)


# -- topics -----------------------------------------------------------------------------------


@router.get("/topics", response_model=list[TopicOut])
def list_topics(s: Session = Depends(get_session), ctx: Ctx = READ) -> list[TopicOut]:
    return [TopicOut.model_validate(t) for t in service.list_topics(s, ctx)]


@router.post("/topics", response_model=TopicOut, status_code=201)
def create_topic(data: TopicIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE) -> TopicOut:
    t = service.create_topic(s, ctx, data)
    s.commit()
    return TopicOut.model_validate(t)


@router.get("/topics/{topic_id}", response_model=TopicOut)
def get_topic(topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ) -> TopicOut:
    return TopicOut.model_validate(service.get_topic(s, ctx, topic_id))


@router.post("/topics/{topic_id}/experts/{professional_id}", status_code=201)
def invite_expert(
    topic_id: int, professional_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> dict[str, int]:
    e = service.invite_expert(s, ctx, topic_id, professional_id)
    s.commit()
    return {"topic_id": e.topic_id, "professional_id": e.professional_id}


@router.get("/topics/{topic_id}/meetings", response_model=list[MeetingOut])
def list_meetings(
    topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> list[MeetingOut]:
    return [MeetingOut.model_validate(m) for m in service.list_meetings(s, ctx, topic_id)]


@router.post("/topics/{topic_id}/meetings", response_model=MeetingOut, status_code=201)
def add_meeting(
    topic_id: int, data: MeetingIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> MeetingOut:
    m = service.add_meeting(s, ctx, topic_id, data)
    s.commit()
    return MeetingOut.model_validate(m)


@router.get("/topics/{topic_id}/comments", response_model=list[CommentOut])
def list_comments(
    topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ
) -> list[CommentOut]:
    return [
        CommentOut(**service.comment_view(s, ctx, c))
        for c in service.list_comments(s, ctx, topic_id)
    ]


@router.post("/topics/{topic_id}/comments", response_model=CommentOut, status_code=201)
def add_comment(
    topic_id: int, data: CommentIn, s: Session = Depends(get_session), ctx: Ctx = READ
) -> CommentOut:
    c = service.add_comment(s, ctx, topic_id, data)
    s.commit()
    return CommentOut(**service.comment_view(s, ctx, c))


@router.post("/topics/{topic_id}/comments/{comment_id}/report", response_model=CommentOut)
def report_comment(
    topic_id: int,
    comment_id: int,
    data: ReportIn,
    s: Session = Depends(get_session),
    ctx: Ctx = READ,
) -> CommentOut:
    c = service.report_comment(s, ctx, topic_id, comment_id, data.reason)
    s.commit()
    return CommentOut(**service.comment_view(s, ctx, c))


@router.post("/topics/{topic_id}/comments/{comment_id}/hide", response_model=CommentOut)
def hide_comment(
    topic_id: int,
    comment_id: int,
    data: HideIn,
    s: Session = Depends(get_session),
    ctx: Ctx = MANAGE,
) -> CommentOut:
    c = service.hide_comment(s, ctx, topic_id, comment_id, data.reason)
    s.commit()
    return CommentOut(**service.comment_view(s, ctx, c))


# -- opinion map ------------------------------------------------------------------------------


@router.post("/topics/{topic_id}/statements", status_code=201)
def add_statement(
    topic_id: int, data: StatementIn, s: Session = Depends(get_session), ctx: Ctx = READ
) -> dict[str, Any]:
    st = service.add_statement(s, ctx, topic_id, data.text)
    s.commit()
    return {"id": st.id, "text": st.text}


@router.post("/topics/{topic_id}/statements/{statement_id}/vote", status_code=204)
def vote_statement(
    topic_id: int,
    statement_id: int,
    data: StatementVoteIn,
    s: Session = Depends(get_session),
    ctx: Ctx = READ,
) -> Response:
    service.vote_statement(s, ctx, topic_id, statement_id, data.vote)
    s.commit()
    return Response(status_code=204)


@router.get("/topics/{topic_id}/opinion-map")
def opinion_map(topic_id: int, s: Session = Depends(get_session), ctx: Ctx = READ) -> Any:
    return service.opinion_map(s, ctx, topic_id)


async def _read_upload(upload: UploadFile, name: str) -> bytes:
    data = await upload.read(service.MAX_POLIS_BYTES + 1)
    if len(data) > service.MAX_POLIS_BYTES:
        raise TooLarge("The file is too large.", field=name)
    return data


@router.post("/topics/{topic_id}/polis-import")
async def polis_import(
    topic_id: int,
    comments: UploadFile,
    votes: UploadFile,
    auto_meta: bool = Form(True),
    meta: str = Form(""),
    s: Session = Depends(get_session),
    ctx: Ctx = MANAGE,
) -> dict[str, Any]:
    """Import a Pol.is export: ``comments`` (comments.csv) and ``votes`` (votes.csv).

    Meta statements (they describe the participant; left out of the opinion map as Pol.is
    does): those comments.csv marks with an ``is-meta`` column; without that column, those
    recognised from their text unless ``auto_meta`` is false; plus the ids in ``meta``
    ("1-14,20"). The answer lists them in ``meta_statements``."""
    c = await _read_upload(comments, "comments")
    v = await _read_upload(votes, "votes")
    out = service.import_polis(s, ctx, topic_id, c, v, auto_meta=auto_meta, meta=meta)
    s.commit()
    return out


# -- polls ------------------------------------------------------------------------------------


def poll_out(s: Session, p: Poll) -> PollOut:
    return PollOut(
        id=p.id,
        title=p.title,
        description=p.description,
        topic_id=p.topic_id,
        kind=p.kind,
        unit=p.unit,
        secret=p.secret,
        special_matter=p.special_matter,
        max_choices=p.max_choices,
        quorum=p.quorum,
        threshold=p.threshold,
        status=p.status,
        closes_at=p.closes_at,
        options=[OptionOut.model_validate(o) for o in service.poll_options(s, p.id)],
        voters=service.voter_count(s, p.id),
        result=p.result,
    )


@router.get("/polls", response_model=list[PollOut])
def list_polls(s: Session = Depends(get_session), ctx: Ctx = READ) -> list[PollOut]:
    return [poll_out(s, p) for p in service.list_polls(s, ctx)]


@router.post("/polls", response_model=PollOut, status_code=201)
def create_poll(data: PollIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE) -> PollOut:
    p = service.create_poll(s, ctx, data)
    s.commit()
    return poll_out(s, p)


@router.get("/polls/{poll_id}", response_model=PollOut)
def get_poll(poll_id: int, s: Session = Depends(get_session), ctx: Ctx = READ) -> PollOut:
    return poll_out(s, service.get_poll(s, ctx, poll_id))


@router.post("/polls/{poll_id}/ballots", status_code=201)
def cast_ballot(
    poll_id: int, data: BallotIn, s: Session = Depends(get_session), ctx: Ctx = READ
) -> dict[str, bool]:
    service.cast_ballot(s, ctx, poll_id, data.choices)
    s.commit()
    return {"voted": True}


@router.post("/polls/{poll_id}/close", response_model=PollOut)
def close_poll(poll_id: int, s: Session = Depends(get_session), ctx: Ctx = MANAGE) -> PollOut:
    p = service.close_poll(s, ctx, poll_id)
    s.commit()
    return poll_out(s, p)


# -- outcomes ---------------------------------------------------------------------------------


@router.get("/actions", response_model=list[ActionOut])
def list_actions(s: Session = Depends(get_session), ctx: Ctx = READ) -> list[ActionOut]:
    return [ActionOut.model_validate(a) for a in service.list_actions(s, ctx)]


@router.post("/actions", response_model=ActionOut, status_code=201)
def create_action(
    data: ActionIn, s: Session = Depends(get_session), ctx: Ctx = MANAGE
) -> ActionOut:
    a = service.create_action(s, ctx, data)
    s.commit()
    return ActionOut.model_validate(a)


@router.post("/actions/{action_id}/updates", response_model=ActionOut)
def update_action(
    action_id: int, data: ActionUpdateIn, s: Session = Depends(get_session), ctx: Ctx = READ
) -> ActionOut:
    a = service.update_action(s, ctx, action_id, data)
    s.commit()
    return ActionOut.model_validate(a)


@router.post("/actions/{action_id}/follow", status_code=204)
def follow_action(action_id: int, s: Session = Depends(get_session), ctx: Ctx = READ) -> Response:
    service.follow_action(s, ctx, action_id)
    s.commit()
    return Response(status_code=204)


@router.get("/notifications", response_model=list[NotificationOut])
def notifications(s: Session = Depends(get_session), ctx: Ctx = READ) -> list[NotificationOut]:
    out = []
    for n in service.my_notifications(s, ctx.user_id):
        item = NotificationOut.model_validate(n)
        item.title = i18n.gettext(n.title)  # stored as the English source string
        out.append(item)
    return out


@router.get("/notifications/count")
def notification_count(s: Session = Depends(get_session), ctx: Ctx = READ) -> dict[str, int]:
    return {"unread": service.unread_count(s, ctx.user_id)}


@router.get("/dashboard")
def dashboard(s: Session = Depends(get_session), ctx: Ctx = MANAGE) -> Any:
    return service.dashboard(s, ctx)
