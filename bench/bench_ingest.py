"""Benchmark of MQTT ingestion, end to end, on this machine.

    .venv/bin/python bench/bench_ingest.py                       # SQLite (default)
    .venv/bin/python bench/bench_ingest.py --db postgresql       # PostgreSQL
    .venv/bin/python bench/bench_ingest.py --rate 20000          # paced, sustained load

What it does, in one run:

1. starts its own Mosquitto on a free port, tuned for manual-ack ingestion
   (``max_inflight_messages 0``, ``max_queued_messages 0``);
2. registers ``--devices`` simulated devices (EV chargers: temperature and current, a
   duration rule and a threshold rule each) and a few water-leak probes;
3. **bare broker**: a publisher process (raw MQTT over a few dozen connections, payloads
   encoded in advance, QoS 1) sends ``--messages`` messages to a bare subscriber that
   acknowledges each at once — what Mosquitto alone delivers on this machine;
4. **ingestion**: the same messages again, now ingested by a running ``linli serve``
   (``LINLI_MQTT_URL`` → its MQTT ingestion: validation, raw rows, 1-minute and 1-hour
   roll-ups, latest values, rules; acknowledged after commit). The rate is messages stored
   over the time from the first publish to the last commit;
5. **alarm latency** during that load: the probes toggle a leak every few seconds; the
   latency is from the probe's publish to the ``iot.alarm.raised`` event read on the SSE
   stream ``/api/v1/communities/{cid}/events/stream`` of the server;
6. **chart query**: ``service.series`` over 30 days of 1-minute data for one metric.

Optional ``--workers N`` runs the ingestion in N ``python -m linli.iot.worker`` processes
sharing a subscription (``$share/linli/…``) instead of inside the server; alarms then reach
the server's SSE stream through the outbox poll (up to one second).

The last line printed is the one-line result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from linli.iot.wire import connect_packet, publish_packet  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/linli_bench"


# -- the publisher (a separate process) ------------------------------------------------------


def publisher_main(spec: dict[str, Any]) -> None:
    """Raw QoS 1 publisher: connections share the devices; all packets are built before the
    start signal; PUBACKs are counted (each is 4 bytes). Prints a JSON line of timings."""
    port, keys, total = spec["port"], spec["keys"], spec["messages"]
    conns, rate, metrics = spec["connections"], spec["rate"], spec["metrics"]
    t0 = spec["t0"]
    n_dev = len(keys)
    per_conn: list[list[bytes]] = [[] for _ in range(conns)]
    pids = [0] * conns
    for j in range(total):
        d = j % n_dev
        c = d % conns
        seq = j // n_dev
        ts = t0 + seq * 0.001
        temp = 30 + (j * 7) % 25  # 30..54 °C: under the 65 °C rule
        if metrics == 2:
            payload = b'{"ts":%.3f,"values":{"temperature":%d.5,"current":%d}}' % (
                ts,
                temp,
                10 + j % 15,
            )
        else:
            payload = b'{"ts":%.3f,"values":{"temperature":%d.5}}' % (ts, temp)
        pids[c] = pids[c] % 65535 + 1
        per_conn[c].append(
            publish_packet(f"linli/devices/{keys[d]}/telemetry", payload, 1, pids[c])
        )
    socks = []
    for c in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(connect_packet(f"bench-pub-{os.getpid()}-{c}", clean_session=True, keepalive=0))
        if s.recv(4)[:1] != b"\x20":
            raise SystemExit("publisher: no CONNACK")
        socks.append(s)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    print("READY", flush=True)
    sys.stdin.readline()  # GO
    start = time.time()
    got = 0
    pos = [0] * conns
    sent = 0
    window = 40_000
    chunk = 64
    last_sent_at = start
    while got < total * 4:
        if sent < total and (sent - got // 4) < window:
            allowed = total if not rate else int((time.time() - start) * rate) + 1
            for c in range(conns):
                if sent >= allowed:
                    break
                lst = per_conn[c]
                i = pos[c]
                if i >= len(lst):
                    continue
                n = min(chunk, len(lst) - i, max(1, allowed - sent))
                data = b"".join(lst[i : i + n])
                sock = socks[c]
                sock.setblocking(True)
                sock.sendall(data)
                sock.setblocking(False)
                pos[c] = i + n
                sent += n
            last_sent_at = time.time()
            timeout = 0.0 if sent < allowed else 0.002
        else:
            timeout = 0.05
        for key, _ in sel.select(timeout):
            with contextlib.suppress(BlockingIOError):
                got += len(key.fileobj.recv(1 << 20))  # type: ignore[union-attr]
    end = time.time()
    for s in socks:
        with contextlib.suppress(OSError):
            s.setblocking(True)
            s.sendall(b"\xe0\x00")
            s.close()
    print(json.dumps({"start": start, "sent_end": last_sent_at, "acked_end": end}), flush=True)


class Publisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_publish", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"publisher failed: {line}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 600) -> dict[str, float]:
        assert self.proc.stdout is not None
        out, _ = self.proc.communicate(timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])


# -- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "max_inflight_messages 0",
                "max_queued_messages 0",
                "max_queued_bytes 0",
                "persistence false",
                "log_type error",
                "log_dest stderr",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=open(workdir / "mosquitto.log", "wb"))  # noqa: SIM115
    wait_port(port)
    return proc, port


def setup_database(url: str, n_devices: int, n_probes: int) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    from linli.admin.schemas import TokenIn
    from linli.admin.service import create_token
    from linli.core.db import Database
    from linli.core.migrate import upgrade
    from linli.core.roles import Perm
    from linli.core.web import system_ctx
    from linli.iot import service
    from linli.people.models import Community

    if url.startswith("postgresql"):
        admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = url.rsplit("/", 1)[1]
        with admin.connect() as c:
            if not c.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first():
                c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        e = create_engine(url)
        with e.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
        e.dispose()
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        community = Community(code="bench", name="基准社区", name_en="Bench")
        s.add(community)
        s.flush()
        ctx = system_ctx(community.id, "bench")
        charger = service.profile_by_key(s, ctx, "ev_charger")
        leak = service.profile_by_key(s, ctx, "water_leak")
        keys, ids = [], []
        for i in range(n_devices):
            d, _ = service.create_device(
                s, ctx, name=f"charger {i}", profile_id=charger.id, key=f"ev-{i:05d}"
            )
            keys.append(d.key)
            ids.append(d.id)
        probes = {}
        for i in range(n_probes):
            d, _ = service.create_device(
                s, ctx, name=f"leak probe {i}", profile_id=leak.id, key=f"probe-{i:03d}"
            )
            probes[d.key] = d.id
        chart, _ = service.create_device(
            s, ctx, name="chart", profile_id=charger.id, key="chart-device"
        )
        raw, _tok = create_token(s, ctx, TokenIn(name="bench", permissions=[Perm.EVENTS_READ]))
        cid, chart_id = community.id, chart.id
    db.dispose()
    return {
        "cid": cid,
        "keys": keys,
        "main_ids": (min(ids), max(ids)),
        "probes": probes,
        "chart": chart_id,
        "token": raw,
    }


def telemetry_rows(url: str, main_ids: tuple[int, int]) -> Any:
    """progress(): the samples stored so far, from the 1-hour roll-ups (a small table, cheap);
    progress(exact=True): the raw rows of the main devices (not the probes)."""
    from sqlalchemy import create_engine, text

    e = create_engine(url)

    def progress(exact: bool = False) -> int:
        with e.connect() as c:
            if exact:
                q = text("SELECT count(*) FROM telemetry WHERE device_id BETWEEN :a AND :b")
                return int(c.execute(q, {"a": main_ids[0], "b": main_ids[1]}).scalar() or 0)
            q = text("SELECT sum(count) FROM telemetry_rollups WHERE period = 'h'")
            return int(c.execute(q).scalar() or 0)

    return progress


# -- phases ------------------------------------------------------------------------------------


def bare_broker(port: int, spec: dict[str, Any]) -> dict[str, float]:
    """Mosquitto alone: a bare subscriber acknowledging every message at once."""
    from linli.iot.wire import WireClient

    total = spec["messages"]
    state = {"n": 0, "last": 0.0}
    done = threading.Event()

    def on(gen: int, msgs: list[Any]) -> None:
        client.ack(gen, [m[3] for m in msgs])
        state["n"] += len(msgs)
        state["last"] = time.time()
        if state["n"] >= total:
            done.set()

    client = WireClient(
        "127.0.0.1",
        port,
        client_id="bench-bare",
        subscriptions=[("linli/devices/+/telemetry", 1)],
        on_messages=on,
        clean_session=True,
    )
    client.start()
    if not client.wait_connected(10):
        raise SystemExit("bare subscriber cannot connect")
    pub = Publisher(spec)
    pub.go()
    if not done.wait(600):
        raise SystemExit(f"bare subscriber got {state['n']} of {total}")
    times = pub.result()
    client.stop()
    elapsed = state["last"] - times["start"]
    return {"rate": total / elapsed, "publish_rate": total / (times["acked_end"] - times["start"])}


class Sse:
    """Reads iot.alarm.raised events from the server's SSE stream."""

    def __init__(self, base: str, cid: int, token: str) -> None:
        self.url = f"{base}/api/v1/communities/{cid}/events/stream"
        self.token = token
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        params = {"pattern": "iot.alarm.raised"}
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as c,
            c.stream("GET", self.url, headers=headers, params=params) as r,
        ):
            r.raise_for_status()
            self.connected.set()
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data:"):
                    self.events.append((time.time(), json.loads(line[5:])))

    def stop(self) -> None:
        self._stop.set()


class Probes:
    """Leak probes toggling (leak, then dry) at ``rate`` publishes a second in all; records
    when each raising publish was made."""

    def __init__(self, port: int, probes: dict[str, int], rate: float) -> None:
        import paho.mqtt.client as mqtt

        self.probes = probes
        self.rate = rate
        self.raised_at: dict[int, list[float]] = {i: [] for i in probes.values()}
        self.published = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probes", protocol=mqtt.MQTTv311
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        keys = list(self.probes)
        state = dict.fromkeys(keys, False)
        i = 0
        while not self._stop.wait(1 / self.rate):
            key = keys[i % len(keys)]
            i += 1
            state[key] = not state[key]
            now = time.time()
            body = json.dumps({"ts": now, "values": {"leak": state[key]}})
            if state[key]:
                self.raised_at[self.probes[key]].append(now)
            self.client.publish(f"linli/devices/{key}/telemetry", body, qos=1)
            self.published += 1

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop toggling and leave every probe dry (its alarm cleared)."""
        self._stop.set()
        self.thread.join(5)
        for key in self.probes:
            body = json.dumps({"ts": time.time(), "values": {"leak": False}})
            self.client.publish(f"linli/devices/{key}/telemetry", body, qos=1).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


def latencies(probes: Probes, sse: Sse) -> list[float]:
    """For each alarm event: from the last raising publish of its probe before it."""
    out = []
    for at, ev in sse.events:
        sent = [
            t for t in probes.raised_at.get(ev.get("payload", {}).get("device_id"), []) if t <= at
        ]
        if sent:
            out.append(at - sent[-1])
    return out


def run_phase(
    args: argparse.Namespace,
    port: int,
    base: str,
    info: dict[str, Any],
    spec: dict[str, Any],
    progress: Any,
) -> dict[str, Any]:
    """Publish ``spec`` while the probes toggle; wait until every message is stored."""
    sse = Sse(base, info["cid"], info["token"])
    if not sse.connected.wait(20):
        raise SystemExit("SSE stream did not open")
    before_max, before = progress(), progress(exact=True)
    probes = Probes(port, info["probes"], args.probe_rate)
    pub = Publisher(spec)
    load0 = os.getloadavg()[0]
    cpu0 = cpu_seconds(args.pids)
    probes.start()
    spy = None
    if os.environ.get("LINLI_BENCH_PYSPY"):  # profile the ingesting process during the phase
        spy = subprocess.Popen(
            [
                os.environ["LINLI_BENCH_PYSPY"],
                "record",
                "-p",
                str(next(iter(args.pids.values()))),
                "-o",
                f"/tmp/linli-pyspy-{spec['rate'] or 'full'}.txt",
                "-f",
                "raw",
                "-d",
                "12",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    pub.go()
    expected = spec["messages"] * spec["metrics"]
    samples: list[tuple[float, int]] = []
    started = time.time()
    while True:
        time.sleep(0.1)
        n = progress() - before_max
        samples.append((time.time(), n))
        if n >= expected and progress(exact=True) - before >= expected:
            t_done = time.time()
            break
        if time.time() - started > 900:
            raise SystemExit(f"ingestion stalled at {n} of {expected} rows")
    times = pub.result()
    cpu1 = cpu_seconds(args.pids)
    if spy is not None:
        spy.wait(60)
    probes.stop()
    time.sleep(1.5)  # the last alarms reach the stream
    sse.stop()
    peak = 0.0
    for a, b in zip(samples, samples[10:], strict=False):
        peak = max(peak, (b[1] - a[1]) / (b[0] - a[0]) / spec["metrics"])
    if args.timeline:
        prev = (times["start"], 0)
        for t, n in samples[::10]:
            rate = (n - prev[1]) / max(1e-9, t - prev[0]) / spec["metrics"]
            print(
                f"  t={t - times['start']:6.1f}s stored={n // spec['metrics']:>8} {rate:>8,.0f}/s"
            )
            prev = (t, n)
    lat = sorted(latencies(probes, sse))
    return {
        "rate": spec["messages"] / (t_done - times["start"]),
        "offered": spec["messages"] / (times["sent_end"] - times["start"]),
        "peak": peak,
        "latency": lat,
        "load": (load0 + os.getloadavg()[0]) / 2,
        "cpu": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        "messages": spec["messages"],
    }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of the processes (from /proc); with PostgreSQL, also of all
    its server processes together (``postgres``, including any other client's work)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int | str) -> tuple[str, float]:
        text = Path(f"/proc/{pid}/stat").read_text()
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        return name, (int(fields[11]) + int(fields[12])) / tick

    for label, pid in pids.items():
        with contextlib.suppress(OSError, ValueError):
            out[label] = cpu(pid)[1]
    if pids.get("postgres"):
        total = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    name, seconds = cpu(entry.name)
                    if name == "postgres":
                        total += seconds
        out["postgres"] = total
    return out


def ingestion(
    args: argparse.Namespace,
    url: str,
    port: int,
    info: dict[str, Any],
    phases: list[dict[str, Any]],
    work: Path,
) -> list[dict[str, Any]]:
    http_port = free_port()
    env = {
        **os.environ,
        "LINLI_DATABASE_URL": url,
        "LINLI_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "LINLI_DATA_DIR": str(work / "data"),
        "LINLI_MQTT_ENABLED": "false" if args.workers else "true",
    }
    procs: list[subprocess.Popen[bytes]] = []
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "linli.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(http_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    for w in range(args.workers):
        ready = work / f"worker-{w}.ready"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "linli.iot.worker",
                    "--client-id",
                    f"linli-ingest-{w}",
                    "--share-group",
                    "linli",
                    "--ready-file",
                    str(ready),
                    *(["--no-sweep"] if w else []),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        wait_port(http_port, 60)
        base = f"http://127.0.0.1:{http_port}"
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        for w in range(args.workers):
            while not (work / f"worker-{w}.ready").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("workers did not start")
                time.sleep(0.1)
        time.sleep(1.0)  # the server's MQTT subscription
        args.pids = (
            {"ingest": procs[0].pid}
            if not args.workers
            else {f"worker{i}": p.pid for i, p in enumerate(procs[1:])}
        )
        args.pids["mosquitto"] = args.broker_pid
        if url.startswith("postgresql"):
            args.pids["postgres"] = -1  # every postgres process
        progress = telemetry_rows(url, info["main_ids"])
        results: list[dict[str, Any]] = []
        for phase in phases:
            spec = {**phase, "t0": time.time() - 200 + len(results)}
            results.append(run_phase(args, port, base, info, spec, progress))
        return results
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def chart_query(url: str, cid: int, device_id: int) -> dict[str, float]:
    """30 days of 1-minute roll-ups (and their hourly ones) for one metric, then the chart."""
    from sqlalchemy import text

    from linli.core.db import Database
    from linli.core.web import system_ctx
    from linli.iot import service

    db = Database(url)
    sqlite = db.is_sqlite
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=30)
    rows_m, rows_h = [], []
    t = start
    hour: dict[datetime, list[float]] = {}
    i = 0
    while t < end:
        v = 40 + 10 * ((i % 1440) / 1440)
        rows_m.append((device_id, "temperature", "m", t, v - 1, v + 1, v * 6, 6))
        h = hour.setdefault(t.replace(minute=0), [1e9, -1e9, 0.0, 0])
        h[0], h[1], h[2], h[3] = min(h[0], v - 1), max(h[1], v + 1), h[2] + v * 6, h[3] + 6
        t += timedelta(minutes=1)
        i += 1
    for b, h in hour.items():
        rows_h.append((device_id, "temperature", "h", b, h[0], h[1], h[2], int(h[3])))

    def fmt(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*r[:3], r[3].strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else r[3], *r[4:])

    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO telemetry_rollups (device_id, metric, period, bucket, vmin, vmax,"
                " vsum, count) VALUES (:d, :m, :p, :b, :lo, :hi, :s, :n)"
            ),
            [
                dict(zip(("d", "m", "p", "b", "lo", "hi", "s", "n"), fmt(r), strict=True))
                for r in rows_m + rows_h
            ],
        )
    ctx = system_ctx(cid, "bench")
    timings = {}
    for label, span in (("30d", timedelta(days=30)), ("24h", timedelta(hours=24))):
        ms = []
        for _ in range(25):
            t0 = time.perf_counter()
            with db.session() as s:
                out = service.series(s, ctx, device_id, "temperature", end - span, end)
            ms.append((time.perf_counter() - t0) * 1000)
            assert out["points"], out
        timings[label] = statistics.median(ms)
        timings[label + "_p95"] = sorted(ms)[int(len(ms) * 0.95) - 1]
    db.dispose()
    return timings


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_publish":
        publisher_main(json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("LINLI_BENCH_PG_URL", PG_URL))
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--connections", type=int, default=50, help="publisher MQTT connections")
    p.add_argument("--messages", type=int, default=300_000, help="full-speed phase")
    p.add_argument("--metrics", type=int, choices=(1, 2), default=2, help="values per message")
    p.add_argument(
        "--rate", type=float, default=20000, help="paced phase: publish rate (0: no paced phase)"
    )
    p.add_argument("--seconds", type=float, default=15, help="paced phase: duration")
    p.add_argument("--workers", type=int, default=0, help="ingest in N worker processes")
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--probe-rate", type=float, default=10.0, help="probe publishes a second")
    p.add_argument("--skip-bare", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--timeline", action="store_true", help="print the ingestion progress")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="linli-bench-ingest-"))
    url = args.pg_url if args.db == "postgresql" else f"sqlite:///{work / 'bench.db'}"
    print(
        f"work directory {work}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}", flush=True
    )
    info = setup_database(url, args.devices, args.probes)
    broker, port = start_mosquitto(work)
    args.broker_pid = broker.pid
    spec = {
        "port": port,
        "keys": info["keys"],
        "messages": args.messages,
        "connections": args.connections,
        "rate": 0,
        "metrics": args.metrics,
        "t0": time.time() - 300,
    }
    paced = {**spec, "rate": args.rate, "messages": int(args.rate * args.seconds)}
    try:
        bare = None
        if not args.skip_bare:
            bare = bare_broker(port, spec)
            print(
                f"bare Mosquitto: {bare['rate']:,.0f} msg/s delivered "
                f"(publisher {bare['publish_rate']:,.0f} msg/s acknowledged)",
                flush=True,
            )
        phases = [spec] + ([paced] if args.rate else [])
        full, *rest = ingestion(args, url, port, info, phases, work)
        for label, res in [("full speed", full)] + [(f"paced {args.rate:,.0f}/s", r) for r in rest]:
            lat = res["latency"]
            res["p50"] = statistics.median(lat) if lat else float("nan")
            res["p99"] = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
            cpu = ", ".join(
                f"{k} {v / res['messages'] * 1e6:.0f} us/msg" for k, v in res["cpu"].items()
            )
            print(
                f"ingestion, {label}: {res['rate']:,.0f} msg/s stored end to end "
                f"({res['rate'] * args.metrics:,.0f} samples/s; published at "
                f"{res['offered']:,.0f}/s; best second {res['peak']:,.0f}/s); alarm latency p50 "
                f"{res['p50'] * 1000:.0f} ms, p99 {res['p99'] * 1000:.0f} ms, max "
                f"{max(lat, default=0) * 1000:.0f} ms (n={len(lat)}); CPU: {cpu}; "
                f"load {res['load']:.1f}",
                flush=True,
            )
        chart = chart_query(url, info["cid"], info["chart"])
        print(
            f"chart: 30 days of 1-minute data {chart['30d']:.1f} ms (p95 {chart['30d_p95']:.1f}),"
            f" 24 h {chart['24h']:.1f} ms (p95 {chart['24h_p95']:.1f})",
            flush=True,
        )
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ratio = (
        f" = {full['rate'] / bare['rate']:.2f} of bare Mosquitto {bare['rate']:,.0f}"
        if bare
        else ""
    )
    where = f"{args.workers} workers" if args.workers else "linli serve"
    sustained = rest[0] if rest else full
    print(
        f"bench_ingest: {args.db}, {args.devices} devices / {args.connections} connections, "
        f"{args.metrics} values/msg, ingest in {where}: {full['rate']:,.0f} msg/s stored + rules"
        f"{ratio}; alarm p99 {sustained['p99'] * 1000:.0f} ms at "
        f"{sustained['rate']:,.0f} msg/s; 30-day chart {chart['30d']:.1f} ms; "
        f"{os.cpu_count()} cores, load {full['load']:.1f}"
    )


if __name__ == "__main__":
    main()
