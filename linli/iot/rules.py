"""The rule engine: turns samples into alarm transitions (raise / clear). Pure logic, no I/O.

Condition kinds (JSON, stored in ``Rule.condition``):

* ``{"kind": "threshold", "metric": "pressure", "op": "<", "value": 0.15, "clear": 0.18}`` —
  raise when the value crosses ``value``; clear only once it is back past ``clear``
  (hysteresis: a value hovering at the threshold does not flap). ``clear`` defaults to
  ``value``.
* ``{"kind": "duration", "metric": "temperature", "op": ">", "value": 60, "seconds": 300,
  "clear": 55}`` — the condition must hold continuously for ``seconds`` before it raises.
* ``{"kind": "rate", "metric": "fill", "op": ">", "per_minute": 5}`` — change per minute
  between consecutive samples; clears when the rate is back within the limit.
* ``{"kind": "missing", "seconds": 300}`` — no data from the device for ``seconds``
  (heartbeat / offline); checked by ``sweep_missing`` on a timer.
* ``{"kind": "all" | "any", "conditions": [threshold conditions...]}`` — combinations over
  the latest value of each metric.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
KINDS = ("threshold", "duration", "rate", "missing", "all", "any")
MAX_SECONDS = 30 * 86400


class RuleError(ValueError):
    """A condition that cannot be evaluated (shown to the staff member who wrote it)."""


def validate_condition(cond: Any, metrics: Iterable[str] | None = None) -> None:
    """Raise :class:`RuleError` (a message for the person who wrote the rule) unless ``cond``
    is a condition this engine can evaluate; ``metrics`` are the profile's metric keys."""
    known = set(metrics) if metrics is not None else None
    if not isinstance(cond, Mapping):
        raise RuleError("a condition is a JSON object")
    kind = cond.get("kind")
    if kind not in KINDS:
        raise RuleError(f"unknown rule kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind in ("all", "any"):
        subs = cond.get("conditions")
        if not isinstance(subs, list) or not subs:
            raise RuleError("a combination needs a non-empty list of conditions")
        if len(subs) > 20:
            raise RuleError("a combination takes 20 conditions at most")
        for sub in subs:
            if not isinstance(sub, Mapping) or sub.get("kind") != "threshold":
                raise RuleError("combinations take threshold conditions")
            validate_condition(sub, known)
        return
    if kind == "missing":
        if not _positive(cond.get("seconds")):
            raise RuleError("'seconds' must be a positive number")
        if cond["seconds"] > MAX_SECONDS:
            raise RuleError("'seconds' is 30 days at most")
        return
    metric = cond.get("metric")
    if not isinstance(metric, str) or not metric:
        raise RuleError("'metric' is required")
    if known is not None and metric not in known:
        raise RuleError(f"the profile has no metric {metric!r}")
    op = cond.get("op")
    if op not in OPS:
        raise RuleError(f"'op' must be one of {' '.join(OPS)}")
    if kind == "rate":
        if not _number(cond.get("per_minute")):
            raise RuleError("'per_minute' must be a number")
        return
    if not _number(cond.get("value")):
        raise RuleError("'value' must be a number")
    if "clear" in cond:
        clear, value = cond["clear"], cond["value"]
        if not _number(clear):
            raise RuleError("'clear' must be a number")
        if op in ("==", "!="):
            raise RuleError("'clear' applies to <, <=, > and >= only")
        # the clear level lies on the safe side of the threshold, or the alarm would flap
        if op in (">", ">=") and clear > value:
            raise RuleError("with > or >=, 'clear' must not be above 'value'")
        if op in ("<", "<=") and clear < value:
            raise RuleError("with < or <=, 'clear' must not be below 'value'")
    if kind == "duration":
        if not _positive(cond.get("seconds")):
            raise RuleError("'seconds' must be a positive number")
        if cond["seconds"] > MAX_SECONDS:
            raise RuleError("'seconds' is 30 days at most")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v: Any) -> bool:
    return _number(v) and v > 0


def _breach(cond: Mapping[str, Any], value: float) -> bool:
    return OPS[cond["op"]](value, float(cond["value"]))


def _recovered(cond: Mapping[str, Any], value: float) -> bool:
    """Past the clear level (hysteresis) in the safe direction."""
    op = cond["op"]
    clear = float(cond.get("clear", cond["value"]))
    if op in (">", ">="):
        return value < clear if "clear" in cond else not _breach(cond, value)
    if op in ("<", "<="):
        return value > clear if "clear" in cond else not _breach(cond, value)
    return not _breach(cond, value)


@dataclass
class CompiledRule:
    id: int
    name: str
    condition: dict[str, Any]
    severity: str
    message: str | None = None
    _metrics: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c = self.condition
        if c["kind"] in ("all", "any"):
            self._metrics = frozenset(s["metric"] for s in c["conditions"])
        elif c["kind"] == "missing":
            self._metrics = frozenset()
        else:
            self._metrics = frozenset((c["metric"],))

    @property
    def kind(self) -> str:
        return str(self.condition["kind"])

    def metrics(self) -> frozenset[str]:
        return self._metrics


@dataclass
class Transition:
    rule_id: int
    device_id: int
    action: str  # "raise" | "clear"
    at: datetime
    value: float | None


@dataclass
class _State:
    active: bool = False
    pending_since: datetime | None = None
    last_value: float | None = None
    last_ts: datetime | None = None


@dataclass
class RuleEngine:
    """Per-(rule, device) state in memory; open alarms seed it at start-up."""

    states: dict[tuple[int, int], _State] = field(default_factory=dict)
    latest: dict[int, dict[str, float]] = field(default_factory=dict)
    #: the time of the newest sample of each (device, metric) the rules have seen
    newest: dict[int, dict[str, datetime]] = field(default_factory=dict)

    def mark_active(self, rule_id: int, device_id: int) -> None:
        self.states.setdefault((rule_id, device_id), _State()).active = True

    def sync_active(self, open_alarms: set[tuple[int, int]]) -> None:
        """Align the active flags with the open alarms (rule id, device id) in the database:
        an alarm cleared by hand lets its rule raise again, and several ingesters sharing
        the same devices converge."""
        for key, st in self.states.items():
            if st.active and key not in open_alarms:
                st.active = False
                st.pending_since = None
        for rule_id, device_id in open_alarms:
            self.mark_active(rule_id, device_id)

    def evaluate(
        self, device_id: int, rules: list[CompiledRule], samples: list[tuple[str, datetime, float]]
    ) -> list[Transition]:
        """Feed samples (metric, ts, value) of one device in time order. A sample older than
        one the rules already saw for that metric (it arrived late, from a gateway's buffer
        say) is stored by the caller but does not drive the rules: the device's state is
        what its newest readings say, so a late "normal" reading cannot clear an alarm."""
        out: list[Transition] = []
        latest = self.latest.setdefault(device_id, {})
        newest = self.newest.setdefault(device_id, {})
        for metric, ts, value in samples:
            seen = newest.get(metric)
            if seen is not None and ts < seen:
                continue
            newest[metric] = ts
            latest[metric] = value
            for rule in rules:
                c = rule.condition
                kind = c["kind"]
                if kind == "missing":
                    continue
                if kind in ("all", "any"):
                    if metric not in rule._metrics:
                        continue
                    t = self._combo(rule, device_id, latest, ts)
                elif c["metric"] != metric:
                    continue
                elif kind == "threshold":
                    t = self._threshold(rule, device_id, ts, value)
                elif kind == "duration":
                    t = self._duration(rule, device_id, ts, value)
                else:
                    t = self._rate(rule, device_id, ts, value)
                if t is not None:
                    out.append(t)
        return out

    def _set(
        self, rule: CompiledRule, device_id: int, active: bool, ts: datetime, value: float | None
    ) -> Transition | None:
        st = self.states.setdefault((rule.id, device_id), _State())
        if st.active == active:
            return None
        st.active = active
        return Transition(rule.id, device_id, "raise" if active else "clear", ts, value)

    def _threshold(
        self, rule: CompiledRule, device_id: int, ts: datetime, v: float
    ) -> Transition | None:
        st = self.states.setdefault((rule.id, device_id), _State())
        if not st.active and _breach(rule.condition, v):
            return self._set(rule, device_id, True, ts, v)
        if st.active and _recovered(rule.condition, v):
            return self._set(rule, device_id, False, ts, v)
        return None

    def _duration(
        self, rule: CompiledRule, device_id: int, ts: datetime, v: float
    ) -> Transition | None:
        c = rule.condition
        st = self.states.setdefault((rule.id, device_id), _State())
        if st.active:
            if _recovered(c, v):
                st.pending_since = None
                return self._set(rule, device_id, False, ts, v)
            return None
        if _breach(c, v):
            if st.pending_since is None:
                st.pending_since = ts
            if (ts - st.pending_since).total_seconds() >= float(c["seconds"]):
                return self._set(rule, device_id, True, ts, v)
        else:
            st.pending_since = None
        return None

    def _rate(
        self, rule: CompiledRule, device_id: int, ts: datetime, v: float
    ) -> Transition | None:
        c = rule.condition
        st = self.states.setdefault((rule.id, device_id), _State())
        prev_v, prev_ts = st.last_value, st.last_ts
        st.last_value, st.last_ts = v, ts
        if prev_v is None or prev_ts is None:
            return None
        minutes = (ts - prev_ts).total_seconds() / 60
        if minutes <= 0:
            return None
        rate = (v - prev_v) / minutes
        breach = OPS[c["op"]](rate, float(c["per_minute"]))
        return self._set(rule, device_id, breach, ts, rate) if breach != st.active else None

    def _combo(
        self, rule: CompiledRule, device_id: int, latest: dict[str, float], ts: datetime
    ) -> Transition | None:
        c = rule.condition
        subs = c["conditions"]
        if any(s["metric"] not in latest for s in subs):
            return None
        st = self.states.setdefault((rule.id, device_id), _State())
        join = all if c["kind"] == "all" else any
        if not st.active and join(_breach(s, latest[s["metric"]]) for s in subs):
            return self._set(rule, device_id, True, ts, None)
        if st.active:
            still = join(not _recovered(s, latest[s["metric"]]) for s in subs)
            if not still:
                return self._set(rule, device_id, False, ts, None)
        return None

    def sweep_missing(
        self, now: datetime, devices: Iterable[tuple[int, datetime | None, list[CompiledRule]]]
    ) -> list[Transition]:
        """Heartbeat rules: raise for devices silent too long, clear for those that spoke."""
        out: list[Transition] = []
        for device_id, last_seen, rules in devices:
            for rule in rules:
                if rule.kind != "missing":
                    continue
                silent = last_seen is None or (now - last_seen).total_seconds() > float(
                    rule.condition["seconds"]
                )
                t = self._set(rule, device_id, silent, now, None)
                if t is not None:
                    out.append(t)
        return out
