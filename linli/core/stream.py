"""Server-Sent Events: live pages subscribe to the community's events."""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from linli.core.roles import Perm
from linli.core.web import Ctx, require

router = APIRouter(prefix="/api/v1", tags=["events"])

KEEPALIVE_SECONDS = 15.0

#: what an event reveals decides who may receive it live: the first matching pattern's
#: permission is needed on top of ``events.read`` (who passed which gate is as sensitive on
#: the stream as in the access log; watch-list matches and care alarms are restricted)
STREAM_PERMISSIONS: tuple[tuple[str, Perm], ...] = (
    ("access.entry.*", Perm.ACCESS_LOG_READ),
    ("access.face.*", Perm.ACCESS_MANAGE),
    ("access.*", Perm.ACCESS_READ),
    ("safety.watchlist.*", Perm.WATCHLIST_READ),
    ("safety.video.watchlist_match", Perm.WATCHLIST_READ),
    ("safety.care.*", Perm.CARE_READ),
    ("safety.*", Perm.SAFETY_READ),
    ("vehicles.*", Perm.VEHICLES_READ),
    ("waste.*", Perm.WASTE_READ),
    ("people.*", Perm.PEOPLE_READ),
    ("consultation.notification.*", Perm.CONSULTATION_MANAGE),
    ("consultation.*", Perm.CONSULTATION_READ),
    ("iot.*", Perm.IOT_READ),
    ("workorders.*", Perm.WORKORDERS_READ),
)


def may_receive(ctx: Ctx, name: str) -> bool:
    for pattern, perm in STREAM_PERMISSIONS:
        if fnmatch.fnmatchcase(name, pattern):
            return ctx.can(perm)
    return True


@router.get(
    "/communities/{cid}/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    pattern: str = Query(default="*", max_length=100, description="fnmatch on the event name"),
    ctx: Ctx = Depends(require(Perm.EVENTS_READ)),
) -> StreamingResponse:
    """A text/event-stream of this community's events as they are delivered from the outbox,
    those the caller's permissions allow (see ``STREAM_PERMISSIONS``)."""
    bus = request.app.state.bus
    sub = bus.subscribe()
    cid = ctx.community_id

    async def gen() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            while True:
                if await request.is_disconnected():
                    break
                try:
                    event = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event.community_id != cid or not fnmatch.fnmatchcase(event.name, pattern):
                    continue
                if not may_receive(ctx, event.name):
                    continue
                data = json.dumps(event.as_dict(), ensure_ascii=False)
                yield f"id: {event.event_id}\nevent: {event.name}\ndata: {data}\n\n"
        finally:
            bus.unsubscribe(sub)

    return StreamingResponse(
        gen(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
