"""Event bus over NATS JetStream, for several `linli serve` replicas.

Every delivered event is published to the subject ``linli.events.<community>.<name>`` of the
JetStream stream ``LINLI_EVENTS`` (with the event id as ``Nats-Msg-Id``, so a redelivery by a
second dispatcher is de-duplicated by the server), and every replica fans what it receives out
to its own SSE subscribers. Domains never see the difference: they only call ``emit()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import datetime
from typing import Any

import nats
from nats.js.api import StreamConfig

from linli.core.events import Event, InProcessBus, Subscription

log = logging.getLogger(__name__)

STREAM = "LINLI_EVENTS"
SUBJECTS = "linli.events.>"


def subject_for(event: Event) -> str:
    return f"linli.events.{event.community_id or 0}.{event.name}"


def _decode(data: bytes) -> Event:
    d: dict[str, Any] = json.loads(data)
    return Event(
        event_id=d["id"],
        name=d["name"],
        community_id=d.get("community_id"),
        payload=d.get("payload") or {},
        created_at=datetime.fromisoformat(d["created_at"]),
    )


class NatsBus:
    """Publish to JetStream; receive every replica's events and hand them to local subscribers."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, max_age_s: float = 86400) -> None:
        self.url = url
        self.local = InProcessBus()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._nc: Any = None
        self._js: Any = None
        self._max_age = max_age_s
        self._thread = threading.Thread(target=self._run, name="linli-nats", daemon=True)
        self._thread.start()
        if not self._ready.wait(connect_timeout) or self._error is not None:
            raise ConnectionError(f"cannot reach NATS at {url}: {self._error or 'timeout'}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._connect())
        if self._error is None:
            self._loop.run_forever()

    async def _connect(self) -> None:
        try:
            self._nc = await nats.connect(self.url, connect_timeout=3, max_reconnect_attempts=-1)
            self._js = self._nc.jetstream()
            try:
                await self._js.add_stream(
                    StreamConfig(name=STREAM, subjects=[SUBJECTS], max_age=self._max_age)
                )
            except Exception:  # exists already with other settings: use it as it is
                log.debug("JetStream stream %s exists", STREAM)
            await self._nc.subscribe(SUBJECTS, cb=self._on_message)
        except Exception as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _on_message(self, msg: Any) -> None:
        try:
            event = _decode(msg.data)
        except (ValueError, KeyError, TypeError):
            log.warning("undecodable event on %s", msg.subject)
            return
        self.local.publish(event)

    async def _publish(self, event: Event) -> None:
        data = json.dumps(event.as_dict(), ensure_ascii=False).encode()
        try:
            await self._js.publish(
                subject_for(event), data, headers={"Nats-Msg-Id": event.event_id}
            )
        except Exception:
            log.exception("publishing event %s to NATS failed", event.event_id)

    # -- EventBus protocol ------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._publish(event), self._loop)
        fut.result(timeout=10)

    def subscribe(self) -> Subscription:
        return self.local.subscribe()

    def unsubscribe(self, sub: Subscription) -> None:
        self.local.unsubscribe(sub)

    def close(self) -> None:
        async def _close() -> None:
            if self._nc is not None:
                await self._nc.drain()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
