"""Events of the consultation domain and the handlers it registers.

Emitted (payloads carry ids only, never names of anonymous authors):

* ``consultation.demand.submitted`` / ``consultation.demand.replied``
* ``consultation.topic.created``, ``consultation.comment.posted``
* ``consultation.statement.voted`` (live opinion maps refresh on it)
* ``consultation.poll.opened`` / ``consultation.poll.closed``

Handled: ``workorders.order.*`` — a demand that became a work order follows its status.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from linli.core import events
from linli.core.events import Event

EMITTED = (
    "consultation.demand.submitted",
    "consultation.demand.replied",
    "consultation.topic.created",
    "consultation.comment.posted",
    "consultation.statement.voted",
    "consultation.poll.opened",
    "consultation.poll.closed",
)


@events.handles("workorders.order.*")
def follow_work_order(s: Session, event: Event) -> None:
    from linli.consultation.service import on_work_order_changed

    on_work_order_changed(s, event.community_id, event.payload)
