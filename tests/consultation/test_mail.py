"""Notification e-mail over real SMTP (smtplib) to a small SMTP server run by the test.

SMTP is the edge of the system: the server below speaks just enough of RFC 5321 (EHLO, AUTH
PLAIN, MAIL, RCPT, DATA, QUIT) to receive what Linli's mailer sends, over a real socket.
"""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from linli.consultation import service
from linli.core import mail
from linli.core.config import make_settings
from linli.core.events import Dispatcher, InProcessBus
from linli.core.mail import SmtpMailer
from linli.core.models import OutboxEvent, User


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 test ESMTP")
        sender, rcpts, authed = "", [], None
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode().rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250-test")
                self._say("250-AUTH PLAIN")
                self._say("250 8BITMIME")
            elif verb == "AUTH":
                token = [*cmd.split(" "), "", ""][2]
                parts = base64.b64decode(token).split(b"\0")
                authed = (parts[1].decode(), parts[2].decode())
                if authed == self.server.credentials:
                    self._say("235 ok")
                else:
                    self._say("535 bad credentials")
            elif verb == "MAIL":
                if self.server.credentials and authed != self.server.credentials:
                    self._say("530 authentication required")
                    continue
                sender = cmd.split(":", 1)[1].strip().split(" ")[0].strip("<>")
                self._say("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 go on")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                msg = message_from_bytes(b"".join(lines), policy=policy.default)
                self.server.received.append((sender, rcpts, msg))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.credentials = credentials
        self.received: list[tuple[str, list[str], Any]] = []


@pytest.fixture
def smtp_server() -> Iterator[_SmtpServer]:
    server = _SmtpServer(("linli", "s3cret"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        mail.reset()


def _settings(port: int, **extra: Any) -> Any:
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_user="linli",
        smtp_password="s3cret",
        smtp_from="notices@linli.example",
        **extra,
    )


def test_mailer_from_settings() -> None:
    assert SmtpMailer.from_settings(make_settings(smtp_host=None)) is None
    m = SmtpMailer.from_settings(_settings(2525, smtp_starttls=True))
    assert m is not None
    assert (m.host, m.port, m.username, m.starttls) == ("127.0.0.1", 2525, "linli", True)
    assert m.sender == "notices@linli.example"
    # a newline in a subject cannot smuggle in a header
    msg = m.message("a@example.org", "Hello\nBcc: evil@example.org", "body")
    assert msg["Subject"] == "Hello Bcc: evil@example.org" and msg["Bcc"] is None


def test_notifications_are_mailed_in_each_users_language(db, world, smtp_server) -> None:  # type: ignore[no-untyped-def]
    mailer = SmtpMailer.from_settings(_settings(smtp_server.server_address[1]))
    assert mailer is not None
    service.set_mailer(mailer)
    with db.session() as s:
        en = s.get(User, world.users["resident"])
        zh = s.get(User, world.users["staff"])
        nomail = s.get(User, world.users["property"])
        assert en is not None and zh is not None and nomail is not None
        en.email, en.language = "en@example.org", "en"
        zh.email, zh.language = "zh@example.org", "zh_CN"
        nomail.email = None
        service.notify(
            s,
            world.a,
            [en.id, zh.id, nomail.id, en.id],  # the same user twice: one notification
            "An action item you follow has progressed.",
            "修复路灯: 已采购灯具",
            f"/c/{world.a}/consultation/actions",
        )
        assert smtp_server.received == []  # nothing leaves before the commit
    Dispatcher(db, InProcessBus()).drain()
    got = {rcpts[0]: msg for _, rcpts, msg in smtp_server.received}
    assert set(got) == {"en@example.org", "zh@example.org"}
    assert all(sender == "notices@linli.example" for sender, _, _ in smtp_server.received)
    en_msg: EmailMessage = got["en@example.org"]
    zh_msg: EmailMessage = got["zh@example.org"]
    assert en_msg["Subject"] == "[Linli] An action item you follow has progressed."
    assert zh_msg["Subject"] == "[邻里] 您关注的落实事项有新进展。"
    assert "修复路灯: 已采购灯具" in zh_msg.get_content()
    assert f"/c/{world.a}/consultation/actions" in en_msg.get_content()
    assert "Open in Linli" in en_msg.get_content()
    with db.session() as s:
        assert service.unread_count(s, world.users["resident"]) == 1


def test_a_failed_delivery_is_retried_and_keeps_the_notification(db, world) -> None:  # type: ignore[no-untyped-def]
    # a port nobody listens on: connection refused, an OSError
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as probe:
        port = probe.server_address[1]
    mailer = SmtpMailer.from_settings(_settings(port))
    assert mailer is not None
    mail.configure(mailer)
    try:
        with db.session() as s:
            u = s.get(User, world.users["resident"])
            assert u is not None
            u.email = "r@example.org"
            service.notify(s, world.a, [u.id], "Your demand has a reply.", "ok")
        Dispatcher(db, InProcessBus()).run_once()
        with db.session() as s:
            ev = (
                s.query(OutboxEvent)
                .filter(OutboxEvent.name == "consultation.notification.created")
                .one()
            )
            assert ev.delivered_at is None and ev.attempts == 1 and ev.last_error
            assert service.unread_count(s, world.users["resident"]) == 1
    finally:
        mail.reset()


def test_wrong_smtp_password_is_an_error(smtp_server) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(smtp_server.server_address[1])
    settings.smtp_password = "wrong"
    mailer = SmtpMailer.from_settings(settings)
    assert mailer is not None
    with pytest.raises(OSError):
        mailer.send("a@example.org", "x", "y")
    assert smtp_server.received == []
