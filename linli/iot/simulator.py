"""A device simulator for the demo, the end-to-end tests and the benchmarks.

Each simulated device connects with its own credentials and publishes realistic telemetry
over MQTT: day/night patterns, noise, occasional faults, and one device that goes silent —
so alarms and work orders appear within a minute of starting.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core.web import Ctx
from linli.iot import service
from linli.iot.ingest import TOPIC_PREFIX
from linli.people.models import Building

log = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")

#: (profile, how many, name template)
DEMO_FLEET: list[tuple[str, int, str]] = [
    ("fire_hydrant", 6, "消防栓 {n}"),
    ("smoke_detector", 8, "烟感 {n}"),
    ("manhole_cover", 6, "井盖 {n}"),
    ("street_light", 10, "路灯 {n}"),
    ("elevator", 6, "电梯 {n}"),
    ("ev_charger", 4, "充电桩 {n}"),
    ("water_leak", 4, "水浸 {n}"),
    ("bin_level", 6, "垃圾桶 {n}"),
    ("water_meter", 4, "水表 {n}"),
    ("gateway", 2, "网关 {n}"),
]


@dataclass
class SimDevice:
    key: str
    secret: str
    profile: str
    fault_at: float | None = None  # seconds after start
    silent_at: float | None = None
    state: dict[str, float] = field(default_factory=dict)


def seed_demo_devices(s: Session, ctx: Ctx, rng: random.Random | None = None) -> list[SimDevice]:
    """Register the demo fleet around the community's buildings; pick who misbehaves."""
    rng = rng or random.Random(11)
    buildings = list(s.scalars(select(Building).where(Building.community_id == ctx.community_id)))
    out: list[SimDevice] = []
    for key, count, template in DEMO_FLEET:
        profile = service.profile_by_key(s, ctx, key)
        for n in range(1, count + 1):
            b = rng.choice(buildings) if buildings else None
            x = (
                min(0.98, max(0.02, (b.map_x or 0.5) + rng.uniform(-0.08, 0.08)))
                if b
                else rng.random()
            )
            y = (
                min(0.98, max(0.02, (b.map_y or 0.5) + rng.uniform(-0.08, 0.08)))
                if b
                else rng.random()
            )
            d, secret = service.create_device(
                s,
                ctx,
                name=template.format(n=n),
                profile_id=profile.id,
                key=f"demo-{key}-{n}",
                building_id=b.id if b else None,
                location=f"{b.name} 附近" if b else None,
                map_x=round(x, 3),
                map_y=round(y, 3),
                attributes={"vendor": "Linli Sim", "firmware": "1.4.2"},
            )
            out.append(SimDevice(d.key, secret, key))
    # scripted incidents so the demo shows the whole loop within a minute
    faults = {"smoke_detector": 25.0, "manhole_cover": 40.0, "elevator": 50.0, "ev_charger": 5.0}
    for dev in out:
        if dev.profile in faults and dev.key.endswith("-1"):
            dev.fault_at = faults.pop(dev.profile)
    silent = next(d for d in out if d.profile == "gateway")
    silent.silent_at = 15.0
    gw = s.scalar(select(service.Device).where(service.Device.key == silent.key))
    assert gw is not None
    # a tighter heartbeat for this gateway so its offline alarm shows up quickly
    service.save_rule(
        s,
        ctx,
        name="Device offline",
        device_id=gw.id,
        severity="major",
        condition={"kind": "missing", "seconds": 40},
        category="facility",
        create_work_order=True,
    )
    return out


def _daylight(now: datetime) -> float:
    h = now.astimezone(TZ).hour + now.astimezone(TZ).minute / 60
    return max(0.0, math.sin((h - 6) / 12 * math.pi))


def sample(dev: SimDevice, t: float, now: datetime, rng: random.Random) -> dict[str, Any]:
    """One realistic reading for a device ``t`` seconds after the start."""
    faulty = dev.fault_at is not None and t >= dev.fault_at
    day = _daylight(now)
    p = dev.profile
    if p == "fire_hydrant":
        return {"pressure": round(max(0.0, rng.gauss(0.32, 0.01)), 3), "leak": False}
    if p == "smoke_detector":
        return {"smoke": bool(faulty and t < (dev.fault_at or 0) + 90), "battery": 87}
    if p == "manhole_cover":
        tilt = rng.uniform(20, 30) if faulty else abs(rng.gauss(1, 0.5))
        return {
            "tilt": round(tilt, 1),
            "displacement": round(abs(rng.gauss(2, 1)), 1),
            "battery": 76,
        }
    if p == "street_light":
        on = day < 0.1
        return {"on": on, "fault": False, "power": round(rng.gauss(78, 2), 1) if on else 0.0}
    if p == "elevator":
        trapped = faulty and t < (dev.fault_at or 0) + 60
        busy = 0.2 + 0.7 * day
        return {
            "running": rng.random() < busy,
            "fault_code": 0,
            "trapped": trapped,
            "floor": rng.randint(1, 18),
        }
    if p == "ev_charger":
        base = 38 + 10 * day
        temp = (
            72.0 + rng.uniform(0, 3)
            if faulty and t < (dev.fault_at or 0) + 150
            else rng.gauss(base, 1)
        )
        return {"temperature": round(temp, 1), "current": round(max(0.0, rng.gauss(16, 1)), 1)}
    if p == "water_leak":
        return {"leak": False}
    if p == "bin_level":
        fill = dev.state.get("fill", rng.uniform(10, 60))
        fill = min(100.0, fill + rng.uniform(0.2, 1.5) * (0.5 + day))
        if fill >= 98:
            fill = rng.uniform(3, 8)  # emptied
        dev.state["fill"] = fill
        return {"fill": round(fill, 1), "distance": round(120 * (1 - fill / 100), 1)}
    if p == "water_meter":
        flow = max(0.0, rng.gauss(3 + 6 * day, 1))
        dev.state["total"] = dev.state.get("total", 1200.0) + flow / 60 / 1000 * 10
        return {"flow": round(flow, 2), "total": round(dev.state["total"], 3)}
    return {"rssi": rng.randint(-90, -60), "uptime": int(t)}


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


class Simulator:
    """Publishes for every device every ``interval`` seconds (demo speed, not real intervals)."""

    def __init__(
        self, devices: list[SimDevice], host: str, port: int, interval: float = 5.0, seed: int = 3
    ) -> None:
        self.devices = devices
        self.host, self.port = host, port
        self.interval = interval
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._clients: dict[str, mqtt.Client] = {}
        self._thread: threading.Thread | None = None

    def _client(self, dev: SimDevice) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{dev.key}", protocol=mqtt.MQTTv311
        )
        c.username_pw_set(dev.key, dev.secret)
        c.will_set(f"{TOPIC_PREFIX}{dev.key}/status", json.dumps({"online": False}), qos=1)
        c.on_message = lambda cl, _u, msg: self._on_command(cl, dev, msg)
        c.connect(self.host, self.port, keepalive=30)
        c.subscribe(f"{TOPIC_PREFIX}{dev.key}/commands", qos=1)
        c.loop_start()
        c.publish(f"{TOPIC_PREFIX}{dev.key}/status", json.dumps({"online": True}), qos=1)
        return c

    def _on_command(self, client: mqtt.Client, dev: SimDevice, msg: mqtt.MQTTMessage) -> None:
        try:
            cmd = json.loads(msg.payload)
            ack = {"id": int(cmd["id"]), "ok": True, "result": {"done": cmd.get("name")}}
        except (ValueError, KeyError, TypeError):
            return
        client.publish(f"{TOPIC_PREFIX}{dev.key}/commands/ack", json.dumps(ack), qos=1)

    def run(self) -> None:
        if not wait_for_port(self.host, self.port):
            log.error("simulator: broker %s:%s not reachable", self.host, self.port)
            return
        start = time.monotonic()
        for dev in self.devices:
            try:
                self._clients[dev.key] = self._client(dev)
            except OSError:
                log.exception("simulator: %s cannot connect", dev.key)
        while not self._stop.is_set():
            t = time.monotonic() - start
            now = datetime.now(tz=TZ)
            for dev in self.devices:
                c = self._clients.get(dev.key)
                if c is None:
                    continue
                if dev.silent_at is not None and t >= dev.silent_at:
                    continue  # gone quiet: no more data, the heartbeat rule will notice
                payload = {"ts": time.time(), "values": sample(dev, t, now, self.rng)}
                c.publish(f"{TOPIC_PREFIX}{dev.key}/telemetry", json.dumps(payload), qos=1)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="linli-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for c in self._clients.values():
            c.loop_stop()
            c.disconnect()
