"""Events of the vehicles domain and the alarm kinds it raises.

Emitted: ``vehicles.passage.open``, ``vehicles.passage.queued``, ``vehicles.passage.denied``
(one per photo from a gate camera and per guard decision), ``vehicles.visitor.registered``,
``vehicles.visitor.overstayed``.
"""

from __future__ import annotations

from linli.core.i18n import N_
from linli.iot.service import register_alarm_kind

register_alarm_kind("vehicles.watchlist", N_("Watch-list plate at a vehicle gate"))
register_alarm_kind("vehicles.overstay", N_("Visitor car overstaying"))

EMITTED = (
    "vehicles.passage.open",
    "vehicles.passage.queued",
    "vehicles.passage.denied",
    "vehicles.visitor.registered",
    "vehicles.visitor.overstayed",
)
