"""The transactional outbox: events exist iff their change committed, a crash between commit
and delivery loses nothing, handlers see each event exactly once, a failing handler is retried
without holding up the others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linli.core import audit, events
from linli.core.db import Database
from linli.core.events import Dispatcher, InProcessBus, emit, handles
from linli.core.models import AuditEntry, OutboxEvent, ProcessedEvent

TESTS_DIR = Path(__file__).resolve().parent

#: (handler name, event id) of every call, in order
CALLS: list[tuple[str, str]] = []
#: set in the child process of the crash test: die inside the handler, before its commit
DIE_IN_HANDLER = False


class Crash(BaseException):
    """The process going away (like SystemExit or KeyboardInterrupt): no ``except Exception``
    catches it."""


def _effect(s, event, who):
    """An idempotent side effect keyed by the event id: one audit row per (who, event)."""
    CALLS.append((who, event.event_id))
    done = s.scalar(
        select(AuditEntry.id).where(
            AuditEntry.action == f"effect.{who}", AuditEntry.target_id == event.event_id
        )
    )
    if done is None:
        audit.record(
            s,
            audit.Actor.system(who),
            f"effect.{who}",
            "event",
            event.event_id,
            community_id=event.community_id,
            details={"n": event.payload.get("n")},
        )


def effect_a(s, event):
    _effect(s, event, "a")
    if DIE_IN_HANDLER:
        s.flush()  # the effect is written in the open transaction ...
        os._exit(17)  # ... and the process dies before the commit


def effect_b(s, event):
    _effect(s, event, "b")


@pytest.fixture
def registry(monkeypatch):
    """An empty handler registry for the test (the product's own handlers stay out of it)."""
    monkeypatch.setattr(events, "_handlers", [])
    CALLS.clear()
    yield events._handlers
    CALLS.clear()


def _emit(db, name, n, community_id=None):
    with db.session() as s:
        return emit(s, name, {"n": n}, community_id=community_id)


def _effects(db, who, event_id=None):
    with db.session() as s:
        q = select(func.count()).where(AuditEntry.action == f"effect.{who}")
        if event_id is not None:
            q = q.where(AuditEntry.target_id == event_id)
        return s.scalar(q)


def _row(db, event_id):
    with db.session() as s:
        return s.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))


def _drain_queue(sub):
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


def test_event_exists_only_if_its_change_committed(db):
    with db.session() as s:
        committed = emit(s, "test.thing.happened", {"n": 1}, community_id=None)
    with pytest.raises(RuntimeError), db.session() as s:
        emit(s, "test.thing.happened", {"n": 2}, community_id=None)
        raise RuntimeError("the change failed")
    with db.session() as s:
        ids = list(s.scalars(select(OutboxEvent.event_id)))
    assert ids == [committed]
    assert _row(db, committed).delivered_at is None
    with pytest.raises(ValueError), db.session() as s:
        emit(s, "NotDotted", {}, community_id=None)


def test_dispatcher_runs_handlers_publishes_and_marks_delivered(db, registry):
    handles("test.thing.*")(effect_a)
    handles("test.*")(effect_b)
    e1 = _emit(db, "test.thing.happened", 1)
    e2 = _emit(db, "other.thing.happened", 2)
    e3 = _emit(db, "test.thing.happened", 3)
    bus = InProcessBus()
    sub = bus.subscribe()
    assert Dispatcher(db, bus).run_once() == 3
    assert [e.event_id for e in _drain_queue(sub)] == [e1, e2, e3]
    assert [("a", e1), ("b", e1), ("a", e3), ("b", e3)] == CALLS
    for eid in (e1, e2, e3):
        row = _row(db, eid)
        assert row.delivered_at is not None and row.attempts == 1
    # nothing is delivered twice
    assert Dispatcher(db, bus).run_once() == 0
    assert len(CALLS) == 4 and sub.queue.empty()


def test_crash_inside_a_handler_loses_no_event(db, registry):
    """The handler dies before its transaction commits: its writes vanish, the event stays
    pending, and the next dispatcher delivers it once."""
    global DIE_IN_HANDLER

    handles("test.*")(effect_b)

    def dying(s, event):
        effect_a(s, event)
        s.flush()
        raise Crash

    handles("test.*")(dying)
    eid = _emit(db, "test.order.placed", 1)
    with pytest.raises(Crash):
        Dispatcher(db, InProcessBus()).run_once()
    assert _effects(db, "a") == 0  # rolled back with the handler's transaction
    assert _effects(db, "b") == 1  # the handler before it had finished
    assert _row(db, eid).delivered_at is None

    # "restart": a new process with a fresh engine and the handler fixed
    registry.clear()
    handles("test.*")(effect_b)
    handles("test.*")(effect_a)
    CALLS.clear()
    fresh = Database(db.url)
    try:
        bus = InProcessBus()
        sub = bus.subscribe()
        assert Dispatcher(fresh, bus).run_once() == 1
        assert Dispatcher(fresh, bus).run_once() == 0
    finally:
        fresh.dispose()
    assert [("a", eid)] == CALLS  # b had already handled it: the ledger skips it
    assert _effects(db, "a", eid) == 1 and _effects(db, "b", eid) == 1
    assert [e.event_id for e in _drain_queue(sub)] == [eid]
    assert _row(db, eid).delivered_at is not None


def test_crash_after_handlers_before_the_delivered_mark(db, registry):
    class DyingBus(InProcessBus):
        def publish(self, event):
            raise Crash

    handles("test.*")(effect_a)
    eid = _emit(db, "test.order.placed", 1)
    with pytest.raises(Crash):
        Dispatcher(db, DyingBus()).run_once()
    assert _effects(db, "a", eid) == 1
    assert _row(db, eid).delivered_at is None

    CALLS.clear()
    bus = InProcessBus()
    sub = bus.subscribe()
    assert Dispatcher(Database(db.url), bus).drain() == 1
    assert CALLS == []  # already handled: not run again
    assert _effects(db, "a", eid) == 1
    assert [e.event_id for e in _drain_queue(sub)] == [eid]  # but published, at least once
    assert _row(db, eid).delivered_at is not None


CHILD = """
import os, sys
sys.path.insert(0, {tests!r})
import test_outbox as t
from linli.core import events
from linli.core.db import Database

mode, url = sys.argv[1], sys.argv[2]
events.handles("test.*")(t.effect_a)

class DyingBus(events.InProcessBus):
    def publish(self, event):
        os._exit(17)  # the handlers committed; the process dies before marking delivered

t.DIE_IN_HANDLER = mode == "handler"
events.Dispatcher(Database(url), DyingBus()).run_once()
sys.exit(0)  # not reached
"""


@pytest.mark.parametrize("mode", ["handler", "publish"])
def test_process_killed_between_commit_and_delivery(db, registry, mode):
    """A real process dies (os._exit) with an event in flight; a new dispatcher in another
    process delivers it, and the idempotent handler's effect exists exactly once."""
    eid = _emit(db, "test.order.placed", 7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS_DIR)), mode, db.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=TESTS_DIR.parent,
    )
    assert child.returncode == 17, child.stderr[-2000:]
    assert _row(db, eid).delivered_at is None
    assert _effects(db, "a", eid) == (0 if mode == "handler" else 1)

    handles("test.*")(effect_a)
    bus = InProcessBus()
    sub = bus.subscribe()
    assert Dispatcher(Database(db.url), bus).drain() == 1
    assert ([("a", eid)] if mode == "handler" else []) == CALLS
    assert _effects(db, "a", eid) == 1
    with db.session() as s:
        ledger = s.scalar(select(func.count()).where(ProcessedEvent.event_id == eid))
    assert ledger == 1
    assert [e.event_id for e in _drain_queue(sub)] == [eid]
    assert Dispatcher(db, bus).run_once() == 0


def test_failing_handler_is_retried_and_does_not_block_others(db, registry):
    failures = {"left": 1}

    def flaky(s, event):
        _effect(s, event, "flaky")  # written, then rolled back by the failure
        if event.payload["n"] == 1 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("gateway timeout")

    handles("test.*")(flaky)
    handles("test.*")(effect_b)
    e1 = _emit(db, "test.order.placed", 1)
    e2 = _emit(db, "test.order.placed", 2)
    bus = InProcessBus()
    sub = bus.subscribe()

    assert Dispatcher(db, bus).run_once() == 1  # e2 went through although e1 failed
    row1 = _row(db, e1)
    assert row1.delivered_at is None
    assert row1.attempts == 1 and "gateway timeout" in (row1.last_error or "")
    assert _row(db, e2).delivered_at is not None
    assert _effects(db, "flaky", e1) == 0
    assert _effects(db, "flaky", e2) == 1
    assert _effects(db, "b", e1) == 1 and _effects(db, "b", e2) == 1  # other handler not held up
    assert [e.event_id for e in _drain_queue(sub)] == [e2]

    CALLS.clear()
    assert Dispatcher(db, bus).run_once() == 1  # the retry
    assert [("flaky", e1)] == CALLS  # effect_b is not run again for e1
    assert _row(db, e1).delivered_at is not None and _row(db, e1).attempts == 2
    assert _effects(db, "flaky", e1) == 1 and _effects(db, "b", e1) == 1
    assert [e.event_id for e in _drain_queue(sub)] == [e1]
    assert Dispatcher(db, bus).drain() == 0


def test_domain_change_reaches_a_registered_handler(client, db, world, registry):
    """An event emitted by a real service call (creating a resident) is handled and published."""
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    seen = []

    @handles("people.resident.*")
    def on_resident(s, event):
        seen.append((event.name, event.payload["id"], event.community_id))

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=world.a,
                name="t",
                prefix=prefix,
                token_hash=hashed,
                permissions=["people.write", "people.read"],
            )
        )
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        headers={"Authorization": f"Bearer {raw}"},
        json={"name": "新来的"},
    )
    assert r.status_code == 201
    sub = client.app.state.bus.subscribe()
    client.app.state.dispatcher.drain()
    assert seen == [("people.resident.created", r.json()["id"], world.a)]
    assert [e.name for e in _drain_queue(sub)] == ["people.resident.created"]
