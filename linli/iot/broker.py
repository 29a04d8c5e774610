"""The embedded MQTT broker (amqtt) that `linli serve` starts when no external broker is set.

Devices log in with their key and secret; each device may publish only under its own topic
``linli/devices/<key>/…`` and subscribe only to its own commands. Linli's own ingestion client
logs in with a service account whose password is derived from the server's secret key.

A client id belongs to the first account that logs in with it, and ids starting with
``linli-`` are the service's: a device cannot take over another device's session, nor the
ingestion's. :class:`LinliBroker` fixes three amqtt 0.12 flaws: the broadcast loop raced
with new subscriptions; a CONNECT was applied to an existing session (clean-session deletion,
user name, will, handler) *before* its credentials were checked — an anonymous client could
silently stop ingestion by connecting with the service's client id; and QoS 1 messages a
client published just before disconnecting were acknowledged but never delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession
from amqtt.utils import gen_client_id

from linli.core.db import Database
from linli.iot.ingest import TOPIC_PREFIX

log = logging.getLogger(__name__)
SERVICE_USER = "linli-service"
#: client ids with this prefix are reserved for the service account
SERVICE_CLIENT_PREFIX = "linli-"

_db: Database | None = None
_service_password: str | None = None
#: client id -> the user name that first logged in with it
_client_owners: dict[str, str] = {}


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
        client_id = session.client_id or ""
        owner = _client_owners.get(client_id)
        if owner is not None and owner != user:
            log.warning("MQTT client id %r refused to %r: it belongs to %r", client_id, user, owner)
            return False
        if user == SERVICE_USER:
            ok = _service_password is not None and hmac.compare_digest(password, _service_password)
        elif client_id.startswith(SERVICE_CLIENT_PREFIX):
            log.warning("MQTT client id %r refused to device %r (reserved)", client_id, user)
            return False
        else:
            ok = await asyncio.to_thread(_check_device, user, password)
        if ok and client_id:
            _client_owners.setdefault(client_id, user)
        return ok


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


class _SnapshotDict(dict[str, Any]):
    """A dict whose iteration runs over a copy: amqtt iterates its subscriptions around
    ``await`` points (broadcast, retained messages on reconnection) while other clients
    subscribe and unsubscribe."""

    def __iter__(self) -> Any:
        return iter(list(super().keys()))

    def keys(self) -> Any:
        return list(super().keys())

    def items(self) -> Any:
        return list(super().items())

    def values(self) -> Any:
        return list(super().values())


class LinliBroker(Broker):
    """amqtt's broker, with its subscriptions iterated over snapshots and credentials
    checked before a CONNECT touches any existing session.

    amqtt 0.12 iterates ``self._subscriptions`` while awaiting inside the loop, so a client
    subscribing at that moment raised "dictionary changed size during iteration" and the
    message being broadcast was lost. ``_run_broadcast`` below is amqtt's own, over copies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        subs: dict[str, Any] = self._subscriptions  # type: ignore[has-type]
        self._subscriptions = _SnapshotDict(subs)

    async def _forward_pending(self, session: MqttSession) -> None:
        """Broadcast the messages ``session`` published that amqtt has acknowledged but not
        broadcast yet. The queue is emptied first, without yielding, so the client loop's
        own reader cannot take a message and drop it while this runs."""
        queue = session.delivered_message_queue
        pending = []
        while not queue.empty():
            pending.append(queue.get_nowait())
        for msg in pending:
            topic = getattr(msg, "topic", None)
            if not topic or "#" in topic or "+" in topic or topic.startswith("$"):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.PUBLISH):
                continue
            await self._broadcast_message(session, topic, msg.data)
            if msg.publish_packet is not None and msg.publish_packet.retain_flag:
                await self.retain_message(session, topic, msg.data, msg.qos)

    async def _handle_disconnect(
        self,
        client_session: MqttSession,
        handler: BrokerProtocolHandler,
        disconnect_waiter: asyncio.Future[Any],
    ) -> None:
        """amqtt acknowledges a QoS 1 PUBLISH, queues it, and broadcasts it from the client's
        loop — which stops at DISCONNECT: a device that publishes and leaves at once (as
        battery devices do) lost the acknowledged messages still queued."""
        await self._forward_pending(client_session)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _delete_session(self, client_id: str) -> None:
        """A clean-session reconnection deletes the previous session: forward what it
        published first (amqtt cleared the queue, losing acknowledged messages)."""
        old = self._sessions.get(client_id, (None, None))[0]
        if old is not None:
            await self._forward_pending(old)
        await super()._delete_session(client_id)

    async def _cleanup_session(self, client_id: str) -> None:
        old = self._sessions.get(client_id, (None, None))[0]
        if old is not None:
            await self._forward_pending(old)
        await super()._cleanup_session(client_id)

    async def _initialize_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        remote_address: str,
        remote_port: int,
    ) -> tuple[BrokerProtocolHandler, MqttSession]:
        """amqtt's own, with a refusal of bad credentials before anything else happens."""
        try:
            handler, client_session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except Exception as exc:
            self.logger.warning(
                "cannot read CONNECT from %s:%s: %s", remote_address, remote_port, exc
            )
            await writer.close()
            raise AMQTTError(exc) from exc
        if not await self._authenticate(client_session, None):
            client_session.parent = 0
            handler.attach(client_session, reader, writer)
            try:
                await handler.mqtt_connack_authorize(False)
            finally:
                await writer.close()
            raise AMQTTError(f"{remote_address}:{remote_port} not authorised")
        if client_session.clean_session:
            if client_session.client_id:
                await self._delete_session(client_session.client_id)
            else:
                client_session.client_id = gen_client_id()
            client_session.parent = 0
        elif client_session.client_id in self._sessions:
            existing, _ = self._sessions[client_session.client_id]
            existing.will_flag = client_session.will_flag
            existing.will_message = client_session.will_message
            existing.will_topic = client_session.will_topic
            existing.will_qos = client_session.will_qos
            existing.keep_alive = client_session.keep_alive
            existing.username = client_session.username
            existing.password = client_session.password
            client_session = existing
            client_session.parent = 1
        else:
            client_session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if client_session.keep_alive > 0 and isinstance(delay, int):
            client_session.keep_alive += delay
        return handler, client_session

    async def _run_broadcast(self, running_tasks: Any) -> None:
        broadcast = await self._broadcast_queue.get()
        for k_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(broadcast["topic"], k_filter):
                continue
            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                sendable = await self._topic_filtering(
                    target_session, topic=broadcast["topic"], action=Action.RECEIVE
                )
                if not sendable:
                    continue
                state = target_session.transitions.state
                if (
                    state != "connected"
                    and not target_session.clean_session
                    and qos in (1, 2)
                    and not target_session.is_anonymous
                ):
                    await self._retain_broadcast_message(broadcast, qos, target_session)
                    continue
                if state != "connected":
                    continue
                handler = self._get_handler(target_session)
                if handler:
                    task = asyncio.ensure_future(
                        handler.mqtt_publish(
                            broadcast["topic"], broadcast["data"], qos, retain=False
                        )
                    )
                    running_tasks.append(task)


async def start_broker(db: Database, secret_key: str, host: str, port: int) -> Broker:
    global _db, _service_password
    _db = db
    _service_password = service_password(secret_key)
    _client_owners.clear()
    broker = LinliBroker(broker_config(host, port))
    await broker.start()
    log.info("embedded MQTT broker listening on %s:%s", host, port)
    return broker
