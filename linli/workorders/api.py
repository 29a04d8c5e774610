"""JSON API of work orders: /api/v1/communities/{cid}/workorders…"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from linli.core.db import utcnow
from linli.core.errors import Conflict, NotFound, TooLarge, ValidationFailed
from linli.core.files import FileStore
from linli.core.models import User
from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, require
from linli.people.models import Resident
from linli.workorders import service
from linli.workorders.models import CATEGORIES, STATUSES, WorkOrder, WorkOrderNote
from linli.workorders.schemas import (
    AssignIn,
    KpisOut,
    NoteOut,
    OptionalTextIn,
    RateIn,
    RequestedOrderOut,
    TextIn,
    WorkOrderDetail,
    WorkOrderIn,
    WorkOrderOut,
)

router = api_router(prefix="/api/v1", tags=["workorders"])

MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
M = TypeVar("M", bound=BaseModel)


# -- helpers shared with the pages ------------------------------------------------------------


def check_photo(data: bytes) -> str:
    """Refuse anything but a real, complete image of at most 10 MB. Returns its MIME type."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_PHOTO_BYTES:
        raise TooLarge("The photo is larger than 10 MB.", field="photo")
    if not data:
        raise ValidationFailed("The photo is empty.", field="photo", code="empty_file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format
                im.verify()
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # verify() misses truncated JPEGs; decoding finds them
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        fmt = None
    if fmt not in PHOTO_FORMATS:
        raise ValidationFailed(
            "The photo is not a valid image (JPEG, PNG, WebP or GIF).",
            field="photo",
            code="not_an_image",
        )
    return PHOTO_FORMATS[fmt]


def photo_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_photo(files: FileStore, data: bytes) -> str:
    return files.put(data)


def user_names(s: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return dict(s.execute(select(User.id, User.display_name).where(User.id.in_(wanted))).all())


def order_outs(s: Session, orders: list[WorkOrder]) -> list[WorkOrderOut]:
    names = user_names(s, {w.assignee_user_id for w in orders})
    now = utcnow()
    out = []
    for w in orders:
        o = WorkOrderOut.model_validate(w)
        o.assignee_name = names.get(w.assignee_user_id) if w.assignee_user_id else None
        o.overdue = w.status in service.OPEN_STATUSES and w.due_at < now
        out.append(o)
    return out


def order_detail(s: Session, ctx: Ctx, wo: WorkOrder) -> WorkOrderDetail:
    base = order_outs(s, [wo])[0]
    notes = [NoteOut.model_validate(n) for n in service.notes(s, ctx, wo.id)]
    return WorkOrderDetail(**base.model_dump(), notes=notes)


def _validate(model: type[M], doc: Any) -> M:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def text_and_photo(request: Request, model: type[M]) -> tuple[M, bytes | None]:
    """A JSON body, or a form (multipart with an optional ``photo`` file)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        upload = form.get("photo")
        data = None
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_PHOTO_BYTES + 1)
        return _validate(model, fields), data
    raw = await request.body()
    try:
        doc = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "The request body is not valid JSON.", code="malformed_json", status=400
        ) from None
    return _validate(model, doc), None


def _check_refs(s: Session, ctx: Ctx, data: WorkOrderIn) -> None:
    if data.requester_resident_id is not None:
        r = s.get(Resident, data.requester_resident_id)
        if r is None or r.community_id != ctx.community_id:
            raise NotFound("Resident not found.", field="requester_resident_id")


def create_order(s: Session, ctx: Ctx, data: WorkOrderIn) -> WorkOrder:
    ctx.require(Perm.WORKORDERS_MANAGE)
    _check_refs(s, ctx, data)
    return service.create_order(
        s,
        ctx.community_id,
        service.NewOrder(
            category=data.category,
            title=data.title,
            severity=data.severity,
            description=data.description,
            building_id=data.building_id,
            grid_id=data.grid_id,
            location=data.location,
            source="manual",
            requester_resident_id=data.requester_resident_id,
        ),
        ctx.actor,
    )


def transition(
    s: Session,
    ctx: Ctx,
    order_id: int,
    action: str,
    *,
    text: str | None = None,
    photo: str | None = None,
    assignee_user_id: int | None = None,
) -> WorkOrder:
    """assign | start | resolve | close | reopen, with the checks each needs."""
    wo = service.get_order(s, ctx, order_id)
    if action == "assign":
        return service.change_status(
            s, ctx, order_id, "assigned", text=text, assignee_user_id=assignee_user_id
        )
    if action == "start":
        if wo.status not in ("new", "assigned"):
            raise Conflict(
                "Only a new or assigned work order can be started.", code="bad_transition"
            )
        return service.change_status(s, ctx, order_id, "in_progress", text=text)
    if action == "resolve":
        return service.change_status(s, ctx, order_id, "resolved", text=text, photo=photo)
    if action == "close":
        return service.change_status(s, ctx, order_id, "closed", text=text)
    if action == "reopen":
        if wo.status not in ("resolved", "closed"):
            raise Conflict(
                "Only a resolved or closed work order can be reopened.", code="bad_transition"
            )
        return service.change_status(s, ctx, order_id, "in_progress", text=text)
    raise NotFound("Unknown action.")


def photo_allowed(s: Session, ctx: Ctx, order_id: int, digest: str) -> bool:
    """The photo belongs to this order and the caller may see it (the requester sees the
    resolution photo only)."""
    wo = s.get(WorkOrder, order_id)
    if wo is None or wo.community_id != ctx.community_id:
        return False
    user = ctx.principal.user
    requester = (
        user is not None
        and user.resident_id is not None
        and user.resident_id == wo.requester_resident_id
    )
    if requester and wo.resolution_photo == digest:
        return True
    if not ctx.can(Perm.WORKORDERS_READ):
        return False
    try:
        service.get_order(s, ctx, order_id)
    except NotFound:
        return False
    if wo.resolution_photo == digest:
        return True
    q = select(WorkOrderNote.id).where(
        WorkOrderNote.work_order_id == order_id, WorkOrderNote.photo == digest
    )
    return s.scalar(q.limit(1)) is not None


def photo_response(request: Request, s: Session, ctx: Ctx, order_id: int, digest: str) -> Response:
    files: FileStore = request.app.state.files
    if not photo_allowed(s, ctx, order_id, digest) or not files.exists(digest):
        raise NotFound("Photo not found.", code="photo_not_found")
    data = files.get(digest)
    try:
        mime = check_photo(data)
    except (ValidationFailed, TooLarge):
        mime = "application/octet-stream"
    return Response(
        data,
        media_type=mime,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def _body_doc(text_required: bool, photo: bool) -> dict[str, Any]:
    """OpenAPI description of a body read by hand: JSON, or a form with an optional photo."""
    props: dict[str, Any] = {"text": {"type": "string", "maxLength": 5000}}
    required = ["text"] if text_required else []
    form = dict(props)
    if photo:
        form["photo"] = {"type": "string", "format": "binary", "description": "≤ 10 MB image"}
    return {
        "requestBody": {
            "required": text_required,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": props, "required": required}
                },
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": form, "required": required}
                },
            },
        }
    }


# -- routes ------------------------------------------------------------------------------------


@router.get("/communities/{cid}/workorders", response_model=list[WorkOrderOut])
def list_orders(
    status: str | None = Query(default=None, max_length=16),
    category: str | None = Query(default=None, max_length=32),
    grid_id: int | None = None,
    assignee_user_id: int | None = None,
    mine: bool = False,
    limit: int = Query(default=200, ge=1, le=1000),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> list[WorkOrderOut]:
    if status and status not in STATUSES:
        raise ValidationFailed(
            "Must be one of: %(expected)s.",
            params={"expected": ", ".join(STATUSES)},
            field="status",
        )
    if category and category not in CATEGORIES:
        raise ValidationFailed(
            "Must be one of: %(expected)s.",
            params={"expected": ", ".join(CATEGORIES)},
            field="category",
        )
    rows = service.list_orders(
        s,
        ctx,
        status=status,
        category=category,
        grid_id=grid_id,
        assignee_user_id=assignee_user_id,
        mine=mine,
        limit=limit,
    )
    return order_outs(s, rows)


@router.post("/communities/{cid}/workorders", response_model=WorkOrderDetail, status_code=201)
def create(
    data: WorkOrderIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_MANAGE)),
) -> WorkOrderDetail:
    """Open a work order by hand (a phone call, a walk-round finding). It is routed to an
    assignee by category and grid and gets its SLA from its severity."""
    wo = create_order(s, ctx, data)
    out = order_detail(s, ctx, wo)
    s.commit()
    return out


@router.get("/communities/{cid}/workorders/kpis", response_model=KpisOut)
def kpis(
    since: datetime | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> KpisOut:
    """Average hours to respond and to resolve, overdue rate, per category and per grid."""
    from linli.iot.service import to_utc

    return KpisOut.of(service.kpis(s, ctx, since=to_utc(since) if since else None))


@router.get("/communities/{cid}/workorders/requested", response_model=list[RequestedOrderOut])
def requested(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.SELF))
) -> list[RequestedOrderOut]:
    """The orders the calling resident raised, with how they were resolved."""
    return [RequestedOrderOut.model_validate(w) for w in service.requested_by_me(s, ctx)]


@router.get("/communities/{cid}/workorders/{order_id}", response_model=WorkOrderDetail)
def get(
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_READ)),
) -> WorkOrderDetail:
    return order_detail(s, ctx, service.get_order(s, ctx, order_id))


@router.post("/communities/{cid}/workorders/{order_id}/assign", response_model=WorkOrderDetail)
def assign(
    order_id: int,
    data: AssignIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_MANAGE)),
) -> WorkOrderDetail:
    wo = transition(s, ctx, order_id, "assign", assignee_user_id=data.assignee_user_id)
    out = order_detail(s, ctx, wo)
    s.commit()
    return out


async def _transition_route(
    request: Request, s: Session, ctx: Ctx, order_id: int, action: str, model: type[BaseModel]
) -> WorkOrderDetail:
    data, photo = await text_and_photo(request, model)
    text = getattr(data, "text", None)
    digest = None
    if photo is not None:
        check_photo(photo)
        digest = photo_digest(photo)
    wo = transition(s, ctx, order_id, action, text=text, photo=digest)
    out = order_detail(s, ctx, wo)
    if photo is not None:
        store_photo(request.app.state.files, photo)
    s.commit()
    return out


@router.post(
    "/communities/{cid}/workorders/{order_id}/start",
    response_model=WorkOrderDetail,
    openapi_extra=_body_doc(False, False),
)
async def start(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_HANDLE)),
) -> WorkOrderDetail:
    return await _transition_route(request, s, ctx, order_id, "start", OptionalTextIn)


@router.post(
    "/communities/{cid}/workorders/{order_id}/resolve",
    response_model=WorkOrderDetail,
    openapi_extra=_body_doc(True, True),
)
async def resolve(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_HANDLE)),
) -> WorkOrderDetail:
    """Resolve with a note saying what was done: JSON ``{"text": ...}``, or multipart with
    ``text`` and an optional ``photo`` (JPEG, PNG, WebP or GIF, 10 MB at most)."""
    return await _transition_route(request, s, ctx, order_id, "resolve", TextIn)


@router.post(
    "/communities/{cid}/workorders/{order_id}/close",
    response_model=WorkOrderDetail,
    openapi_extra=_body_doc(False, False),
)
async def close(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_MANAGE)),
) -> WorkOrderDetail:
    return await _transition_route(request, s, ctx, order_id, "close", OptionalTextIn)


@router.post(
    "/communities/{cid}/workorders/{order_id}/reopen",
    response_model=WorkOrderDetail,
    openapi_extra=_body_doc(True, False),
)
async def reopen(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_HANDLE)),
) -> WorkOrderDetail:
    return await _transition_route(request, s, ctx, order_id, "reopen", TextIn)


@router.post(
    "/communities/{cid}/workorders/{order_id}/notes",
    response_model=WorkOrderDetail,
    status_code=201,
    openapi_extra=_body_doc(True, True),
)
async def add_note(
    request: Request,
    order_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.WORKORDERS_HANDLE)),
) -> WorkOrderDetail:
    data, photo = await text_and_photo(request, TextIn)
    digest = None
    if photo is not None:
        check_photo(photo)
        digest = photo_digest(photo)
    wo = service.add_note(s, ctx, order_id, data.text, photo=digest)
    out = order_detail(s, ctx, wo)
    if photo is not None:
        store_photo(request.app.state.files, photo)
    s.commit()
    return out


@router.post("/communities/{cid}/workorders/{order_id}/rate", response_model=RequestedOrderOut)
def rate(
    order_id: int,
    data: RateIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> RequestedOrderOut:
    """The resident who raised the order rates how it was handled, 1 to 5."""
    wo = service.rate(s, ctx, order_id, data.rating, data.comment)
    out = RequestedOrderOut.model_validate(wo)
    s.commit()
    return out


@router.get("/communities/{cid}/workorders/{order_id}/photos/{digest}")
def photo(
    request: Request,
    order_id: int,
    digest: str,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> Response:
    return photo_response(request, s, ctx, order_id, digest)
