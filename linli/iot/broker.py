"""The embedded MQTT broker (amqtt) that `linli serve` starts when no external broker is set.

Devices log in with their key and secret; each device may publish only under its own topic
``linli/devices/<key>/…`` and subscribe only to its own commands. Linli's own ingestion client
logs in with a service account whose password is derived from the server's secret key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession

from linli.core.db import Database
from linli.iot.ingest import TOPIC_PREFIX

log = logging.getLogger(__name__)
SERVICE_USER = "linli-service"

_db: Database | None = None
_service_password: str | None = None


def service_password(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"linli-mqtt-service", hashlib.sha256).hexdigest()


def _check_device(username: str, password: str) -> bool:
    from linli.iot.service import check_device_secret

    if _db is None:
        return False
    with _db.session() as s:
        return check_device_secret(s, username, password) is not None


class DeviceAuthPlugin(BaseAuthPlugin):
    """Devices by key and secret; the service account by its derived password."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: MqttSession) -> bool:
        user = session.username or ""
        raw = session.password
        password = raw.decode() if isinstance(raw, bytes | bytearray) else (raw or "")
        if not user or not password:
            return False
        if user == SERVICE_USER:
            return _service_password is not None and hmac.compare_digest(
                password, _service_password
            )
        return await asyncio.to_thread(_check_device, user, password)


class DeviceTopicPlugin(BaseTopicPlugin):
    """A device reaches only its own topics."""

    @dataclass
    class Config:
        pass

    async def topic_filtering(
        self,
        *,
        session: MqttSession | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or not topic:
            return False
        user = session.username or ""
        if user == SERVICE_USER:
            return True
        own = f"{TOPIC_PREFIX}{user}/"
        if action == Action.SUBSCRIBE:
            return topic in (own + "commands", own + "#") or topic.startswith(own + "commands")
        return topic.startswith(own)


def broker_config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {
            "default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 20000}
        },
        "plugins": {
            "linli.iot.broker.DeviceAuthPlugin": {},
            "linli.iot.broker.DeviceTopicPlugin": {},
        },
    }


async def start_broker(db: Database, secret_key: str, host: str, port: int) -> Broker:
    global _db, _service_password
    _db = db
    _service_password = service_password(secret_key)
    broker = Broker(broker_config(host, port))
    await broker.start()
    log.info("embedded MQTT broker listening on %s:%s", host, port)
    return broker
