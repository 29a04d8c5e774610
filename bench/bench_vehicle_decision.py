"""Benchmark of the barrier decision: photo in -> plate read -> decision -> open command issued
(and committed), per photo, the way the gate camera API runs it.

    taskset -c 1 .venv/bin/python bench/bench_vehicle_decision.py [--rounds 5]

A fresh SQLite database (migrated) with a car park, an entrance lane with its barrier device,
residents' vehicles, a permit, a visitor car and a watch-list plate, so the photos of
../shared/data/plates take every path (open, queued for a guard). When Mosquitto listens on
127.0.0.1:1883 the open commands are really published over MQTT (the ingestion client is
connected as in ``linli serve``); otherwise they are recorded as pending. Each photo is sent
``--rounds`` times; the timer covers ``service.decide`` and the commit. onnxruntime runs with
one thread; pin the process to one core with ``taskset``.

The last line printed is the one-line result.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return True
    except OSError:
        return False


def _status(s: object, command_id: int) -> str | None:
    from linli.iot.models import Command

    cmd = s.get(Command, command_id)  # type: ignore[attr-defined]
    return None if cmd is None else str(cmd.status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA / "plates")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-mqtt", action="store_true", help="Do not publish the commands.")
    args = ap.parse_args()

    from linli import models_registry  # noqa: F401
    from linli.core.config import make_settings
    from linli.core.db import Database, utcnow
    from linli.core.files import FileStore
    from linli.core.migrate import upgrade
    from linli.core.web import system_ctx
    from linli.people.models import Community
    from linli.vehicles import service
    from linli.vehicles.demo import plate_photos
    from linli.vehicles.schemas import (
        CarParkIn,
        GateIn,
        PermitIn,
        VehicleIn,
        VisitorVehicleIn,
        WatchIn,
    )
    from linli.vision.plates import get_reader

    photos = plate_photos(args.data)
    if not photos:
        sys.exit(f"no photos in {args.data}")
    tmp = Path(tempfile.mkdtemp(prefix="linli-bench-veh-"))
    settings = make_settings(data_dir=tmp)
    settings.prepare()
    url = settings.resolved_database_url
    upgrade(url)
    db = Database(url)
    files = FileStore(settings.files_dir)
    now = utcnow()
    with db.session() as s:
        c = Community(code="bench", name="基准社区", name_en="Bench")
        s.add(c)
        s.flush()
        cid = c.id
        ctx = system_ctx(cid, "bench")
        cp = service.save_car_park(s, ctx, CarParkIn(name="Garage", capacity=500))
        gate = service.save_gate(s, ctx, GateIn(name="In", direction="in", car_park_id=cp.id))
        service.ensure_barrier_device(s, ctx, gate)
        gate_id = gate.id
        from linli.access import service as access
        from linli.access.schemas import IdentityIn

        for i, plate in enumerate(("皖AYL375", "皖A931Y9", "皖A158Y2", "皖AJ002E", "皖A195K9")):
            ident = access.create_identity(s, ctx, IdentityIn(kind="resident", name=f"R{i}"))
            service.save_vehicle(s, ctx, VehicleIn(plate=plate, identity_id=ident.id), settings)
        service.save_permit(s, ctx, PermitIn(plate="皖APV930"))
        service.register_visitor_vehicle(
            s,
            ctx,
            VisitorVehicleIn(plate="皖ALJ624", valid_from=now, valid_until=now + timedelta(days=1)),
        )
        service.add_watch(
            s,
            ctx,
            WatchIn(
                plate="皖AT022C",
                reason="bench",
                authorised_by="bench",
                expires_at=now + timedelta(days=30),
            ),
        )
    ingest = None
    if not args.no_mqtt and _broker_up():
        from linli.iot.mqtt import BrokerAddress, MqttIngest

        ingest = MqttIngest(db, BrokerAddress("127.0.0.1", 1883), client_id="linli-bench-veh")
        ingest.start(sweeper=False)
        if not ingest.wait_connected(10):
            ingest.stop()
            ingest = None
    reader = get_reader()
    reader.warm_up()
    data = [p.read_bytes() for p in photos]
    ctx = system_ctx(cid, "camera")
    wall: list[float] = []
    decisions: dict[str, int] = {}
    sent = 0
    for _r in range(args.rounds):
        for blob in data:
            t0 = time.perf_counter()
            with db.session() as s:
                d, ev = service.decide(s, ctx, gate_id, blob, files)
                published = ev.command_id is not None and _status(s, ev.command_id) == "sent"
            wall.append((time.perf_counter() - t0) * 1000)
            sent += published
            decisions[d.decision] = decisions.get(d.decision, 0) + 1
    if ingest is not None:
        ingest.stop()
        import paho.mqtt.client as mqtt

        # drop the persistent session the ingestion client left on the shared broker
        cleaner = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="linli-bench-veh", clean_session=True
        )
        cleaner.connect("127.0.0.1", 1883, keepalive=5)
        cleaner.disconnect()
    db.dispose()
    p50 = float(np.percentile(wall, 50))
    p95 = float(np.percentile(wall, 95))
    print(
        f"decisions: {', '.join(f'{k} {v}' for k, v in sorted(decisions.items()))}; "
        f"commands published over MQTT: {sent}"
    )
    print(
        f"vehicle decision: image -> plate -> decision -> command, p50 {p50:.0f} ms "
        f"p95 {p95:.0f} ms, mean {statistics.mean(wall):.0f} ms over {len(wall)} photos "
        f"({len(photos)} distinct; mqtt {'on' if ingest is not None else 'off'}; "
        f"cpus allowed {len(os.sched_getaffinity(0))})"
    )


if __name__ == "__main__":
    main()
