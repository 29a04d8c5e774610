"""A standalone MQTT ingestion process: ``python -m linli.iot.worker``.

Settings come from the usual ``LINLI_*`` environment (or ``linli.toml``): the database
(``LINLI_DATABASE_URL``) and the broker (``LINLI_MQTT_URL``, e.g.
``mqtt://linli-ingest:secret@broker:1883``). Without ``LINLI_MQTT_URL`` it connects to the
embedded broker of a running ``linli serve`` (``LINLI_MQTT_LISTEN``) with the service
account derived from the server's secret key.

Several workers share the devices' messages with ``--share-group`` (an MQTT shared
subscription ``$share/<group>/linli/devices/+/telemetry`` …); each needs its own
``--client-id``. Each keeps a persistent session and acknowledges messages only once they
are committed, so a worker killed at any moment loses nothing: its unacknowledged messages
come back when it reconnects. Stop it with SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from linli.core.config import Settings, make_settings
from linli.core.db import Database
from linli.iot.mqtt import BrokerAddress, MqttIngest

log = logging.getLogger("linli.iot.worker")


def broker_address(settings: Settings) -> BrokerAddress:
    if settings.mqtt_url:
        return BrokerAddress.parse(settings.mqtt_url)
    from linli.iot.broker import SERVICE_USER, service_password

    host, _, port = settings.mqtt_listen.rpartition(":")
    return BrokerAddress(
        host or "127.0.0.1", int(port), SERVICE_USER, service_password(settings.secret_key or "")
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m linli.iot.worker", description="Linli MQTT ingestion worker."
    )
    p.add_argument(
        "--client-id",
        default=os.environ.get("LINLI_MQTT_CLIENT_ID", "linli-ingest"),
        help="MQTT client id; unique per worker (default linli-ingest)",
    )
    p.add_argument(
        "--share-group",
        default=os.environ.get("LINLI_MQTT_SHARE_GROUP") or None,
        help="join a shared subscription group to split the load with other workers",
    )
    p.add_argument(
        "--batch-size", type=int, default=10_000, help="messages per transaction at most"
    )
    p.add_argument(
        "--max-wait", type=float, default=0.05, help="seconds a message may wait for a batch"
    )
    p.add_argument(
        "--no-sweep",
        action="store_true",
        help="do not run the heartbeat sweep (let another process do it)",
    )
    p.add_argument(
        "--stats-every", type=float, default=0.0, help="print totals every N seconds (0: never)"
    )
    p.add_argument("--ready-file", type=Path, help="touch this file once subscribed")
    p.add_argument("--log-level", default="INFO")
    return p


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings or make_settings()
    db = Database(settings.resolved_database_url)
    ingest = MqttIngest(
        db,
        broker_address(settings),
        client_id=args.client_id,
        share_group=args.share_group,
        batch_size=args.batch_size,
        max_wait=args.max_wait,
    )
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ingest.start(sweeper=not args.no_sweep, commands=False)
    announced = False
    last_stats = time.monotonic()
    try:
        while not stop.wait(0.1):
            if not announced and ingest.connected.is_set():
                announced = True
                log.info("ingesting from %s:%s", ingest.broker.host, ingest.broker.port)
                if args.ready_file is not None:
                    args.ready_file.touch()
            if args.stats_every and time.monotonic() - last_stats >= args.stats_every:
                last_stats = time.monotonic()
                t = ingest.totals
                print(
                    f"messages={t.messages} accepted={t.accepted} samples={t.samples} "
                    f"duplicates={t.duplicates} rejected={t.rejected} "
                    f"alarms={t.alarms_raised} batches={ingest.batches}",
                    flush=True,
                )
    finally:
        ingest.stop()
        db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
