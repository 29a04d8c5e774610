"""Outgoing e-mail: an SMTP mailer configured from the settings.

Settings (``LINLI_*`` environment variables or ``linli.toml``): ``smtp_host`` (no host: no
e-mail is sent), ``smtp_port`` (25), ``smtp_user`` / ``smtp_password`` (log in when a user is
given), ``smtp_starttls`` (upgrade the connection with STARTTLS before logging in) and
``smtp_from`` (the sender address).

Domains send through :func:`get_mailer`; it returns the mailer set by :func:`configure` (the
application, a test) or else the one the settings describe, or ``None`` when e-mail is not
configured. Sending raises :class:`OSError` (``smtplib.SMTPException`` is one) when the server
cannot be reached or refuses the message: callers decide whether to retry.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from linli.core.config import Settings


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    """Plain-text e-mail through an SMTP server (smtplib)."""

    host: str
    port: int = 25
    sender: str = "linli@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_user or None,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        # header lines are single-line: a newline in a subject must not add headers
        msg["Subject"] = " ".join(subject.split())
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "localhost")
        msg.set_content(body, charset="utf-8")
        return msg

    def send(self, to: str, subject: str, body: str) -> None:
        msg = self.message(to, subject, body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)


_configured: Mailer | None = None
_explicit = False


def configure(mailer: Mailer | None) -> None:
    """Use this mailer (``None``: send no e-mail) instead of the one of the settings."""
    global _configured, _explicit
    _configured, _explicit = mailer, True


def reset() -> None:
    """Forget :func:`configure`: the settings decide again."""
    global _configured, _explicit
    _configured, _explicit = None, False
    _from_settings.cache_clear()


@lru_cache(maxsize=1)
def _from_settings() -> SmtpMailer | None:
    from linli.core.config import Settings

    return SmtpMailer.from_settings(Settings())


def get_mailer() -> Mailer | None:
    if _explicit:
        return _configured
    return _from_settings()
