"""Sending mail to the people the system routes work to, over SMTP (aiosmtplib).

The worker sends from its outbox; this module only knows how to build a message and hand it to
the city's relay. A message's Message-ID is derived from what it is about and who it is for, so a
resend after a crash carries the same id (a relay or a mailbox that deduplicates on it drops it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Literal

import aiosmtplib

TlsMode = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    tls: TlsMode = "none"  # "starttls" on 587, "tls" (implicit) on 465 in production
    username: str | None = None
    password: str | None = None
    sender: str = "CityStat <citystat@localhost>"
    timeout: float = 10.0


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None = None

    def formatted(self) -> str:
        return formataddr((self.name or "", self.email))


def message_id(key: str, recipient: str, domain: str = "citystat.local") -> str:
    digest = hashlib.sha256(f"{key}\n{recipient.lower()}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def compose(
    config: SmtpConfig, *, to: Recipient, subject: str, text: str, key: str,
    cc: list[Recipient] | None = None, now: datetime | None = None,
) -> EmailMessage:
    """One message for one recipient (copies in Cc); `key` names what it is about (event id + kind)."""
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to.formatted()
    if cc:
        msg["Cc"] = ", ".join(r.formatted() for r in cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(key, to.email)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    msg.set_content(text)
    return msg


async def send(config: SmtpConfig, msg: EmailMessage) -> None:
    """Hand one message to the relay; raises aiosmtplib.SMTPException or OSError on failure
    (the caller retries with backoff: the message stays pending until this returns)."""
    await aiosmtplib.send(
        msg,
        hostname=config.host,
        port=config.port,
        use_tls=config.tls == "tls",
        start_tls=True if config.tls == "starttls" else False,
        username=config.username,
        password=config.password,
        timeout=config.timeout,
    )
