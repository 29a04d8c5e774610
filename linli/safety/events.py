"""Events of the safety domain and the handlers it registers.

Emitted: ``safety.people.crossed`` (a person crossed a counting line; feeds the flow of
people), ``safety.video.<kind>`` (intrusion, loitering, gathering, motion, tailgating,
watchlist_match), ``safety.watchlist.matched``, ``safety.care.visited``.

Handled: ``access.entry.granted`` — a person in care passing a gate is a sign of activity
(going out at night may raise the night-outing alarm), and a grant at a gate that a camera
watches is recorded for the tailgating comparison of the camera workers.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.orm import Session

from linli.core import events
from linli.core.errors import NotFound
from linli.core.i18n import N_
from linli.core.web import system_ctx
from linli.iot.service import register_alarm_kind
from linli.safety import service

register_alarm_kind("safety_camera_silent", N_("Camera silent"))
register_alarm_kind("safety_intrusion", N_("Intrusion into a restricted zone"))
register_alarm_kind("safety_loitering", N_("Loitering"))
register_alarm_kind("safety_gathering", N_("Gathering of people"))
register_alarm_kind("safety_motion", N_("Motion after hours"))
register_alarm_kind("safety_tailgating", N_("Tailgating at a gate"))
register_alarm_kind("safety_watchlist_match", N_("Watch-list match"))
register_alarm_kind("care_inactive", N_("No sign of activity"))
register_alarm_kind("care_night_out", N_("Unusual night-time going out"))
register_alarm_kind("care_water", N_("Water running without a stop"))

EMITTED = (
    "safety.people.crossed",
    "safety.video.intrusion",
    "safety.video.loitering",
    "safety.video.gathering",
    "safety.video.motion",
    "safety.video.tailgating",
    "safety.video.watchlist_match",
    "safety.watchlist.matched",
    "safety.care.visited",
)


@events.handles("access.entry.granted")
def on_access_granted(s: Session, event: events.Event) -> None:
    if event.community_id is None:
        return
    p = event.payload
    at = event.created_at if event.created_at.tzinfo else event.created_at.replace(tzinfo=UTC)
    direction = str(p.get("direction") or "in")
    gate_id = p.get("gate_id")
    if isinstance(gate_id, int):
        service.record_gate_grant(s, event.community_id, gate_id, direction, at, event.event_id)
    identity_id = p.get("identity_id")
    if not isinstance(identity_id, int):
        return
    from linli.access.service import get_identity

    try:
        ident = get_identity(s, system_ctx(event.community_id), identity_id)
    except NotFound:
        return
    if ident.resident_id is not None:
        service.access_activity(s, event.community_id, ident.resident_id, at, direction)
