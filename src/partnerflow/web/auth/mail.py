"""Outgoing e-mail for the web (password reset links): a port and its SMTP adapter.

The web never talks SMTP directly; it hands an `EmailMessage` to an `EmailSender`. The
SMTP adapter runs the blocking smtplib call in a worker thread. Without SMTP settings the
`LogEmailSender` keeps messages in memory and logs them, which is what the demo needs.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("partnerflow.web.mail")


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    body: str


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass
class SmtpEmailSender:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    def _send_blocking(self, message: EmailMessage) -> None:
        mime = MimeMessage()
        mime["From"] = self.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime.set_content(message.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(mime)

    async def send(self, message: EmailMessage) -> None:
        await run_in_threadpool(self._send_blocking, message)


class LogEmailSender:
    """Keeps what would have been sent (demo without SMTP); logs the recipient only."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)
        log.info(
            "e-mail to %s kept in memory (no SMTP configured): %s", message.to, message.subject
        )
