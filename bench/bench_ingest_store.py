"""CPU cost of the ingestion pipeline without the network: validation, raw rows, roll-ups,
latest values, rules and commit, per message, measured as CPU time (not wall time) so the
figure holds on a busy machine.

    .venv/bin/python bench/bench_ingest_store.py                    # SQLite
    .venv/bin/python bench/bench_ingest_store.py --db postgresql    # PostgreSQL

It registers ``--devices`` EV chargers (two metrics, a duration and a threshold rule each),
then feeds ``Ingestor.process_raw`` batches of ``--batch`` two-value messages (the MQTT
client's tuples), ``--messages`` in all. For PostgreSQL it also reads the CPU time of the
database server process serving the ingestion connection (``/proc/<pid>/stat``), which is
the larger part of the cost there. The last line printed is a one-line JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import PG_URL, setup_database  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()

    from sqlalchemy import text

    from linli.core.db import Database
    from linli.iot.ingest import Ingestor

    if args.db == "postgresql":
        url = PG_URL
    else:
        path = Path("/tmp/linli_bench_store.sqlite3")
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    info = setup_database(url, args.devices, 0)
    keys: list[str] = info["keys"]
    db = Database(url)
    ing = Ingestor(db, seen_interval=2.0)
    t0 = time.time() - 3600
    batches: list[list[tuple[str, bytes]]] = []
    batch: list[tuple[str, bytes]] = []
    n_dev = len(keys)
    for j in range(args.messages):
        d = j % n_dev
        ts = t0 + (j // n_dev) * 0.01
        payload = b'{"ts":%.3f,"values":{"temperature":%d.5,"current":%d}}' % (
            ts,
            30 + (j * 7) % 25,
            10 + j % 15,
        )
        batch.append((f"linli/devices/{keys[d]}/telemetry", payload))
        if len(batch) == args.batch:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)

    server_pid = None
    if args.db == "postgresql":
        with db.session() as s:
            server_pid = int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
    ing.process_raw(batches[0])  # warm-up: caches, the connection the pool hands back
    with db.session() as s:
        pid_now = (
            int(s.execute(text("SELECT pg_backend_pid()")).scalar_one()) if server_pid else None
        )
    server_pid = pid_now
    sent = sum(len(b) for b in batches[1:])
    c0, w0 = time.process_time(), time.perf_counter()
    s0 = proc_cpu(server_pid) if server_pid else 0.0
    stored = 0
    for b in batches[1:]:
        stats = ing.process_raw(b)
        stored += stats.accepted
    ing.flush()
    wall = time.perf_counter() - w0
    client = time.process_time() - c0
    server = (proc_cpu(server_pid) - s0) if server_pid else 0.0
    result: dict[str, Any] = {
        "db": args.db,
        "messages": sent,
        "stored": stored,
        "client_us_per_msg": round(client / sent * 1e6, 1),
        "server_us_per_msg": round(server / sent * 1e6, 1),
        "wall_msg_per_s": round(sent / wall),
        "cpu_bound_msg_per_s_2_cores": round(sent / max(client, server, (client + server) / 2)),
        "load": os.getloadavg()[0],
    }
    db.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
