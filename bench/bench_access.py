"""Benchmark of the access decision end to end, through the decision service (run on one
core: ``taskset -c 1 .venv/bin/python bench/bench_access.py``).

A community with a gate (and its IoT device) and a gallery of ``--templates`` encrypted face
templates in the database (synthetic persons around the real embeddings, plus the real people
of ../shared/data/faces/gallery enrolled through ``service.enroll_face`` with consent). Then:

1. enrollment through the service (consent checked, decode, detect, quality checks, embedding,
   1:N duplicate check in the full gallery, AES-GCM, row stored): photos/s;
2. the access decision for a JPEG 640×480 frame with one face (≈200 px), end to end:
   ``service.decide`` (decode → detect → align → embed → 1:N among all templates → policy →
   access event + snapshot + outbox event → gate ``open`` command) and the commit; with
   ``--mqtt`` (default when Mosquitto answers on 127.0.0.1:1883) the clock stops when the gate
   device, a paho-mqtt client subscribed on the broker, has received the command;
3. the same through HTTP (``POST /api/v1/communities/{cid}/gates/{gate}/decide``, uvicorn on
   127.0.0.1, multipart upload, API token) with ``--http``;
4. the 1:N search of the service's gallery alone (``Gallery.search``, k = 1, and ``identify``).

Prints details, then ONE result line starting with ``bench_access``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from linli.access import service  # noqa: E402
from linli.access.models import Consent, FaceTemplate, Gate, Identity  # noqa: E402
from linli.access.schemas import ConsentIn, GateIn, IdentityIn  # noqa: E402
from linli.core.web import system_ctx  # noqa: E402
from linli.vision import faces as F  # noqa: E402
from linli.vision.images import decode_image  # noqa: E402

DATA = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "faces"
BROKER = ("127.0.0.1", 1883)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: list[float]) -> str:
    return (
        f"n={len(values)} p50 {pct(values, 50):.1f} p95 {pct(values, 95):.1f} "
        f"max {max(values):.1f} ms"
    )


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminal_frames() -> list[bytes]:
    """JPEG 640×480 frames with one face ≈200 px wide, from every gallery photo."""
    out: list[bytes] = []
    for d in sorted(p for p in (DATA / "gallery").iterdir() if p.is_dir()):
        for src in F.iter_photos(d):
            rgb = decode_image(src).rgb
            face = F.analyze_image(rgb, embed=False, order="largest_first")[0]
            s = 200.0 / face.box.width
            cx, cy = face.box.center
            m = np.array([[s, 0, 320 - s * cx], [0, s, 220 - s * cy]], dtype=np.float64)
            frame = cv2.warpAffine(
                rgb, m, (640, 480), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
            )
            ok, jpg = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
            assert ok
            out.append(jpg.tobytes())
    return out


def synthetic_gallery(db: Any, settings: Any, cid: int, n: int) -> float:
    """``n`` persons with consent and one encrypted template each, bulk-inserted. Embeddings
    are drawn around the real ones (same mean, 1.6× their spread), so none is near a real
    face. Returns the seconds taken."""
    t0 = time.perf_counter()
    real = []
    for d in sorted(p for p in (DATA / "gallery").iterdir() if p.is_dir()):
        for src in F.iter_photos(d):
            f = F.analyze_image(src)[0]
            assert f.embedding is not None
            real.append(f.embedding)
    emb = np.stack(real)
    rng = np.random.default_rng(0)
    spread = float(np.mean(np.std(emb, axis=0)))
    synth = (emb.mean(0) + rng.normal(0.0, spread * 1.6, (n, 128))).astype(np.float32)
    cipher = service.cipher(settings)
    with db.session() as s:  # above every id in use (a database reused between runs)
        base = 1 + max(
            int(s.scalar(select(func.max(m.id))) or 0) for m in (Identity, Consent, FaceTemplate)
        )
    step = 5000
    with db.session() as s:
        for start in range(0, n, step):
            ids = range(base + start, base + min(start + step, n))
            s.execute(
                insert(Identity),
                [
                    {
                        "id": i,
                        "community_id": cid,
                        "kind": "resident",
                        "name": f"synthetic {i}",
                        "active": True,
                    }
                    for i in ids
                ],
            )
            s.execute(
                insert(Consent),
                [
                    {
                        "id": i,
                        "community_id": cid,
                        "identity_id": i,
                        "scope": "face_recognition",
                        "given_by": "bench",
                        "recorded_by": "bench",
                    }
                    for i in ids
                ],
            )
            s.execute(
                insert(FaceTemplate),
                [
                    {
                        "id": i,
                        "community_id": cid,
                        "identity_id": i,
                        "consent_id": i,
                        "template": cipher.encrypt(
                            F.embedding_to_bytes(synth[i - base]), service._aad(i)
                        ),
                        "quality": {},
                    }
                    for i in ids
                ],
            )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--templates", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10, help="passes over the 11 frames")
    ap.add_argument("--database-url", default=os.environ.get("LINLI_BENCH_DATABASE_URL"))
    ap.add_argument("--http", action="store_true", help="also through HTTP (uvicorn)")
    ap.add_argument("--no-mqtt", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"shared data not found: {DATA}", file=sys.stderr)
        return 2

    from linli.app import create_app
    from linli.core.config import make_settings
    from linli.core.migrate import upgrade
    from linli.people.models import Community

    tmp = Path(tempfile.mkdtemp(prefix="bench-access-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = make_settings(data_dir=tmp / "data", database_url=url)
    upgrade(url)
    app = create_app(settings, run_dispatcher=False)
    db, files = app.state.db, app.state.files
    F.warm_up()
    dialect = db.engine.dialect.name

    with db.session() as s:
        c = Community(code=f"bench{uuid.uuid4().hex[:6]}", name="基准社区", name_en="Bench")
        s.add(c)
        s.flush()
        cid = c.id
        ctx = system_ctx(cid, "bench")
        gate = service.save_gate(s, ctx, GateIn(name="North gate"))
        device = service.ensure_gate_device(s, ctx, gate)
        gate_id, device_key = gate.id, device.key
    fill_s = synthetic_gallery(db, settings, cid, args.templates)
    if dialect == "postgresql":
        tables = ("access_identities", "access_consents", "access_face_templates")
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for tbl in tables:  # rows were inserted with explicit ids
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{tbl}', 'id'), "
                        f"(SELECT max(id) FROM {tbl}))"
                    )
                )
            # planner statistics, as autovacuum keeps them in production
            conn.execute(text("ANALYZE " + ", ".join(tables)))
    print(
        f"{dialect}: {args.templates} synthetic persons with encrypted templates inserted "
        f"in {fill_s:.1f} s"
    )

    # first use in the process: decrypt the whole gallery
    with db.session() as s:
        t0 = time.perf_counter()
        g = service.gallery_for(s, settings, cid)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(20):
            service.gallery_for(s, settings, cid)
        stamp_ms = (time.perf_counter() - t0) / 20 * 1000
        t0 = time.perf_counter()
        for _ in range(200):
            service.gallery_for(s, settings, cid, thorough=False)
        fast_ms = (time.perf_counter() - t0) / 200 * 1000
    print(
        f"gallery of {len(g)} templates decrypted and loaded in {load_s:.2f} s; freshness "
        f"check: full stamp {stamp_ms:.2f} ms, decision path {fast_ms:.3f} ms"
    )

    # ---- 1. enrollment through the service --------------------------------------------------
    photos = [
        (d.name, p)
        for d in sorted(x for x in (DATA / "gallery").iterdir() if x.is_dir())
        for p in F.iter_photos(d)
    ]
    enroll_ms: list[float] = []
    refused: list[tuple[str, str | None]] = []
    with db.session() as s:
        ctx = system_ctx(cid, "bench")
        who: dict[str, int] = {}
        for person, _p in photos:
            if person not in who:
                i = service.create_identity(s, ctx, IdentityIn(kind="resident", name=person))
                service.record_consent(s, ctx, i.id, ConsentIn(given_by=person))
                who[person] = i.id
        s.flush()
        for person, p in photos:
            data = p.read_bytes()
            t0 = time.perf_counter()
            res = service.enroll_face(s, ctx, who[person], data, settings, files)
            s.flush()
            enroll_ms.append((time.perf_counter() - t0) * 1000)
            if not res.ok:
                refused.append((p.name, res.reason))
    enroll_rate = len(enroll_ms) / (sum(enroll_ms) / 1000)
    print(
        f"enrollment through the service ({len(photos)} full-size photos, gallery of "
        f"{len(g)}): {enroll_rate:.2f} photos/s, {summary(enroll_ms)}; refused {refused}"
    )

    # ---- 2. the decision, end to end -------------------------------------------------------
    frames = terminal_frames()
    mqtt_ok = not args.no_mqtt and port_open(*BROKER)
    ing = dev = None
    got = threading.Event()
    received: list[dict[str, Any]] = []
    if mqtt_ok:
        import json

        import paho.mqtt.client as mqtt

        from linli.iot.mqtt import BrokerAddress, MqttIngest

        tag = uuid.uuid4().hex[:8]
        ing = MqttIngest(
            db,
            BrokerAddress(*BROKER),
            client_id=f"bench-access-{tag}",
            max_wait=0.02,
            sweep_every=3600,
        )
        ing.start(sweeper=False)
        assert ing.wait_connected(15)
        dev = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-gate-{tag}")
        subscribed = threading.Event()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            received.append(json.loads(msg.payload))
            got.set()

        dev.on_message = on_message
        dev.on_subscribe = lambda *_a: subscribed.set()
        dev.connect(*BROKER, keepalive=30)
        dev.loop_start()
        dev.subscribe(f"linli/devices/{device_key}/commands", qos=1)
        assert subscribed.wait(10)

    decide_ms: list[float] = []
    cpu_ms: list[float] = []
    reasons: dict[str, int] = {}

    def one(jpeg: bytes) -> None:
        got.clear()
        c0 = time.thread_time()
        t0 = time.perf_counter()
        with db.session() as s:
            d, _ev = service.decide(
                s,
                system_ctx(cid, "terminal"),
                gate_id,
                service.Presented(frames=[jpeg]),
                settings,
                files,
            )
        if mqtt_ok and d.granted:
            assert got.wait(10), "the gate never received the open command"
        decide_ms.append((time.perf_counter() - t0) * 1000)
        cpu_ms.append((time.thread_time() - c0) * 1000)
        reasons[d.reason] = reasons.get(d.reason, 0) + 1

    one(frames[0])  # warm
    decide_ms.clear()
    cpu_ms.clear()
    reasons.clear()
    for _ in range(args.rounds):
        for f in frames:
            one(f)
    until = "until the gate device received open over MQTT" if mqtt_ok else "until commit"
    print(
        f"access decision end to end ({until}): {summary(decide_ms)}; CPU of the deciding "
        f"thread p50 {pct(cpu_ms, 50):.1f} p95 {pct(cpu_ms, 95):.1f} ms; reasons {reasons}"
    )
    if mqtt_ok:
        print(f"gate device received {len(received)} open commands")
        with db.session() as s:
            assert s.scalar(select(Gate.id).where(Gate.id == gate_id))

    # ---- 3. through HTTP -------------------------------------------------------------------
    http_ms: list[float] = []
    if args.http:
        import httpx
        import uvicorn

        from linli.core.models import ApiToken
        from linli.core.security import new_api_token

        raw, prefix, hashed = new_api_token()
        with db.session() as s:
            s.add(
                ApiToken(
                    community_id=cid,
                    name="terminal",
                    prefix=prefix,
                    token_hash=hashed,
                    permissions=["access.decide"],
                )
            )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as hc:
            url = f"/api/v1/communities/{cid}/gates/{gate_id}/decide"
            h = {"Authorization": f"Bearer {raw}"}
            for k in range(args.rounds * len(frames) + 1):
                got.clear()
                t0 = time.perf_counter()
                r = hc.post(
                    url,
                    files={"image": ("f.jpg", frames[k % len(frames)], "image/jpeg")},
                    headers=h,
                )
                assert r.status_code == 200, r.text
                if mqtt_ok and r.json()["granted"]:
                    assert got.wait(10)
                if k:
                    http_ms.append((time.perf_counter() - t0) * 1000)
        server.should_exit = True
        th.join(10)
        print(f"HTTP decision (multipart upload, API token, uvicorn): {summary(http_ms)}")

    # the MQTT threads of this process would share the core with the search: stop them first
    if ing is not None:
        ing.stop()
    if dev is not None:
        dev.disconnect()
        dev.loop_stop()

    # ---- 4. the 1:N search alone ---------------------------------------------------------
    rng = np.random.default_rng(1)
    with db.session() as s:
        g = service.gallery_for(s, settings, cid)
    own = [e for _n, p in photos if (e := F.analyze_image(p)[0].embedding) is not None]
    queries = [own[i % len(own)] + rng.normal(0, 0.02, 128).astype(np.float32) for i in range(1000)]
    search_ms: list[float] = []
    search_cpu: list[float] = []
    for q in queries:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        g.search(q, k=1)
        search_ms.append((time.perf_counter() - t0) * 1000)
        search_cpu.append((time.thread_time() - c0) * 1000)
    ident_ms: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        g.identify(q)
        ident_ms.append((time.perf_counter() - t0) * 1000)
    print(
        f"1:N search k=1 in {len(g)} templates: p50 {pct(search_ms, 50):.2f} "
        f"p95 {pct(search_ms, 95):.2f} ms (CPU p95 {pct(search_cpu, 95):.2f}); identify "
        f"(k=2 + margin) p50 {pct(ident_ms, 50):.2f} p95 {pct(ident_ms, 95):.2f} ms"
    )

    app.state.db.dispose()
    load1 = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    print(
        f"bench_access db={dialect} cores={cores} templates={len(g)} "
        f"decision_p50_ms={pct(decide_ms, 50):.0f} decision_p95_ms={pct(decide_ms, 95):.0f} "
        f"decision_cpu_p95_ms={pct(cpu_ms, 95):.0f} mqtt={'yes' if mqtt_ok else 'no'} "
        + (f"http_p95_ms={pct(http_ms, 95):.0f} " if http_ms else "")
        + f"search_p50_ms={pct(search_ms, 50):.2f} search_p95_ms={pct(search_ms, 95):.2f} "
        f"enroll_photos_per_s={enroll_rate:.2f} gallery_load_s={load_s:.2f} "
        f"loadavg={load1[0]:.1f}/{load1[1]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
