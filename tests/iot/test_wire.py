"""The lean MQTT client of the ingestion: packet encoding and parsing, and a persistent
session's messages arriving in the same TCP segment as the CONNACK."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from linli.iot.wire import (
    PINGRESP,
    SUBACK,
    ConnectionRefused,
    ProtocolError,
    WireClient,
    connect_packet,
    parse,
    puback_packet,
    pubacks,
    publish_packet,
    subscribe_packet,
)

from ._mqtt import wait_until


def test_publish_round_trip_with_every_length_encoding():
    for size in (0, 1, 100, 127 - 12, 128, 16_383, 16_384, 70_000, 2_100_000):
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        packet = publish_packet("linli/devices/k/telemetry", payload, qos=1, pid=513)
        pubs, others = [], []
        assert parse(bytearray(packet), pubs, others) == len(packet)
        assert pubs == [("linli/devices/k/telemetry", payload, 1, 513, False)] and not others


def test_parse_byte_by_byte_and_mixed_packets():
    stream = (
        publish_packet("a/b", b"one", qos=1, pid=1)
        + b"\xd0\x00"  # PINGRESP
        + publish_packet("a/c", b"two", qos=0, dup=True)
        + b"\x90\x03\x00\x07\x01"  # SUBACK
        + publish_packet("a/d", "三".encode(), qos=1, pid=65535, dup=True)
    )
    buf = bytearray()
    pubs: list = []
    others: list = []
    for b in stream:
        buf.append(b)
        used = parse(buf, pubs, others)
        del buf[:used]
    assert not buf
    assert pubs == [
        ("a/b", b"one", 1, 1, False),
        ("a/c", b"two", 0, 0, True),
        ("a/d", "三".encode(), 1, 65535, True),
    ]
    assert [(k, body) for k, _f, body in others] == [(PINGRESP, b""), (SUBACK, b"\x00\x07\x01")]


def test_malformed_input_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        parse(bytearray(b"\x30\xff\xff\xff\xff\x01"), [], [])
    with pytest.raises(ProtocolError):
        parse(bytearray(b"\x32\x03\x00\x05ab"), [], [])  # topic longer than the packet


def test_encodings():
    assert puback_packet(258) == b"\x40\x02\x01\x02"
    assert pubacks([1, 2]) == b"\x40\x02\x00\x01\x40\x02\x00\x02"
    assert subscribe_packet(1, [("a/#", 1)]) == b"\x82\x08\x00\x01\x00\x03a/#\x01"
    c = connect_packet("cid", clean_session=False, keepalive=30, username="u", password="p")
    assert c[0] == 0x10 and c[2:8] == b"\x00\x04MQTT" and c[8] == 4
    assert c[9] == 0xC0  # user name + password, no clean session
    assert c[10:12] == b"\x00\x1e"


class FakeBroker:
    """A one-connection server: answers CONNECT with CONNACK *and* queued messages in the
    same write, as a broker resuming a persistent session may do; records what comes back."""

    def __init__(self, code: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.code = code
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(1024)  # CONNECT
            queued = publish_packet("linli/devices/k/telemetry", b'{"n":1}', 1, 11)
            queued += publish_packet("linli/devices/k/telemetry", b'{"n":2}', 1, 12)
            conn.sendall(bytes((0x20, 2, 1, self.code)) + (queued if self.code == 0 else b""))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and b"\x40\x02\x00\x0c" not in self.received:
                try:
                    chunk = conn.recv(1024)
                except TimeoutError:
                    break
                if not chunk:
                    break
                self.received += chunk


def test_messages_in_the_connack_segment_are_not_lost():
    broker = FakeBroker()
    got: list = []
    client = WireClient(
        "127.0.0.1",
        broker.port,
        client_id="t",
        subscriptions=[("linli/devices/+/telemetry", 1)],
        on_messages=lambda gen, msgs: got.extend((gen, m) for m in msgs),
    )
    client.start()
    try:
        wait_until(lambda: len(got) == 2, 10, "the two queued messages")
        gen = got[0][0]
        assert [m[1] for _g, m in got] == [b'{"n":1}', b'{"n":2}']
        assert client.ack(gen, [11, 12])
        assert not client.ack(gen + 1, [11])  # a later connection's acks are not this one's
        broker.thread.join(10)
        assert broker.received.endswith(b"\x40\x02\x00\x0b\x40\x02\x00\x0c")
    finally:
        client.stop()


def test_refused_connection_is_reported():
    broker = FakeBroker(code=5)
    client = WireClient("127.0.0.1", broker.port, client_id="t", reconnect_delay=(5, 5))
    client.start()
    try:
        wait_until(lambda: client.last_error, 10, "the refusal")
        assert client.last_error == str(ConnectionRefused(5))
        assert "not authorised" in client.last_error
        assert not client.connected.is_set()
    finally:
        client.stop()
