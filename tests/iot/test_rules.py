"""The rule engine (pure logic): thresholds with hysteresis, durations, rates, heartbeats,
combinations, and the validation of conditions written by staff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from linli.iot.profiles import BUILTIN
from linli.iot.rules import CompiledRule, RuleEngine, RuleError, validate_condition

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DEV = 7


def rule(condition, rid=1):
    validate_condition(condition)
    return CompiledRule(rid, f"rule {rid}", condition, "major")


def feed(engine, rules, metric, values, *, step=10.0, start=T0, device=DEV):
    """Feed one value per sample, ``step`` seconds apart; returns [(sample index, action)]."""
    out = []
    for i, v in enumerate(values):
        ts = start + timedelta(seconds=i * step)
        for t in engine.evaluate(device, rules, [(metric, ts, float(v))]):
            out.append((i, t.action))
    return out


# -- threshold -------------------------------------------------------------------------------


def test_threshold_with_hysteresis_does_not_flap():
    r = rule({"kind": "threshold", "metric": "pressure", "op": "<", "value": 0.15, "clear": 0.2})
    e = RuleEngine()
    # hovering around the threshold: one raise, no clear until back above 0.2
    values = [0.3, 0.14, 0.16, 0.14, 0.16, 0.19, 0.149, 0.2, 0.21, 0.25, 0.14]
    assert feed(e, [r], "pressure", values) == [(1, "raise"), (8, "clear"), (10, "raise")]


def test_threshold_without_clear_level_clears_when_back():
    r = rule({"kind": "threshold", "metric": "fill", "op": ">=", "value": 90})
    e = RuleEngine()
    assert feed(e, [r], "fill", [50, 90, 95, 89.9, 89, 91]) == [
        (1, "raise"),
        (3, "clear"),
        (5, "raise"),
    ]


def test_threshold_transition_carries_time_value_and_ids():
    r = rule({"kind": "threshold", "metric": "smoke", "op": "==", "value": 1}, rid=42)
    e = RuleEngine()
    [t] = e.evaluate(DEV, [r], [("smoke", T0, 0.0), ("smoke", T0 + timedelta(seconds=5), 1.0)])
    assert (t.rule_id, t.device_id, t.action, t.value) == (42, DEV, "raise", 1.0)
    assert t.at == T0 + timedelta(seconds=5)


def test_rules_ignore_other_metrics_and_devices_are_independent():
    r = rule({"kind": "threshold", "metric": "tilt", "op": ">", "value": 15, "clear": 5})
    e = RuleEngine()
    assert feed(e, [r], "battery", [99, 100]) == []
    assert feed(e, [r], "tilt", [20], device=1) == [(0, "raise")]
    assert feed(e, [r], "tilt", [20], device=2) == [(0, "raise")]
    assert feed(e, [r], "tilt", [3], device=1) == [(0, "clear")]
    assert e.states[(1, 2)].active and not e.states[(1, 1)].active


def test_marked_active_state_does_not_raise_again_and_sync_follows_open_alarms():
    r = rule({"kind": "threshold", "metric": "leak", "op": "==", "value": 1})
    e = RuleEngine()
    e.mark_active(1, DEV)  # an alarm still open after a restart
    assert feed(e, [r], "leak", [1, 1]) == []
    # staff cleared the alarm by hand while the leak goes on: it is raised again
    e.sync_active(set())
    later = T0 + timedelta(minutes=1)
    assert feed(e, [r], "leak", [1], start=later) == [(0, "raise")]
    e.sync_active({(1, DEV)})
    assert feed(e, [r], "leak", [1, 0], start=later + timedelta(minutes=1)) == [(1, "clear")]


# -- duration -------------------------------------------------------------------------------


def test_duration_raises_only_after_the_condition_held_long_enough():
    r = rule(
        {
            "kind": "duration",
            "metric": "temperature",
            "op": ">",
            "value": 65,
            "seconds": 60,
            "clear": 55,
        }
    )
    e = RuleEngine()
    # 70 for 50 s, a dip, then 70 for 60 s: raises at the 7th sample of the second streak
    values = [70, 70, 70, 70, 70, 70, 60, 70, 70, 70, 70, 70, 70, 70, 60, 56, 54]
    assert feed(e, [r], "temperature", values) == [(13, "raise"), (16, "clear")]


def test_duration_clear_needs_the_clear_level():
    r = rule(
        {
            "kind": "duration",
            "metric": "pressure",
            "op": "<",
            "value": 0.14,
            "seconds": 20,
            "clear": 0.18,
        }
    )
    e = RuleEngine()
    values = [0.1, 0.1, 0.1, 0.15, 0.17, 0.13, 0.19]
    assert feed(e, [r], "pressure", values) == [(2, "raise"), (6, "clear")]


# -- rate ----------------------------------------------------------------------------------


def test_rate_per_minute_between_consecutive_samples():
    r = rule({"kind": "rate", "metric": "fill", "op": ">", "per_minute": 5})
    e = RuleEngine()
    # samples a minute apart: +2, +10 (raise), +10, +1 (clear)
    ts = [T0 + timedelta(minutes=i) for i in range(5)]
    fills = [10, 12, 22, 32, 33]
    actions = []
    for t, v in zip(ts, fills, strict=True):
        actions += [(x.action, x.value) for x in e.evaluate(DEV, [r], [("fill", t, float(v))])]
    assert actions == [("raise", 10.0), ("clear", 1.0)]


def test_rate_ignores_samples_out_of_order_or_at_the_same_time():
    r = rule({"kind": "rate", "metric": "fill", "op": ">", "per_minute": 5})
    e = RuleEngine()
    assert e.evaluate(DEV, [r], [("fill", T0, 10.0), ("fill", T0, 90.0)]) == []
    assert e.evaluate(DEV, [r], [("fill", T0 - timedelta(minutes=1), 0.0)]) == []


# -- missing data (heartbeat) ---------------------------------------------------------------


def test_missing_with_a_controllable_clock():
    r = rule({"kind": "missing", "seconds": 300})
    other = rule({"kind": "threshold", "metric": "x", "op": ">", "value": 1}, rid=2)
    e = RuleEngine()
    last_seen = T0
    clock = T0 + timedelta(seconds=299)
    assert e.sweep_missing(clock, [(DEV, last_seen, [r, other])]) == []
    clock = T0 + timedelta(seconds=301)
    [t] = e.sweep_missing(clock, [(DEV, last_seen, [r, other])])
    assert (t.action, t.rule_id, t.at) == ("raise", 1, clock)
    # still silent: no second raise
    assert e.sweep_missing(clock + timedelta(hours=1), [(DEV, last_seen, [r])]) == []
    # it spoke again
    last_seen = clock + timedelta(hours=1)
    [t] = e.sweep_missing(last_seen + timedelta(seconds=1), [(DEV, last_seen, [r])])
    assert t.action == "clear"
    # never heard from at all counts as silent
    [t] = e.sweep_missing(clock, [(99, None, [r])])
    assert (t.device_id, t.action) == (99, "raise")


def test_missing_rules_are_not_evaluated_on_samples():
    r = rule({"kind": "missing", "seconds": 60})
    e = RuleEngine()
    assert feed(e, [r], "x", [1, 2, 3]) == []
    assert r.metrics() == frozenset()


# -- combinations ---------------------------------------------------------------------------

TILT = {"kind": "threshold", "metric": "tilt", "op": ">", "value": 15, "clear": 5}
DISP = {"kind": "threshold", "metric": "displacement", "op": ">", "value": 20, "clear": 5}


def _combo_run(kind, steps):
    r = rule({"kind": kind, "conditions": [TILT, DISP]})
    e = RuleEngine()
    out = []
    for i, (metric, v) in enumerate(steps):
        ts = T0 + timedelta(seconds=i)
        out += [(i, t.action) for t in e.evaluate(DEV, [r], [(metric, ts, float(v))])]
    return out


def test_any_raises_on_one_condition_and_clears_when_all_recovered():
    steps = [
        ("tilt", 1),
        ("displacement", 2),  # both known, both fine
        ("tilt", 30),  # raise
        ("displacement", 30),
        ("tilt", 1),  # displacement still high: stays
        ("displacement", 10),  # between clear (5) and raise (20): stays (hysteresis)
        ("displacement", 4),  # clear
    ]
    assert _combo_run("any", steps) == [(2, "raise"), (6, "clear")]


def test_all_needs_every_condition_and_clears_when_one_recovers():
    steps = [
        ("tilt", 30),  # displacement not known yet: nothing
        ("displacement", 2),
        ("displacement", 25),  # both: raise
        ("tilt", 10),  # not recovered below 5 yet: stays
        ("tilt", 4),  # clear
        ("tilt", 30),  # displacement still 25: raise again
    ]
    assert _combo_run("all", steps) == [(2, "raise"), (4, "clear"), (5, "raise")]


def test_combination_metrics():
    r = rule({"kind": "any", "conditions": [TILT, DISP]})
    assert r.metrics() == {"tilt", "displacement"}


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        ([1, 2], "JSON object"),
        ({"kind": "bogus"}, "unknown rule kind"),
        ({"metric": "x", "op": ">", "value": 1}, "unknown rule kind"),
        ({"kind": "threshold", "op": ">", "value": 1}, "'metric' is required"),
        ({"kind": "threshold", "metric": "", "op": ">", "value": 1}, "'metric' is required"),
        ({"kind": "threshold", "metric": "x", "op": "=>", "value": 1}, "'op'"),
        ({"kind": "threshold", "metric": "x", "op": ">", "value": "1"}, "'value'"),
        ({"kind": "threshold", "metric": "x", "op": ">", "value": True}, "'value'"),
        ({"kind": "threshold", "metric": "x", "op": ">", "value": float("nan")}, "'value'"),
        ({"kind": "threshold", "metric": "x", "op": ">", "value": 1, "clear": "0"}, "'clear'"),
        ({"kind": "threshold", "metric": "x", "op": ">", "value": 10, "clear": 12}, "above"),
        ({"kind": "threshold", "metric": "x", "op": "<", "value": 10, "clear": 8}, "below"),
        ({"kind": "threshold", "metric": "x", "op": "==", "value": 1, "clear": 0}, "applies"),
        ({"kind": "duration", "metric": "x", "op": ">", "value": 1}, "'seconds'"),
        ({"kind": "duration", "metric": "x", "op": ">", "value": 1, "seconds": 0}, "'seconds'"),
        ({"kind": "duration", "metric": "x", "op": ">", "value": 1, "seconds": 1e9}, "30 days"),
        ({"kind": "rate", "metric": "x", "op": ">"}, "'per_minute'"),
        ({"kind": "missing"}, "'seconds'"),
        ({"kind": "missing", "seconds": -5}, "'seconds'"),
        ({"kind": "any", "conditions": []}, "non-empty"),
        ({"kind": "all", "conditions": "tilt>3"}, "non-empty"),
        ({"kind": "all", "conditions": [{"kind": "missing", "seconds": 5}]}, "threshold"),
        ({"kind": "all", "conditions": [TILT] * 21}, "20 conditions"),
    ],
)
def test_invalid_conditions_are_refused_with_a_reason(cond, message):
    with pytest.raises(RuleError) as exc:
        validate_condition(cond)
    assert message in str(exc.value)


def test_unknown_metric_of_the_profile_is_refused():
    validate_condition(TILT, ["tilt", "displacement"])
    with pytest.raises(RuleError, match="no metric 'pressure'"):
        validate_condition({**TILT, "metric": "pressure"}, ["tilt", "displacement"])
    with pytest.raises(RuleError, match="no metric"):
        validate_condition({"kind": "any", "conditions": [TILT, {**DISP, "metric": "z"}]}, ["tilt"])


def test_every_builtin_default_rule_is_valid():
    for _key, (_n, _zh, _cat, _interval, metrics, rules) in BUILTIN.items():
        for r in rules:
            validate_condition(r["condition"], [m["key"] for m in metrics])


def test_a_late_sample_does_not_clear_or_raise():
    """Readings that arrive after newer ones (a gateway's buffer) do not move the state."""
    r = rule({"kind": "threshold", "metric": "fill", "op": ">=", "value": 90})
    e = RuleEngine()
    assert [t.action for t in e.evaluate(DEV, [r], [("fill", T0, 95.0)])] == ["raise"]
    # an older, normal reading arrives late: still full
    assert e.evaluate(DEV, [r], [("fill", T0 - timedelta(minutes=5), 40.0)]) == []
    # a newer normal reading clears; then a late full one does not raise again
    assert [
        t.action for t in e.evaluate(DEV, [r], [("fill", T0 + timedelta(minutes=1), 40.0)])
    ] == ["clear"]
    assert e.evaluate(DEV, [r], [("fill", T0 + timedelta(seconds=30), 99.0)]) == []
    # other metrics and other devices keep their own clocks
    assert [
        t.action for t in e.evaluate(DEV + 1, [r], [("fill", T0 - timedelta(hours=1), 91.0)])
    ] == ["raise"]
