"""The terminal protocol over MQTT.

A terminal is an IoT device (its key and secret log it in to the broker). It publishes a
request (see :mod:`linli.waste.terminal`; add ``"id"``, any string or number, to match the
answer) to ``linli/devices/<terminal key>/waste/request`` and receives the answer, with the
same ``id``, on ``linli/devices/<terminal key>/waste/reply`` (a device may subscribe to
``linli/devices/<its key>/#``). Lids are ordinary devices: the ``open_lid`` command comes on
``linli/devices/<lid key>/commands`` and the lid acknowledges on ``.../commands/ack``.

The bridge runs in ``linli serve`` (started by the periodic loop); several replicas share the
requests through a shared subscription when the broker supports it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from linli.core.config import Settings
from linli.core.db import Database
from linli.core.files import FileStore
from linli.iot.ingest import TOPIC_PREFIX
from linli.iot.wire import InMessage, WireClient
from linli.waste import service, terminal

log = logging.getLogger(__name__)

REQUEST_SUFFIX = "/waste/request"
REPLY_SUFFIX = "/waste/reply"
MAX_REQUEST = 8 * 1024 * 1024


class TerminalBridge:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        files: FileStore,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        share_group: str | None = None,
        workers: int = 4,
        terminal: str = "+",
    ) -> None:
        """``terminal``: the device key to serve (default ``+``: every terminal)."""
        self.db, self.settings, self.files = db, settings, files
        topic = f"{TOPIC_PREFIX}{terminal}{REQUEST_SUFFIX}"
        if share_group:
            topic = f"$share/{share_group}/{topic}"
        self.client = WireClient(
            host,
            port,
            client_id=f"linli-waste-{socket.gethostname()[:20]}-{os.getpid()}",
            subscriptions=[(topic, 1)],
            on_messages=self._on_messages,
            clean_session=True,  # a request left over from before a restart is stale
            username=username,
            password=password,
        )
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="linli-waste-terminal")
        self.handled = 0

    def _on_messages(self, generation: int, messages: list[InMessage]) -> None:
        for m in messages:
            self.pool.submit(self._handle, generation, m)

    def _handle(self, generation: int, m: InMessage) -> None:
        topic, payload, qos, pid, _dup = m
        try:
            key = topic[len(TOPIC_PREFIX) : -len(REQUEST_SUFFIX)]
            answer = self.answer(key, payload)
            self.client.publish(
                f"{TOPIC_PREFIX}{key}{REPLY_SUFFIX}",
                json.dumps(answer, ensure_ascii=False, default=str),
                qos=1,
            )
            self.handled += 1
        except Exception:
            log.exception("waste terminal request on %s failed", topic)
        finally:
            if qos:
                self.client.ack(generation, [pid])

    def answer(self, key: str, payload: bytes) -> dict[str, Any]:
        req_id: Any = None
        if len(payload) > MAX_REQUEST:
            return {
                "ok": False,
                "status": 413,
                "error": {"code": "too_large", "message": "Request too large."},
            }
        try:
            req = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return {
                "ok": False,
                "status": 400,
                "error": {"code": "malformed_json", "message": "Not JSON."},
            }
        if isinstance(req, dict):
            req_id = req.get("id")
        with self.db.session() as s:
            try:
                station_id = service.station_for_terminal(s, key).id
            except Exception:
                return {
                    "id": req_id,
                    "ok": False,
                    "status": 404,
                    "error": {
                        "code": "station_not_found",
                        "message": "No station has this terminal.",
                    },
                }
        out = terminal.handle(self.db, self.settings, self.files, station_id, req)
        return {"id": req_id, **out}

    def start(self) -> None:
        self.client.start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.client.wait_connected(timeout)

    def stop(self) -> None:
        self.client.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)


_bridge: TerminalBridge | None = None
_lock = threading.Lock()


def ensure_bridge(db: Database, settings: Settings, files: FileStore) -> TerminalBridge:
    """Start the bridge once per process (idempotent), on the broker ``linli serve`` uses."""
    global _bridge
    with _lock:
        if _bridge is not None:
            return _bridge
        from linli.iot.broker import SERVICE_USER, service_password
        from linli.iot.mqtt import BrokerAddress

        if settings.mqtt_url:
            a = BrokerAddress.parse(settings.mqtt_url)
        else:
            host, _, port = settings.mqtt_listen.rpartition(":")
            a = BrokerAddress(
                host or "127.0.0.1",
                int(port),
                SERVICE_USER,
                service_password(settings.secret_key or ""),
            )
        _bridge = TerminalBridge(
            db, settings, files, a.host, a.port, username=a.username, password=a.password
        )
        _bridge.start()
        return _bridge


def stop_bridge() -> None:
    global _bridge
    with _lock:
        if _bridge is not None:
            _bridge.stop()
            _bridge = None
