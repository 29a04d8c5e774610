"""Domain events through a transactional outbox.

* ``emit()`` writes an event row in the caller's transaction: it exists if and only if the
  change that caused it was committed.
* ``Dispatcher.run_once()`` delivers pending rows at least once: every registered handler
  runs in its own transaction together with a row in ``processed_events`` keyed by
  (handler, event id), so a redelivered event is skipped by handlers that already saw it.
  Then the event is published on the bus (live pages, other processes) and marked delivered.
  A crash anywhere before the mark leaves the row pending; the next run delivers it.
* The ``EventBus`` protocol is the seam for other transports: the in-process bus fans out
  to SSE subscribers; a NATS JetStream bus can be plugged in without touching the domains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linli.core.db import Database, utcnow
from linli.core.models import OutboxEvent, ProcessedEvent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Event:
    event_id: str
    name: str
    community_id: int | None
    payload: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "name": self.name,
            "community_id": self.community_id,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


def emit(session: Session, name: str, payload: dict[str, Any], *, community_id: int | None) -> str:
    """Record ``name`` (``domain.thing.verb``) in the current transaction. Returns the event id."""
    if not EVENT_NAME.match(name):
        raise ValueError(f"event name must be domain.thing.verb, got {name!r}")
    event_id = str(uuid.uuid4())
    session.add(
        OutboxEvent(event_id=event_id, name=name, community_id=community_id, payload=payload)
    )
    _signal_pending()
    return event_id


# -- handlers -------------------------------------------------------------------------

Handler = Callable[[Session, Event], None]


@dataclass
class _Registration:
    key: str
    pattern: str
    func: Handler


_handlers: list[_Registration] = []


def handles(pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler for events whose name matches ``pattern`` (fnmatch, e.g. ``iot.*``).

    Handlers must be idempotent with respect to the event id; the ledger already stops a
    handler from seeing the same event twice once its transaction committed.
    """

    def deco(func: Handler) -> Handler:
        key = f"{func.__module__}.{func.__qualname__}"
        if not any(r.key == key and r.pattern == pattern for r in _handlers):
            _handlers.append(_Registration(key=key, pattern=pattern, func=func))
        return func

    return deco


def registered_handlers() -> list[tuple[str, str]]:
    return [(r.key, r.pattern) for r in _handlers]


# -- buses ----------------------------------------------------------------------------


class EventBus(Protocol):
    def publish(self, event: Event) -> None: ...

    def subscribe(self) -> Subscription: ...


@dataclass(eq=False)
class Subscription:
    """A subscriber's queue, fed from any thread, read from asyncio."""

    loop: asyncio.AbstractEventLoop | None = None
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    closed: bool = False

    def put(self, event: Event) -> None:
        if self.closed:
            return
        if self.loop is None:
            self._put_nowait(event)
            return
        try:
            self.loop.call_soon_threadsafe(self._put_nowait, event)
        except RuntimeError:  # the subscriber's loop is closed: it will not read any more
            self.closed = True

    def _put_nowait(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a slow reader loses the oldest event, not the bus
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(event)


class InProcessBus:
    """Fan-out to the subscribers of this process (SSE streams, tests)."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.put(event)

    def subscribe(self) -> Subscription:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (loop.is_closed() or not loop.is_running()):
            loop = None  # a stale loop left registered in this thread: feed the queue directly
        sub = Subscription(loop=loop)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)


# -- dispatcher -------------------------------------------------------------------------

_wakeup = threading.Event()


def _signal_pending() -> None:
    _wakeup.set()


def _to_event(row: OutboxEvent) -> Event:
    return Event(
        event_id=row.event_id,
        name=row.name,
        community_id=row.community_id,
        payload=row.payload,
        created_at=row.created_at,
    )


class Dispatcher:
    def __init__(self, db: Database, bus: EventBus, batch: int = 200) -> None:
        self.db = db
        self.bus = bus
        self.batch = batch

    def _run_handler(self, reg: _Registration, event: Event) -> None:
        with self.db.session() as s:
            if s.get(ProcessedEvent, (reg.key, event.event_id)) is not None:
                return
            reg.func(s, event)
            s.add(ProcessedEvent(handler=reg.key, event_id=event.event_id))
            try:
                s.flush()
            except IntegrityError:  # another dispatcher handled it meanwhile
                s.rollback()

    def run_once(self) -> int:
        """Deliver pending events. Returns how many were delivered.

        Several dispatchers may run at once (several processes): handlers are protected by
        the ledger, and the bus may see an event twice, which is what at-least-once means.
        """
        with self.db.session() as s:
            # events whose handlers keep failing are parked after MAX_ATTEMPTS, so that they
            # cannot hold back newer events (they stay in the table, with their last error)
            q = select(OutboxEvent).where(
                OutboxEvent.delivered_at.is_(None), OutboxEvent.attempts < MAX_ATTEMPTS
            )
            rows = [
                (r.id, _to_event(r))
                for r in s.scalars(q.order_by(OutboxEvent.id).limit(self.batch))
            ]
        delivered = 0
        for row_id, event in rows:
            failed: Exception | None = None
            for reg in _handlers:
                if not fnmatch.fnmatchcase(event.name, reg.pattern):
                    continue
                try:
                    self._run_handler(reg, event)
                except Exception as exc:  # retried later; the other handlers still run now
                    log.exception(
                        "handler %s failed for %s %s", reg.key, event.name, event.event_id
                    )
                    failed = failed or exc
            if failed is not None:
                with self.db.session() as s:
                    s.execute(
                        update(OutboxEvent)
                        .where(OutboxEvent.id == row_id)
                        .values(attempts=OutboxEvent.attempts + 1, last_error=repr(failed)[:2000])
                    )
                continue
            self.bus.publish(event)
            with self.db.session() as s:
                s.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id == row_id)
                    .values(delivered_at=utcnow(), attempts=OutboxEvent.attempts + 1)
                )
            delivered += 1
        return delivered

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def run_forever(self, interval: float = 1.0) -> None:
        """Background loop: wakes on new events in this process, polls for the others."""
        while True:
            try:
                n = await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("event dispatch round failed")
                n = 0
            if n == 0:
                await asyncio.to_thread(_wakeup.wait, interval)
                _wakeup.clear()
