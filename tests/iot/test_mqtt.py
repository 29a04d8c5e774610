"""MQTT end to end: ingestion through the machine's Mosquitto (127.0.0.1:1883), device
commands and their acknowledgements, and the embedded broker's authentication and topic
confinement (also under a crowd of devices connecting at once).

Keys, topics and client ids are unique per test: the system broker may be shared by other
test runs at the same time."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from linli.core import audit
from linli.core.web import system_ctx
from linli.iot import service
from linli.iot.broker import SERVICE_USER, service_password, start_broker
from linli.iot.models import Command, DeadLetter, Device, Telemetry, TelemetryRollup
from linli.iot.mqtt import BrokerAddress, MqttIngest

from ._mqtt import SYSTEM_BROKER, forget_session, free_port, require_system_broker, wait_until
from ._mqtt import Device as DeviceClient

SECRET_KEY = "test-secret-key-for-the-embedded-broker"


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def make_devices(db, world):
    """Register devices in community A: {key: (id, secret)}."""

    def make(*specs: tuple[str, str]) -> dict[str, tuple[int, str]]:
        out = {}
        with db.session() as s:
            ctx = system_ctx(world.a)
            for key, profile in specs:
                p = service.profile_by_key(s, ctx, profile)
                d, secret = service.create_device(s, ctx, name=key, profile_id=p.id, key=key)
                out[key] = (d.id, secret)
        return out

    return make


@pytest.fixture
def ingests(db) -> Iterator[list[MqttIngest]]:
    started: list[MqttIngest] = []
    yield started
    for ing in started:
        ing.stop()
        if (ing.broker.host, ing.broker.port) == SYSTEM_BROKER:
            forget_session(ing.client.client_id)


def start_ingest(db, started, address: BrokerAddress, client_id: str, **kw) -> MqttIngest:
    ing = MqttIngest(db, address, client_id=client_id, max_wait=0.02, sweep_every=3600, **kw)
    ing.start(sweeper=False)
    started.append(ing)
    if not ing.wait_connected(15):
        pytest.fail(f"ingestion did not connect: {ing.client.last_error}")
    return ing


def telemetry_count(db, device_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).where(Telemetry.device_id == device_id)) or 0


def device_row(db, device_id: int) -> Device:
    with db.session() as s:
        d = s.get(Device, device_id)
        assert d is not None
        return d


# -- through the machine's Mosquitto --------------------------------------------------------


def test_mqtt_ingest_stores_published_telemetry(db, make_devices, ingests, tag):
    require_system_broker()
    bin_key, hyd_key = f"bin-{tag}", f"hydrant-{tag}"
    devs = make_devices((bin_key, "bin_level"), (hyd_key, "fire_hydrant"))
    ing = start_ingest(db, ingests, BrokerAddress(*SYSTEM_BROKER), f"linli-test-{tag}")

    bin_dev = DeviceClient(SYSTEM_BROKER[1], bin_key)
    hyd_dev = DeviceClient(SYSTEM_BROKER[1], hyd_key)
    assert bin_dev.connect() and hyd_dev.connect()
    try:
        t0 = time.time() - 60
        hyd_dev.publish("status", {"online": True})
        for i in range(30):
            bin_dev.publish("telemetry", {"ts": t0 + i, "values": {"fill": float(i)}}, wait=False)
        for i in range(10):
            hyd_dev.publish(
                "telemetry", {"ts": t0 + i, "values": {"pressure": 0.3, "leak": False}}, wait=False
            )
        # a redelivery and two bad messages
        bin_dev.publish("telemetry", {"ts": t0, "values": {"fill": 0.0}})
        bin_dev.publish("telemetry", b"{oops")
        hyd_dev.publish("telemetry", {"ts": t0, "values": {"pressure": 99}})

        bin_id, hyd_id = devs[bin_key][0], devs[hyd_key][0]
        wait_until(lambda: telemetry_count(db, bin_id) == 30, 20, "30 fill samples")
        wait_until(lambda: telemetry_count(db, hyd_id) == 20, 20, "20 hydrant samples")
        wait_until(lambda: device_row(db, hyd_id).rejected_count == 1, 10, "the bad pressure")
        wait_until(lambda: device_row(db, bin_id).rejected_count == 1, 10, "the malformed one")
    finally:
        bin_dev.close()
        hyd_dev.close()
    with db.session() as s:
        reasons = set(
            s.scalars(select(DeadLetter.reason).where(DeadLetter.device_id.in_([bin_id, hyd_id])))
        )
        assert reasons == {"malformed", "out_of_range"}
        fill_h = s.scalars(
            select(TelemetryRollup).where(
                TelemetryRollup.device_id == bin_id, TelemetryRollup.period == "h"
            )
        ).all()
        assert sum(r.count for r in fill_h) == 30  # the redelivery was not counted
        assert sum(r.vsum for r in fill_h) == sum(range(30))
    hyd = device_row(db, hyd_id)
    assert hyd.online and hyd.accepted_count == 11  # 10 telemetry + the status
    wait_until(lambda: ing.pending == 0, 10, "every message to be committed and acknowledged")
    assert ing.totals.duplicates >= 1


def test_ingestion_restarted_gets_what_was_published_meanwhile(db, make_devices, ingests, tag):
    """A persistent session: the broker keeps the messages for the stopped ingester."""
    require_system_broker()
    key = f"meter-{tag}"
    dev_id = make_devices((key, "water_meter"))[key][0]
    cid = f"linli-test-{tag}"
    first = start_ingest(db, ingests, BrokerAddress(*SYSTEM_BROKER), cid)
    first.stop()
    ingests.remove(first)
    meter = DeviceClient(SYSTEM_BROKER[1], key)
    assert meter.connect()
    t0 = time.time() - 30
    try:
        for i in range(20):
            meter.publish("telemetry", {"ts": t0 + i, "values": {"flow": 1.0 + i}})
    finally:
        meter.close()
    assert telemetry_count(db, dev_id) == 0
    start_ingest(db, ingests, BrokerAddress(*SYSTEM_BROKER), cid)
    wait_until(lambda: telemetry_count(db, dev_id) == 20, 20, "the 20 queued messages")


def test_commands_are_published_and_acknowledged(db, make_devices, ingests, tag):
    require_system_broker()
    key = f"gate-{tag}"
    dev_id = make_devices((key, "door_contact"))[key][0]
    start_ingest(db, ingests, BrokerAddress(*SYSTEM_BROKER), f"linli-test-{tag}")

    def answer(dev: DeviceClient, cmd: dict) -> None:
        ok = cmd["name"] != "explode"
        dev.publish(
            "commands/ack",
            {"id": cmd["id"], "ok": ok, "result": {"done": cmd["name"], **cmd["params"]}},
            wait=False,
        )

    gate = DeviceClient(SYSTEM_BROKER[1], key, on_command=answer)
    assert gate.connect()
    try:
        assert not gate.subscribe_commands().is_failure
        actor = audit.Actor.system("test")
        with db.session() as s:
            d = s.get(Device, dev_id)
            opened = service.issue_command(s, d, "open", {"seconds": 5}, actor)
            bad = service.issue_command(s, d, "explode", {}, actor)
            assert opened.status == "sent" and opened.sent_at is not None
            ids = (opened.id, bad.id)

        def statuses() -> tuple[str, ...]:
            with db.session() as s:
                return tuple(s.get(Command, i).status for i in ids)  # type: ignore[union-attr]

        wait_until(lambda: statuses() == ("acked", "failed"), 20, "both acknowledgements")
        with db.session() as s:
            c = s.get(Command, ids[0])
            assert c is not None and c.result == {"done": "open", "seconds": 5}
            assert c.acked_at is not None
        # a command whose transaction rolls back is never sent
        with pytest.raises(RuntimeError), db.session() as s:
            service.issue_command(s, s.get(Device, dev_id), "ghost", {}, actor)  # type: ignore[arg-type]
            raise RuntimeError("rolled back")
        with db.session() as s:
            last = service.issue_command(s, s.get(Device, dev_id), "close", {}, actor).id  # type: ignore[arg-type]
        wait_until(lambda: len(gate.commands) == 3, 20, "the last command")
    finally:
        gate.close()
    assert [c["name"] for c in gate.commands] == ["open", "explode", "close"]
    assert gate.commands[0] == {"id": ids[0], "name": "open", "params": {"seconds": 5}}
    assert gate.commands[2]["id"] == last


# -- the embedded broker --------------------------------------------------------------------


@pytest.fixture
def embedded(db) -> Iterator[int]:
    """The broker `linli serve` embeds, on a free port, in its own event-loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()
    broker = asyncio.run_coroutine_threadsafe(
        start_broker(db, SECRET_KEY, "127.0.0.1", port), loop
    ).result(20)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(20)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _cancel_the_rest() -> None:
    """amqtt leaves client tasks behind after shutdown: end them before the loop closes."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def service_address(port: int) -> BrokerAddress:
    return BrokerAddress("127.0.0.1", port, SERVICE_USER, service_password(SECRET_KEY))


def test_embedded_broker_authenticates_devices_and_confines_them(
    db, make_devices, ingests, embedded, tag
):
    port = embedded
    a_key, b_key = f"cover-{tag}", f"bin-{tag}"
    devs = make_devices((a_key, "manhole_cover"), (b_key, "bin_level"))
    (a_id, a_secret), (b_id, b_secret) = devs[a_key], devs[b_key]
    start_ingest(db, ingests, service_address(port), "linli-ingest")

    # wrong, unknown or missing credentials are refused
    for key, secret, cid in (
        (a_key, "not-the-secret", None),
        (a_key, b_secret, None),
        (f"ghost-{tag}", a_secret, None),
        (a_key, None, None),
        (SERVICE_USER, "guess", None),
        # a device may not take the ingestion's client id, even with its right secret
        (a_key, a_secret, "linli-ingest"),
    ):
        dev = DeviceClient(port, key, secret, client_id=cid)
        assert not dev.connect(), (key, secret, cid)

    a = DeviceClient(port, a_key, a_secret)
    assert a.connect()
    try:
        t0 = time.time() - 10
        a.publish("telemetry", {"ts": t0, "values": {"tilt": 1.5, "battery": 80}})
        wait_until(lambda: telemetry_count(db, a_id) == 2, 15, "the cover's first message")
        # publishing under another device's topic is dropped by the broker
        a.publish("telemetry", {"ts": t0, "values": {"fill": 99}}, key=b_key)
        a.publish("telemetry", {"ts": t0 + 1, "values": {"tilt": 2.0}})  # a marker after it
        wait_until(lambda: telemetry_count(db, a_id) == 3, 15, "the marker")
        assert telemetry_count(db, b_id) == 0
        # subscribing to another device's commands is refused, its own are granted
        assert a.subscribe_commands(f"linli/devices/{b_key}/commands").is_failure
        assert not a.subscribe_commands().is_failure
        # another device's credentials cannot take this device's session
        thief = DeviceClient(port, b_key, b_secret, client_id=f"dev-{a_key}")
        assert not thief.connect()
        # and none of this disturbed the ingestion
        a.publish("telemetry", {"ts": t0 + 2, "values": {"tilt": 2.5}})
        wait_until(lambda: telemetry_count(db, a_id) == 4, 15, "a message after the attempts")
    finally:
        a.close()


def test_an_anonymous_connect_cannot_stop_the_ingestion(db, make_devices, ingests, embedded, tag):
    """amqtt applied a CONNECT to the existing session before checking credentials."""
    from linli.iot.wire import connect_packet

    port = embedded
    key = f"cover-{tag}"
    dev_id, secret = make_devices((key, "manhole_cover"))[key]
    start_ingest(db, ingests, service_address(port), "linli-ingest")
    import socket

    for clean in (True, False):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                connect_packet("linli-ingest", clean_session=clean, username="x", password="y")
            )
            assert sock.recv(4) == b"\x20\x02\x00\x05"  # CONNACK: not authorised
    dev = DeviceClient(port, key, secret)
    assert dev.connect()
    try:
        dev.publish("telemetry", {"ts": time.time() - 5, "values": {"tilt": 1.0}})
        wait_until(lambda: telemetry_count(db, dev_id) == 1, 15, "ingestion to go on")
    finally:
        dev.close()


@pytest.mark.slow
def test_embedded_broker_with_a_crowd_of_devices(db, make_devices, ingests, embedded, tag, caplog):
    """Devices connecting and subscribing while others publish and receive commands: the
    broadcast loop used to fail with "dictionary changed size during iteration"."""
    caplog.set_level(logging.WARNING)
    port = embedded
    n_dev, n_msg = 40, 15
    devs = make_devices(*[(f"bin{i}-{tag}", "bin_level") for i in range(n_dev)])
    start_ingest(db, ingests, service_address(port), "linli-ingest")
    clients: list[DeviceClient] = []
    errors: list[BaseException] = []
    t0 = time.time() - 120

    def answer(dev: DeviceClient, cmd: dict) -> None:
        dev.publish("commands/ack", {"id": cmd["id"], "ok": True}, wait=False)

    def run(key: str, secret: str) -> None:
        try:
            c = DeviceClient(port, key, secret, on_command=answer)
            clients.append(c)
            assert c.connect(20)
            c.subscribe_commands(timeout=20)
            for i in range(n_msg):
                c.publish("telemetry", {"ts": t0 + i, "values": {"fill": float(i)}}, wait=False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k, s)) for k, (_i, s) in devs.items()]
    for t in threads:
        t.start()
        time.sleep(0.005)
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    ids = [i for i, _s in devs.values()]

    def stored() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).where(Telemetry.device_id.in_(ids))) or 0

    try:
        wait_until(lambda: stored() == n_dev * n_msg, 45, f"{n_dev * n_msg} samples")
        # a command to every device while they are all connected
        actor = audit.Actor.system("test")
        with db.session() as s:
            cmd_ids = [
                service.issue_command(s, s.get(Device, i), "ping", {}, actor).id  # type: ignore[arg-type]
                for i in ids
            ]

        def acked() -> int:
            with db.session() as s:
                return (
                    s.scalar(
                        select(func.count()).where(
                            Command.id.in_(cmd_ids), Command.status == "acked"
                        )
                    )
                    or 0
                )

        wait_until(lambda: acked() == n_dev, 30, "every command acknowledged")
    finally:
        for c in clients:
            c.close()
    text = caplog.text
    assert "dictionary changed size" not in text
    assert "Broadcast loop stopped" not in text


def test_worker_connects_to_the_embedded_broker_with_the_service_account(db, embedded, settings):
    """Without LINLI_MQTT_URL, ``python -m linli.iot.worker`` uses the embedded broker of the
    running server, logging in with the account derived from the secret key."""
    from linli.iot.worker import broker_address

    settings.mqtt_url = None
    settings.mqtt_listen = f"127.0.0.1:{embedded}"
    settings.secret_key = SECRET_KEY
    address = broker_address(settings)
    assert (address.port, address.username) == (embedded, SERVICE_USER)
    settings.mqtt_url = "mqtt://ingest:p%40ss@broker.example:1884"
    address = broker_address(settings)
    assert (address.host, address.port, address.username, address.password) == (
        "broker.example",
        1884,
        "ingest",
        "p@ss",
    )


def test_embedded_broker_keeps_what_devices_publish_just_before_leaving(
    db, make_devices, embedded, ingests, tag
):
    """Battery devices connect, publish and disconnect at once, then reconnect with a clean
    session: amqtt acknowledged those messages and dropped them."""
    import json
    import socket

    from linli.iot.wire import connect_packet, publish_packet

    port = embedded
    devs = make_devices(*[(f"bin{i}-{tag}", "bin_level") for i in range(5)])
    start_ingest(db, ingests, service_address(port), "linli-ingest")
    t0 = time.time() - 60
    n = 30

    def burst(key: str, secret: str, rnd: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(connect_packet(f"dev-{key}", username=key, password=secret))
            assert sock.recv(4) == b"\x20\x02\x00\x00"
            sock.sendall(
                b"".join(
                    publish_packet(
                        f"linli/devices/{key}/telemetry",
                        json.dumps({"ts": t0 + rnd * 10 + i * 0.1, "values": {"fill": i}}).encode(),
                        1,
                        i + 1,
                    )
                    for i in range(n)
                )
            )
            got = b""
            while len(got) < 4 * n:  # every PUBACK, then leave at once
                chunk = sock.recv(4096)
                assert chunk
                got += chunk
            sock.sendall(b"\xe0\x00")

    threads = [
        threading.Thread(target=lambda k=k, s=s: [burst(k, s, r) for r in range(2)])
        for k, (_i, s) in devs.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = [i for i, _s in devs.values()]

    def stored() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).where(Telemetry.device_id.in_(ids))) or 0

    wait_until(lambda: stored() == 5 * 2 * n, 20, "every acknowledged message")


def test_a_failing_database_keeps_the_messages_until_it_is_back(
    db, make_devices, ingests, tag, monkeypatch
):
    """Nothing is acknowledged while batches fail; they are retried until they commit."""
    require_system_broker()
    key = f"meter-{tag}"
    dev_id = make_devices((key, "water_meter"))[key][0]
    ing = start_ingest(db, ingests, BrokerAddress(*SYSTEM_BROKER), f"linli-test-{tag}")
    real = ing.ingestor.process_raw
    failures = []

    def flaky(items, received_at=None):  # type: ignore[no-untyped-def]
        if len(failures) < 2:
            failures.append(len(items))
            raise ConnectionError("database down")
        return real(items, received_at)

    monkeypatch.setattr(ing.ingestor, "process_raw", flaky)
    meter = DeviceClient(SYSTEM_BROKER[1], key)
    assert meter.connect()
    try:
        t0 = time.time() - 30
        for i in range(10):
            meter.publish("telemetry", {"ts": t0 + i, "values": {"flow": float(i)}}, wait=False)
        wait_until(lambda: telemetry_count(db, dev_id) == 10, 20, "the messages, after retries")
    finally:
        meter.close()
    assert len(failures) == 2 and ing.totals.duplicates == 0
    wait_until(lambda: ing.pending == 0, 10, "the acknowledgements")
