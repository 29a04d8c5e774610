"""Nothing acknowledged is lost, nothing is stored twice: QoS 1 with manual acknowledgement
through a private Mosquitto (persistence on), while the ingestion process is killed with
SIGKILL mid-stream and restarted — and while the broker itself is restarted mid-stream.

The ingestion runs as a real separate process (``python -m linli.iot.worker``); the
publisher is paho-mqtt at QoS 1, and a message counts as acknowledged once the publisher
received its PUBACK from the broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from linli.core.web import system_ctx
from linli.iot import service
from linli.iot.models import Telemetry, TelemetryRollup

from ._mqtt import Mosquitto, wait_until

pytestmark = pytest.mark.slow

N_DEVICES = 3
N_MESSAGES = 1800  # in all, about 450 a second


@pytest.fixture
def broker(tmp_path: Path):
    m = Mosquitto(tmp_path / "mosquitto")
    m.start()
    yield m
    m.stop(signal.SIGKILL)


@pytest.fixture
def meters(db, world) -> dict[str, int]:
    out = {}
    with db.session() as s:
        ctx = system_ctx(world.a)
        p = service.profile_by_key(s, ctx, "water_meter")
        for i in range(N_DEVICES):
            d, _ = service.create_device(s, ctx, name=f"meter {i}", profile_id=p.id, key=f"wm-{i}")
            out[d.key] = d.id
    return out


class Worker:
    """``python -m linli.iot.worker`` in its own process."""

    def __init__(self, tmp: Path, db_url: str, port: int) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "LINLI_DATABASE_URL": db_url,
            "LINLI_MQTT_URL": f"mqtt://127.0.0.1:{port}",
            "LINLI_DATA_DIR": str(tmp / "worker-data"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        ready = self.tmp / f"ready-{self.starts}"
        log = open(self.tmp / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "linli.iot.worker",
                "--client-id",
                "linli-ingest-reliability",
                "--batch-size",
                "200",
                "--max-wait",
                "0.02",
                "--no-sweep",
                "--ready-file",
                str(ready),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: ready.exists() or self.proc.poll() is not None, 60, "the worker")
        if self.proc.poll() is not None:
            pytest.fail((self.tmp / f"worker-{self.starts}.log").read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker(tmp_path, db_url, broker):
    w = Worker(tmp_path, db_url, broker.port)
    yield w
    w.kill()


class Publisher:
    """QoS 1 telemetry from the meters: message i carries total = i (unique per device and
    timestamp). Records what the broker acknowledged."""

    def __init__(self, port: int, keys: list[str]) -> None:
        self.keys = keys
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="reliability-publisher",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(0.1, 1.0)
        self.acked_mids: set[int] = set()
        self.client.on_publish = self._on_publish
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.mids: list[int] = []
        self.sent = 0
        self.t0 = time.time() - 120
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def message(self, i: int) -> tuple[str, bytes]:
        key = self.keys[i % len(self.keys)]
        body = {"ts": round(self.t0 + i * 0.01, 3), "values": {"total": float(i)}}
        return f"linli/devices/{key}/telemetry", json.dumps(body).encode()

    def _run(self) -> None:
        for i in range(N_MESSAGES):
            topic, payload = self.message(i)
            # published while the broker is down: queued, sent after the reconnection
            self.mids.append(self.client.publish(topic, payload, qos=1).mid)
            self.sent = i + 1
            time.sleep(1 / 450)
        self.done.set()

    def start(self) -> None:
        self._thread.start()

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        self.acked_mids.add(mid)  # the broker's PUBACK

    def acked(self) -> list[int]:
        acked = set(self.acked_mids)
        return [i for i, mid in enumerate(self.mids) if mid in acked]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored_totals(db, ids: list[int]) -> list[int]:
    with db.session() as s:
        q = select(Telemetry.value).where(Telemetry.device_id.in_(ids))
        return [int(v) for v in s.scalars(q)]


def check_exactly_once(db, publisher: Publisher, ids: list[int]) -> None:
    wait_until(publisher.done.is_set, 30, "the publisher to finish")
    # everything is eventually acknowledged by the broker (paho resends after a restart)
    wait_until(lambda: len(publisher.acked()) == N_MESSAGES, 30, "the broker's PUBACKs")
    acked = set(publisher.acked())

    def complete() -> bool:
        return acked <= set(stored_totals(db, ids))

    deadline = time.monotonic() + 45
    while not complete():
        if time.monotonic() > deadline:
            missing = sorted(acked - set(stored_totals(db, ids)))
            pytest.fail(f"{len(missing)} acknowledged messages lost, e.g. {missing[:10]}")
        time.sleep(0.05)
    time.sleep(0.5)  # let any late redelivery land, then look for duplicates
    values = stored_totals(db, ids)
    assert len(values) == len(set(values)), "a message was stored twice"
    assert set(values) <= set(range(N_MESSAGES))
    with db.session() as s:
        for period in ("m", "h"):
            counted = s.scalar(
                select(func.sum(TelemetryRollup.count)).where(
                    TelemetryRollup.device_id.in_(ids), TelemetryRollup.period == period
                )
            )
            assert counted == len(values), f"roll-up {period} counted a message twice"


def test_ingestion_killed_mid_stream_loses_and_duplicates_nothing(db, meters, broker, worker):
    ids = list(meters.values())
    worker.start()
    pub = Publisher(broker.port, list(meters))
    pub.start()
    try:
        for kills in range(2):
            # wait until data is flowing, then kill -9 in the middle of it
            target = (kills + 1) * N_MESSAGES // 3
            wait_until(lambda t=target: pub.sent >= t, 30, "the stream")
            wait_until(lambda: len(stored_totals(db, ids)) > 0, 30, "the first commits")
            worker.kill()
            time.sleep(0.3)  # messages keep coming while it is down
            worker.start()
        check_exactly_once(db, pub, ids)
    finally:
        pub.close()
        worker.stop()


def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(db, meters, broker, worker):
    ids = list(meters.values())
    worker.start()
    pub = Publisher(broker.port, list(meters))
    pub.start()
    try:
        wait_until(lambda: pub.sent >= N_MESSAGES // 3, 30, "the stream")
        wait_until(lambda: len(stored_totals(db, ids)) > 0, 30, "the first commits")
        broker.restart()  # SIGTERM: Mosquitto saves its sessions and queues, then starts again
        check_exactly_once(db, pub, ids)
        assert worker.proc is not None and worker.proc.poll() is None  # it reconnected by itself
    finally:
        pub.close()
        worker.stop()
