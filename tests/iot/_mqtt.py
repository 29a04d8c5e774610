"""Helpers for the MQTT tests: free ports, bounded waits, a private Mosquitto, device clients."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

SYSTEM_BROKER = ("127.0.0.1", 1883)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def require_system_broker() -> None:
    """The Mosquitto of the machine (CI starts it); skipped when absent, except in CI."""
    if port_open(*SYSTEM_BROKER):
        return
    if os.environ.get("CI"):
        pytest.fail("Mosquitto is not running on 127.0.0.1:1883")
    pytest.skip("Mosquitto is not running on 127.0.0.1:1883")


class Mosquitto:
    """A private Mosquitto on a free port, configured for manual-ack ingestion, with
    persistence in its own directory: it can be stopped and restarted without losing its
    sessions and queued messages."""

    def __init__(self, workdir: Path, *, persistence: bool = True) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            pytest.skip("mosquitto is not installed")
        self.exe = exe
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        lines = [
            # as root, Mosquitto would switch to the "mosquitto" user, who cannot write here
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.dir}/"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "mosquitto.log", "ab"),  # noqa: SIM115
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout, "mosquitto to listen")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Device:
    """A device (paho-mqtt, as real devices and gateways use) with bounded waits."""

    def __init__(
        self,
        port: int,
        key: str,
        secret: str | None = None,
        *,
        client_id: str | None = None,
        host: str = "127.0.0.1",
        on_command: Callable[[Device, dict[str, Any]], None] | None = None,
    ) -> None:
        self.key = key
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"dev-{key}",
            protocol=mqtt.MQTTv311,
        )
        if secret is not None:
            self.client.username_pw_set(key, secret)
        self.connack = threading.Event()
        self.reason: Any = None
        self.subacks: list[Any] = []
        self.subscribed = threading.Event()
        self.commands: list[dict[str, Any]] = []
        self.on_command = on_command
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.reason = rc
        self.connack.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, codes: Any, _p: Any = None) -> None:
        self.subacks.extend(codes)
        self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        import json

        doc = json.loads(msg.payload)
        self.commands.append(doc)
        if self.on_command is not None:
            self.on_command(self, doc)

    def connect(self, timeout: float = 10.0) -> bool:
        """True when the broker accepted the connection."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connack.wait(timeout):
            pytest.fail(f"no CONNACK for {self.key} within {timeout} s")
        ok = not self.reason.is_failure
        if not ok:
            self.client.loop_stop()
        return ok

    def subscribe_commands(self, topic: str | None = None, timeout: float = 10.0) -> Any:
        self.subscribed.clear()
        self.client.subscribe(topic or f"linli/devices/{self.key}/commands", qos=1)
        if not self.subscribed.wait(timeout):
            pytest.fail(f"no SUBACK for {self.key}")
        return self.subacks[-1]

    def publish(self, kind: str, doc: Any, *, key: str | None = None, wait: bool = True) -> Any:
        import json

        payload = doc if isinstance(doc, bytes) else json.dumps(doc)
        info = self.client.publish(f"linli/devices/{key or self.key}/{kind}", payload, qos=1)
        if wait:
            info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forget_session(client_id: str, host: str = "127.0.0.1", port: int = 1883) -> None:
    """Drop a persistent session left on a shared broker (connect once with clean session)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    try:
        c.connect(host, port, keepalive=5)
        c.loop_start()
        time.sleep(0.1)
        c.disconnect()
        c.loop_stop()
    except OSError:
        pass
