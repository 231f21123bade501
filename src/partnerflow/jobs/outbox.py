"""The e-mail outbox job: send due e-mails over SMTP, at most once each.

Each e-mail is claimed, sent and marked sent inside one database transaction: the claim is
a conditional UPDATE only one runner can win, and the row only becomes 'sent' if that same
transaction commits. A crash after the SMTP server accepted the message but before the
commit can still repeat it once; the Message-ID is derived from the idempotency key so the
receiving side sees the same id twice and can drop it.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from partnerflow.bootstrap import Services
from partnerflow.storage import messages as msg


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "partnerflow@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: object) -> SmtpConfig:
        """Reads `smtp_*` settings when the Settings class has them (see docs)."""
        return cls(
            host=str(getattr(settings, "smtp_host", None) or cls.host),
            port=int(getattr(settings, "smtp_port", cls.port)),
            sender=str(getattr(settings, "smtp_from", cls.sender)),
            username=getattr(settings, "smtp_username", None),
            password=_secret(getattr(settings, "smtp_password", None)),
            starttls=bool(getattr(settings, "smtp_starttls", False)),
        )


def _secret(value: object) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


@dataclass(frozen=True)
class OutboxRun:
    sent: int
    failed: int


def build_message(email: msg.Email, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{domain}>"
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.body_text)
    message.add_alternative(email.body_html, subtype="html")
    return message


def send_due(services: Services, config: SmtpConfig, *, limit: int = 100) -> OutboxRun:
    clock = services.clock
    with services.engine.connect() as conn:
        ids = msg.due_email_ids(conn, clock.now(), limit)
        conn.rollback()
    sent = failed = 0
    smtp: smtplib.SMTP | None = None
    try:
        for email_id in ids:
            with services.engine.begin() as conn:
                email = msg.claim_email(conn, email_id, clock.now())
                if email is None:
                    continue
                try:
                    if smtp is None:
                        smtp = _connect(config)
                    smtp.send_message(build_message(email, config.sender))
                except (smtplib.SMTPException, OSError) as exc:
                    msg.mark_email_failed(conn, email, f"{type(exc).__name__}: {exc}", clock.now())
                    failed += 1
                    _close(smtp)
                    smtp = None
                    continue
                msg.mark_email_sent(conn, email.id, clock.now())
                sent += 1
    finally:
        _close(smtp)
    return OutboxRun(sent, failed)


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    if config.starttls:
        smtp.starttls(context=ssl.create_default_context())
    if config.username and config.password:
        smtp.login(config.username, config.password)
    return smtp


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
