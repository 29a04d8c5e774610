"""Linli's MQTT connection: ingests device messages and sends device commands.

QoS 1 end to end with manual acknowledgement: a message is acknowledged to the broker only
after the batch that contains it has been committed, and the session is persistent
(clean_session false), so a crash at any point loses nothing — the broker redelivers every
unacknowledged message, and the unique (device, metric, ts) key stores it exactly once.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from linli.core.db import Database, utcnow
from linli.iot import service
from linli.iot.ingest import TOPIC_PREFIX, Ingestor, IngestStats, Message
from linli.iot.models import Command, Device

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
        return cls(u.hostname or "127.0.0.1", u.port or 1883, u.username, u.password)


class MqttIngest:
    """Subscribe, batch, ingest, acknowledge. Runs in background threads."""

    def __init__(
        self,
        db: Database,
        broker: BrokerAddress,
        *,
        client_id: str = "linli-ingest",
        batch_size: int = 2000,
        max_wait: float = 0.05,
        sweep_every: float = 5.0,
        ingestor: Ingestor | None = None,
    ) -> None:
        self.db = db
        self.broker = broker
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.sweep_every = sweep_every
        self.ingestor = ingestor or Ingestor(db)
        self.queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.totals = IngestStats()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.5, 10)

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.error("MQTT connection refused: %s", rc)
            return
        client.subscribe(SUBSCRIPTIONS)
        self.connected.set()
        log.info("MQTT ingestion connected to %s:%s", self.broker.host, self.broker.port)

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.queue.put(msg)

    # -- worker ------------------------------------------------------------------------------

    def _drain(self) -> list[mqtt.MQTTMessage]:
        batch: list[mqtt.MQTTMessage] = []
        try:
            batch.append(self.queue.get(timeout=0.5))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
        return batch

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._drain()
            if not batch:
                continue
            now = utcnow()
            msgs = [Message(m.topic, m.payload, now) for m in batch]
            while not self._stop.is_set():
                try:
                    stats = self.ingestor.process(msgs)
                    break
                except Exception:  # database down: keep the messages, retry, ack nothing
                    log.exception("ingestion batch failed; retrying")
                    time.sleep(1.0)
            else:
                return
            self._add(stats)
            for m in batch:  # acknowledged only after the commit
                if m.qos > 0:
                    self.client.ack(m.mid, m.qos)

    def _add(self, st: IngestStats) -> None:
        t = self.totals
        t.messages += st.messages
        t.accepted += st.accepted
        t.samples += st.samples
        t.duplicates += st.duplicates
        t.rejected += st.rejected
        t.alarms_raised += st.alarms_raised
        t.alarms_cleared += st.alarms_cleared

    def _sweeper(self) -> None:
        while not self._stop.wait(self.sweep_every):
            try:
                self.ingestor.sweep()
                self.ingestor.invalidate()
            except Exception:
                log.exception("sweep failed")

    # -- commands ------------------------------------------------------------------------------

    def send_command(self, device: Device, cmd: Command) -> bool:
        payload = json.dumps({"id": cmd.id, "name": cmd.name, "params": cmd.params})
        info = self.client.publish(f"{TOPIC_PREFIX}{device.key}/commands", payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- life cycle ------------------------------------------------------------------------------

    def start(self, *, sweeper: bool = True) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        names = [("ingest", self._work)] + ([("sweep", self._sweeper)] if sweeper else [])
        for name, target in names:
            t = threading.Thread(target=target, name=f"linli-mqtt-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        service.set_command_sender(self.send_command)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.client.loop_stop()
        self.client.disconnect()
        service.set_command_sender(None)
