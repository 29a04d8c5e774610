"""Load check of the embedded MQTT broker (amqtt, as `linli serve` runs it).

    .venv/bin/python bench/bench_embedded_broker.py [--devices 300] [--messages 60]

Every device logs in with its own key and secret (checked against the database), subscribes
to its commands and publishes its telemetry at QoS 1, while other devices keep connecting,
subscribing and leaving — the situation in which amqtt 0.12's broadcast loop failed with
"dictionary changed size during iteration". Linli's ingestion (service account) stores
everything. Checks that every message is stored and that the broker logged no error;
reports the rate. The last line printed is the one-line result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from linli.iot.wire import connect_packet, publish_packet, subscribe_packet  # noqa: E402


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR or "dictionary changed size" in text:
            self.records.append(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def device(port: int, key: str, secret: str, n: int, t0: float, churn: bool) -> None:
    """Log in, subscribe to the commands, publish ``n`` messages at QoS 1 in a few bursts,
    wait for the PUBACKs, leave (and, for churners, come back and leave again)."""
    for _round in range(2 if churn else 1):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(connect_packet(f"dev-{key}", keepalive=60, username=key, password=secret))
        ack = s.recv(4)
        if ack[3:4] != b"\x00":
            raise RuntimeError(f"{key} refused: {ack!r}")
        s.sendall(subscribe_packet(1, [(f"linli/devices/{key}/commands", 1)]))
        packets = []
        for i in range(n):
            body = json.dumps({"ts": t0 + i * 0.01 + _round * 100, "values": {"fill": i % 100}})
            packets.append(
                publish_packet(f"linli/devices/{key}/telemetry", body.encode(), 1, i % 65000 + 2)
            )
        for k in range(0, n, 20):
            s.sendall(b"".join(packets[k : k + 20]))
            time.sleep(0.01)
        got = b""
        while got.count(b"\x40\x02") < n:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"{key}: connection closed")
            got += chunk
        s.sendall(b"\xe0\x00")
        s.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--messages", type=int, default=60, help="per device")
    args = p.parse_args()
    errors = Errors()
    logging.getLogger().addHandler(errors)
    logging.getLogger("amqtt").setLevel(logging.WARNING)

    from linli.core.db import Database
    from linli.core.migrate import upgrade
    from linli.core.web import system_ctx
    from linli.iot import service
    from linli.iot.broker import SERVICE_USER, service_password, start_broker
    from linli.iot.mqtt import BrokerAddress, MqttIngest
    from linli.people.models import Community

    work = Path(tempfile.mkdtemp(prefix="linli-bench-broker-"))
    url = f"sqlite:///{work / 'b.db'}"
    upgrade(url)
    db = Database(url)
    creds = []
    with db.session() as s:
        c = Community(code="b", name="b", name_en="b")
        s.add(c)
        s.flush()
        ctx = system_ctx(c.id)
        prof = service.profile_by_key(s, ctx, "bin_level")
        for i in range(args.devices):
            d, secret = service.create_device(
                s, ctx, name=f"bin {i}", profile_id=prof.id, key=f"bin-{i:04d}"
            )
            creds.append((d.key, secret))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    port = free_port()
    broker = asyncio.run_coroutine_threadsafe(
        start_broker(db, "bench-secret", "127.0.0.1", port), loop
    ).result(30)
    ingest = MqttIngest(
        db, BrokerAddress("127.0.0.1", port, SERVICE_USER, service_password("bench-secret"))
    )
    ingest.start(sweeper=False)
    assert ingest.wait_connected(20), ingest.client.last_error
    t0 = time.time() - 300
    failures: list[BaseException] = []

    def run(key: str, secret: str, churn: bool) -> None:
        try:
            device(port, key, secret, args.messages, t0, churn)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(k, s, i % 5 == 0)) for i, (k, s) in enumerate(creds)
    ]
    start = time.time()
    for t in threads:
        t.start()
        time.sleep(0.002)
    for t in threads:
        t.join(300)
    expected = sum(args.messages * (2 if i % 5 == 0 else 1) for i in range(args.devices))
    deadline = time.time() + 120
    while ingest.totals.samples < expected and time.time() < deadline:
        time.sleep(0.05)
    elapsed = time.time() - start
    stored = ingest.totals.samples
    ingest.stop()
    asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(30)
    db.dispose()
    ok = stored == expected and not failures and not errors.records
    if failures:
        print(f"device failures: {failures[:3]}")
    if errors.records:
        print(f"broker errors: {errors.records[:3]}")
    print(
        f"bench_embedded_broker: {args.devices} devices (1 in 5 reconnecting), "
        f"{stored}/{expected} messages stored in {elapsed:.1f} s = {stored / elapsed:,.0f} msg/s, "
        f"{len(errors.records)} broker errors: {'OK' if ok else 'FAILED'}; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
