"""Events of the waste domain and the alarm kinds it raises.

Emitted: ``waste.station.created``, ``waste.deposit.recorded``, ``waste.deposit.lid_failed``,
``waste.deposit.inspected``, ``waste.supervision.recorded``, ``waste.bin.full_predicted``.
Alarms: ``waste.bin.overflow`` (predicted overflow, with a cleaning work order) and
``waste.pile`` (garbage piled beside the bins, seen by the station camera).
"""

from __future__ import annotations

from linli.core.i18n import N_
from linli.iot.service import register_alarm_kind

register_alarm_kind("waste.bin.overflow", N_("Bin about to overflow"))
register_alarm_kind("waste.pile", N_("Garbage piled beside the bins"))

EMITTED = (
    "waste.station.created",
    "waste.deposit.recorded",
    "waste.deposit.lid_failed",
    "waste.deposit.inspected",
    "waste.supervision.recorded",
    "waste.bin.full_predicted",
)
