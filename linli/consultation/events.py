"""Events of the consultation domain and the handlers it registers.

Emitted (payloads carry ids only, never names of anonymous authors):

* ``consultation.demand.submitted`` / ``consultation.demand.replied``
* ``consultation.topic.created``, ``consultation.comment.posted``
* ``consultation.statement.voted`` (live opinion maps refresh on it)
* ``consultation.poll.opened`` / ``consultation.poll.closed``
* ``consultation.notification.created`` (one per notification; mailed by the handler below)

Handled: ``workorders.order.*`` — a demand that became a work order follows its status;
``consultation.notification.created`` (emitted by ``service.notify``) — the notification is
e-mailed to its user when a mailer is configured (linli.core.mail).
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
    "consultation.notification.created",
)


@events.handles("workorders.order.*")
def follow_work_order(s: Session, event: Event) -> None:
    from linli.consultation.service import on_work_order_changed

    on_work_order_changed(s, event.community_id, event.payload)


@events.handles("consultation.notification.created")
def mail_notification(s: Session, event: Event) -> None:
    """E-mail a notification (in the recipient's language) once its transaction committed."""
    from linli.consultation.service import mail_notification as send

    send(s, int(event.payload["notification_id"]))
