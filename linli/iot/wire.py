"""A small MQTT 3.1.1 client for the ingestion hot path.

paho-mqtt handles one packet at a time in Python and writes one PUBACK per message; at tens
of thousands of messages a second that alone saturates a core. This client reads the socket
in large chunks, parses every complete packet of a chunk in one tight loop and hands the
publishes over as a list; the caller acknowledges a whole batch with one ``sendall`` once it
is committed. It does exactly what ingestion needs and nothing else:

* CONNECT (persistent or clean session, user name and password, last will), SUBSCRIBE,
  PINGREQ on an idle connection, reconnection with back-off;
* incoming PUBLISH at QoS 0 and 1 (subscriptions ask for QoS 1 at most), acknowledged
  explicitly with :meth:`WireClient.ack` — in the order received, as MQTT requires;
* outgoing PUBLISH at QoS 0 and 1 (device commands); unacknowledged QoS 1 publishes are sent
  again, flagged DUP, after a reconnection.

Every connection has a generation number. Acknowledgements carry the generation of the
messages they acknowledge and are dropped if the connection has been replaced since: the
broker redelivers those messages on the new connection anyway.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
PUBREC, PUBREL, PUBCOMP = 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
_PUBACK = struct.Struct(">BBH")

#: an incoming PUBLISH: (topic, payload, qos, packet id, dup)
InMessage = tuple[str, bytes, int, int, bool]

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class ProtocolError(Exception):
    """The peer sent something that is not MQTT 3.1.1."""


class ConnectionRefused(Exception):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"connection refused: {CONNACK_REASONS.get(code, code)}")
        self.code = code


# -- encoding ----------------------------------------------------------------------------------


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise ValueError("string too long for MQTT")
    return struct.pack(">H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varlen(len(body)) + body


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def connect_packet(
    client_id: str,
    *,
    clean_session: bool = True,
    keepalive: int = 30,
    username: str | None = None,
    password: str | None = None,
    will: Will | None = None,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _str(will.topic) + _str(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = _str("MQTT") + bytes((4, flags)) + struct.pack(">H", keepalive) + payload
    return _packet(CONNECT << 4, body)


def subscribe_packet(pid: int, filters: Sequence[tuple[str, int]]) -> bytes:
    body = struct.pack(">H", pid) + b"".join(_str(f) + bytes((q,)) for f, q in filters)
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def publish_packet(
    topic: str,
    payload: bytes,
    qos: int = 0,
    pid: int = 0,
    *,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    first = (PUBLISH << 4) | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return _packet(first, body)


def puback_packet(pid: int) -> bytes:
    return _PUBACK.pack(0x40, 2, pid)


def pubacks(pids: Iterable[int]) -> bytes:
    """PUBACK packets for ``pids``, in order, as one buffer."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, p) for p in pids])


# -- decoding ----------------------------------------------------------------------------------


def parse(buf: bytearray, publishes: list[InMessage], others: list[tuple[int, int, bytes]]) -> int:
    """Parse every complete packet at the start of ``buf``; returns how many bytes were used.

    Publishes go to ``publishes`` as (topic, payload, qos, packet id, dup); other packets to
    ``others`` as (type, flags, body)."""
    i, n = 0, len(buf)
    while n - i >= 2:
        first = buf[i]
        j = i + 1
        length = 0
        shift = 0
        while True:
            if j >= n:
                return i
            b = buf[j]
            j += 1
            length |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 21:
                raise ProtocolError("malformed remaining length")
        end = j + length
        if end > n:
            return i
        kind = first >> 4
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            if length < 2:
                raise ProtocolError("short PUBLISH")
            tl = (buf[j] << 8) | buf[j + 1]
            k = j + 2 + tl
            if k + (2 if qos else 0) > end or qos == 3:
                raise ProtocolError("malformed PUBLISH")
            try:
                topic = buf[j + 2 : k].decode()
            except UnicodeDecodeError:
                raise ProtocolError("topic is not UTF-8") from None
            if qos:
                pid = (buf[k] << 8) | buf[k + 1]
                k += 2
            else:
                pid = 0
            publishes.append((topic, bytes(buf[k:end]), qos, pid, bool(first & 0x08)))
        else:
            others.append((kind, first & 0x0F, bytes(buf[j:end])))
        i = end
    return i


# -- the client --------------------------------------------------------------------------------

OnMessages = Callable[[int, list[InMessage]], None]


class WireClient:
    """One MQTT connection in a background thread, reconnecting until stopped.

    ``on_messages(generation, publishes)`` runs in the network thread for every chunk read;
    it must be quick (hand the messages over to a queue). ``paused()``, when given, is asked
    before each read: while it returns true the client stops reading, so TCP flow control
    makes the broker hold the messages instead of this process.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_messages: OnMessages | None = None,
        clean_session: bool = False,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        will: Will | None = None,
        paused: Callable[[], bool] | None = None,
        on_connect: Callable[[int], None] | None = None,
        reconnect_delay: tuple[float, float] = (0.25, 10.0),
        connect_timeout: float = 10.0,
        read_size: int = 256 * 1024,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.on_messages = on_messages
        self.clean_session = clean_session
        self.username, self.password = username, password
        self.keepalive = keepalive
        self.will = will
        self.paused = paused
        self.on_connect = on_connect
        self.reconnect_delay = reconnect_delay
        self.connect_timeout = connect_timeout
        self.read_size = read_size
        #: set once connected and (with subscriptions) subscribed
        self.connected = threading.Event()
        #: why the last connection attempt failed ("" when connected)
        self.last_error = ""
        self.generation = 0
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_pid = 0
        self._outgoing: dict[int, bytes] = {}  # unacknowledged QoS 1 publishes we sent
        self._last_sent = 0.0

    # -- sending (any thread) ----------------------------------------------------------------

    def _send(self, data: bytes, generation: int | None = None) -> bool:
        with self._send_lock:
            sock = self._sock
            if sock is None or (generation is not None and generation != self.generation):
                return False
            try:
                sock.sendall(data)
            except OSError as exc:
                log.debug("MQTT send failed: %s", exc)
                self._drop(sock)
                return False
            self._last_sent = time.monotonic()
            return True

    def ack(self, generation: int, pids: Iterable[int]) -> bool:
        """Acknowledge QoS 1 messages received on connection ``generation``."""
        data = pubacks(pids)
        return bool(data) and self._send(data, generation)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> bool:
        """Send a message; True when it was written to the broker's connection."""
        body = payload.encode() if isinstance(payload, str) else payload
        if qos not in (0, 1):
            raise ValueError("QoS 0 or 1")
        with self._send_lock:
            pid = 0
            if qos:
                pid = self._allocate_pid()
            packet = publish_packet(topic, body, qos, pid, retain=retain)
            if qos:
                self._outgoing[pid] = publish_packet(topic, body, qos, pid, retain=retain, dup=True)
            sock = self._sock
            if sock is None:
                return False  # kept in _outgoing when QoS 1: sent on reconnection
            try:
                sock.sendall(packet)
            except OSError:
                self._drop(sock)
                return False
            self._last_sent = time.monotonic()
            return True

    def _allocate_pid(self) -> int:
        for _ in range(0xFFFF):
            self._next_pid = self._next_pid % 0xFFFF + 1
            if self._next_pid not in self._outgoing:
                return self._next_pid
        raise RuntimeError("no free MQTT packet identifier")

    def _drop(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
            self.connected.clear()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    # -- the network thread ------------------------------------------------------------------

    def _open(self) -> tuple[socket.socket, bytearray]:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            connect_packet(
                self.client_id,
                clean_session=self.clean_session,
                keepalive=self.keepalive,
                username=self.username,
                password=self.password,
                will=self.will,
            )
        )
        buf = bytearray()
        deadline = time.monotonic() + self.connect_timeout
        while len(buf) < 4:  # CONNACK is exactly 4 bytes: 0x20 0x02 flags code
            if time.monotonic() > deadline:
                sock.close()
                raise TimeoutError("no CONNACK from the broker")
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        if buf[0] != CONNACK << 4 or buf[1] != 2:
            sock.close()
            raise ProtocolError("expected CONNACK")
        if buf[3] != 0:
            sock.close()
            raise ConnectionRefused(buf[3])
        del buf[:4]
        # anything after the CONNACK (a persistent session's queued messages) is kept in buf
        return sock, buf

    def _run(self) -> None:
        delay = self.reconnect_delay[0]
        while not self._stop.is_set():
            try:
                sock, buf = self._open()
            except (OSError, ProtocolError, ConnectionRefused) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning(
                    "MQTT %s cannot connect to %s:%s: %s",
                    self.client_id,
                    self.host,
                    self.port,
                    self.last_error,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_delay[1])
                continue
            delay = self.reconnect_delay[0]
            sock.settimeout(30.0)
            with self._send_lock:
                self.generation += 1
                generation = self.generation
                self._sock = sock
                self.last_error = ""
                self._last_sent = time.monotonic()
                try:
                    if self.subscriptions:
                        sock.sendall(subscribe_packet(1, self.subscriptions))
                    for packet in list(self._outgoing.values()):
                        sock.sendall(packet)
                except OSError:
                    self._drop(sock)
                    continue
            if self.on_connect is not None:
                self.on_connect(generation)
            if not self.subscriptions:
                self.connected.set()
            log.info("MQTT %s connected to %s:%s", self.client_id, self.host, self.port)
            try:
                self._read_loop(sock, buf, generation)
            except (OSError, ProtocolError) as exc:
                if not self._stop.is_set():
                    log.warning("MQTT %s connection lost: %s", self.client_id, exc)
            with self._send_lock:
                self._drop(sock)

    def _read_loop(self, sock: socket.socket, buf: bytearray, generation: int) -> None:
        keepalive = float(self.keepalive)
        ping_sent = 0.0
        on_messages = self.on_messages
        paused = self.paused
        pending_data = bool(buf)
        while not self._stop.is_set():
            if self._sock is not sock:
                return  # dropped by a failed send
            now = time.monotonic()
            if keepalive and now - self._last_sent > keepalive / 2 and not ping_sent:
                if not self._send(PINGREQ_PACKET, generation):
                    return
                ping_sent = now
            if paused is not None and paused():
                # not reading: the PINGRESP waits in the socket, do not count it missing
                ping_sent = 0.0
                self._stop.wait(0.005)
                continue
            if keepalive and ping_sent and now - ping_sent > keepalive:
                raise TimeoutError("no answer to PINGREQ")
            if not pending_data:
                ready, _, _ = select.select([sock], [], [], 0.25)
                if not ready:
                    continue
                chunk = sock.recv(self.read_size)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk
            pending_data = False
            pubs: list[InMessage] = []
            others: list[tuple[int, int, bytes]] = []
            used = parse(buf, pubs, others)
            if used:
                del buf[:used]
            for kind, _flags, body in others:
                if kind == PINGRESP:
                    ping_sent = 0.0
                elif kind == PUBACK and len(body) >= 2:
                    with self._send_lock:
                        self._outgoing.pop((body[0] << 8) | body[1], None)
                elif kind == SUBACK:
                    if b"\x80" in body[2:]:
                        self.last_error = "subscription refused"
                        log.error("MQTT %s: a subscription was refused", self.client_id)
                    self.connected.set()
                elif kind == PUBREL and len(body) >= 2:  # QoS 2 from a broker that ignores us
                    self._send(bytes((PUBCOMP << 4, 2)) + body[:2], generation)
            if pubs and on_messages is not None:
                on_messages(generation, pubs)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt-{self.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self, *, disconnect: bool = True) -> None:
        """Close the connection (politely with DISCONNECT unless ``disconnect`` is false, in
        which case the broker publishes the last will) and end the thread."""
        self._stop.set()
        with self._send_lock:
            sock = self._sock
            if sock is not None:
                if disconnect:
                    with contextlib.suppress(OSError):
                        sock.sendall(DISCONNECT_PACKET)
                self._drop(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)
