"""Notifications to family contacts: the SMS edge of the safety domain.

Sending an SMS is an edge of the world (a carrier's gateway), so it goes through one
replaceable :data:`sender`. The default sender only writes the message to the log; every
message is also recorded in ``safety_notifications`` (who, when, what), so staff can see
that the family was told. A deployment plugs in its gateway with :func:`set_sender`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from linli.core.db import utcnow
from linli.safety.models import Notification

log = logging.getLogger("linli.safety.sms")

SmsSender = Callable[[str, str], None]


def _log_sender(to: str, text: str) -> None:
    masked = to[:3] + "*" * max(0, len(to) - 7) + to[-4:] if len(to) >= 7 else "***"
    log.info("SMS to %s: %s", masked, text)


sender: SmsSender = _log_sender


def set_sender(func: SmsSender | None) -> None:
    """Use ``func(to, text)`` to send SMS (None: back to the logging sender)."""
    global sender
    sender = func or _log_sender


def send_sms(
    s: Session, community_id: int, to: str, text: str, *, person_id: int | None = None
) -> Notification:
    """Send ``text`` to ``to`` and record it; a failing gateway is recorded, never raised."""
    n = Notification(
        community_id=community_id,
        person_id=person_id,
        channel="sms",
        to=to,
        text=text[:500],
        at=utcnow(),
        status="sent",
    )
    try:
        sender(to, text)
    except Exception:  # the alarm and the work order matter more than the SMS
        log.exception("SMS gateway failed")
        n.status = "failed"
    s.add(n)
    return n
