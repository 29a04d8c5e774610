"""Events of the access domain and the handlers it registers.

Emitted: ``access.entry.granted``, ``access.entry.denied``, ``access.face.enrolled``,
``access.face.withdrawn``, ``access.visitor.registered``, ``access.flow.unusual``,
``access.pin.guessing``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from linli.access import service
from linli.core import events
from linli.core.i18n import N_
from linli.iot.service import register_alarm_kind

register_alarm_kind("access_flow", N_("Unusual flow of people"))
register_alarm_kind("access_pin_guessing", N_("Wrong PINs entered repeatedly at a gate"))

EMITTED = (
    "access.entry.granted",
    "access.entry.denied",
    "access.face.enrolled",
    "access.face.withdrawn",
    "access.visitor.registered",
    "access.flow.unusual",
    "access.pin.guessing",
)


@events.handles("access.face.*")
def rebuild_gallery(s: Session, event: events.Event) -> None:
    """Enrollment or withdrawal: drop the community's cached gallery (rebuilt on next use).
    The decision path also checks a stamp of the templates, so other processes catch up."""
    service.invalidate_gallery(event.community_id)
