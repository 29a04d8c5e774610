"""Linli's MQTT connection: ingests device messages and sends device commands.

QoS 1 end to end with manual acknowledgement: a message is acknowledged to the broker only
after the batch that contains it has been committed, and the session is persistent
(clean session false), so a crash at any point loses nothing — the broker redelivers every
unacknowledged message, and the unique (device, metric, ts) key stores it exactly once.

The connection is :class:`linli.iot.wire.WireClient` (a lean MQTT 3.1.1 client: chunked
reads, one write for a whole batch of acknowledgements). Messages wait in memory for the
ingestion thread; past ``max_pending`` the client stops reading and TCP flow control makes
the broker hold the rest. The broker must let enough messages be in flight unacknowledged
(Mosquitto: ``max_inflight_messages 0`` or several thousand) — with Mosquitto's default of
20, every batch holds at most 20 messages. See docs/devices.md.

Several ingesters (``python -m linli.iot.worker``) can share the load with a shared
subscription (``share_group``): the broker hands each message to one of them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from linli.core.db import Database, utcnow
from linli.iot import service
from linli.iot.ingest import TOPIC_PREFIX, Ingestor, IngestStats
from linli.iot.models import Command, Device
from linli.iot.wire import InMessage, WireClient

log = logging.getLogger(__name__)

SUBSCRIPTIONS = [
    (f"{TOPIC_PREFIX}+/telemetry", 1),
    (f"{TOPIC_PREFIX}+/status", 1),
    (f"{TOPIC_PREFIX}+/commands/ack", 1),
]


@dataclass
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported MQTT URL scheme {u.scheme!r} (use mqtt://host:port)")
        return cls(
            u.hostname or "127.0.0.1",
            u.port or 1883,
            unquote(u.username) if u.username else None,
            unquote(u.password) if u.password else None,
        )


def subscriptions(share_group: str | None = None) -> list[tuple[str, int]]:
    if not share_group:
        return list(SUBSCRIPTIONS)
    return [(f"$share/{share_group}/{topic}", qos) for topic, qos in SUBSCRIPTIONS]


class MqttIngest:
    """Subscribe, batch, ingest, acknowledge. Runs in two background threads (network and
    ingestion); the ingestion thread also runs the heartbeat sweep every ``sweep_every``
    seconds, between batches."""

    def __init__(
        self,
        db: Database,
        broker: BrokerAddress,
        *,
        client_id: str = "linli-ingest",
        batch_size: int = 10_000,
        max_wait: float = 0.05,
        sweep_every: float = 5.0,
        ingestor: Ingestor | None = None,
        share_group: str | None = None,
        max_pending: int = 100_000,
        keepalive: int = 30,
    ) -> None:
        self.db = db
        self.broker = broker
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.sweep_every = sweep_every
        self.max_pending = max_pending
        # device counters and last-seen times: written at most every 2 s per device
        # (rules, devices and open alarms re-read every 10 s and at each heartbeat sweep)
        self.ingestor = ingestor or Ingestor(db, cache_seconds=10.0, seen_interval=2.0)
        self.totals = IngestStats()
        self.batches = 0
        self._pending: deque[tuple[float, int, list[InMessage]]] = deque()
        self._pending_count = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sweeper = True
        self.client = WireClient(
            broker.host,
            broker.port,
            client_id=client_id,
            subscriptions=subscriptions(share_group),
            on_messages=self._on_messages,
            clean_session=False,
            username=broker.username,
            password=broker.password,
            keepalive=keepalive,
            paused=self._paused,
        )

    @property
    def connected(self) -> threading.Event:
        return self.client.connected

    @property
    def pending(self) -> int:
        """Messages received and not yet committed."""
        return self._pending_count

    # -- network thread ----------------------------------------------------------------------

    def _on_messages(self, generation: int, messages: list[InMessage]) -> None:
        with self._cond:
            self._pending.append((time.monotonic(), generation, messages))
            self._pending_count += len(messages)
            self._cond.notify()

    def _paused(self) -> bool:
        return self._pending_count >= self.max_pending

    # -- ingestion thread --------------------------------------------------------------------

    def _take(self, timeout: float) -> list[tuple[int, list[InMessage]]]:
        """The next batch: up to ``batch_size`` messages, once the oldest waited ``max_wait``
        (or the batch is full). Empty after ``timeout`` without messages."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stop.is_set():
                    return []
                now = time.monotonic()
                if self._pending:
                    ready_at = self._pending[0][0] + self.max_wait
                    if self._pending_count >= self.batch_size or now >= ready_at:
                        break
                    self._cond.wait(ready_at - now)
                    continue
                if now >= deadline:
                    return []
                self._cond.wait(deadline - now)
            batch: list[tuple[int, list[InMessage]]] = []
            room = self.batch_size
            while self._pending and room > 0:
                arrived, gen, msgs = self._pending[0]
                if len(msgs) <= room:
                    self._pending.popleft()
                    batch.append((gen, msgs))
                    room -= len(msgs)
                else:
                    batch.append((gen, msgs[:room]))
                    self._pending[0] = (arrived, gen, msgs[room:])
                    room = 0
            return batch

    def _release(self, count: int) -> None:
        with self._cond:
            self._pending_count -= count

    def _work(self) -> None:
        next_sweep = time.monotonic() + (self.sweep_every if self._sweeper else 1e12)
        while not self._stop.is_set():
            wait = max(0.0, min(0.5, next_sweep - time.monotonic()))
            batch = self._take(wait)
            if batch:
                self._ingest(batch)
            else:
                self._flush()
            if self._sweeper and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_every
                try:
                    self.ingestor.sweep()
                except Exception:
                    log.exception("heartbeat sweep failed")

    def _flush(self) -> None:
        try:
            self.ingestor.flush()
        except Exception:
            log.exception("writing device counters failed")

    def _ingest(self, batch: list[tuple[int, list[InMessage]]]) -> None:
        items = batch[0][1] if len(batch) == 1 else [m for _gen, msgs in batch for m in msgs]
        delay = 0.5
        while True:
            try:
                stats = self.ingestor.process_raw(items, utcnow())
                break
            except Exception:  # database down: keep the messages, retry, acknowledge nothing
                log.exception("ingestion batch of %d messages failed; retrying", len(items))
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
        self.totals.add(stats, keep_rejections=100)
        self.batches += 1
        for gen, msgs in batch:  # acknowledged only after the commit, in the order received
            self.client.ack(gen, [m[3] for m in msgs if m[2]])
        self._release(len(items))

    # -- commands ------------------------------------------------------------------------------

    def send_command(self, device: Device, cmd: Command) -> bool:
        """Publish a command (QoS 1) once the transaction that records it commits — a quick
        device must find the command when its acknowledgement comes back — and not at all if
        it rolls back. True when the broker connection is up (a QoS 1 publish made while it
        is down is sent on reconnection)."""
        topic = f"{TOPIC_PREFIX}{device.key}/commands"
        payload = json.dumps({"id": cmd.id, "name": cmd.name, "params": cmd.params})
        session = object_session(cmd)
        if session is None or not session.in_transaction():
            return self.client.publish(topic, payload, qos=1) or self.client.connected.is_set()

        done = [False]

        def committed(_s: Session) -> None:
            if not done[0]:
                done[0] = True
                self.client.publish(topic, payload, qos=1)

        def rolled_back(_s: Session) -> None:
            done[0] = True

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_rollback", rolled_back)
        return self.client.connected.is_set()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self, *, sweeper: bool = True, commands: bool = True) -> None:
        self._sweeper = sweeper
        self._stop.clear()
        self.client.start()
        t = threading.Thread(target=self._work, name="linli-mqtt-ingest", daemon=True)
        t.start()
        self._threads.append(t)
        if commands:
            service.set_command_sender(self.send_command)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.client.wait_connected(timeout)

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect. Messages not yet committed stay with
        the broker (persistent session) and come back on the next start."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        self._flush()
        self.client.stop()
        if service._sender == self.send_command:
            service.set_command_sender(None)
