"""How a message leaves the system: email over SMTP, a school's group bot by webhook.

Both carry only what `anxin.notify.message` wrote: kind, school, number, due time, link.
Errors are reported by class and code only (a server's reply may quote an address)."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlparse


class SendFailed(Exception):
    """A message not accepted: `detail` says why without its content."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class SmtpSettings:
    """`ANXIN_SMTP_URL`: smtp://[user:password@]host[:port] (plain, or `?starttls=1`),
    smtps://… (TLS from the start); `ANXIN_MAIL_FROM` the sender."""

    host: str
    port: int
    ssl: bool
    starttls: bool
    user: str | None
    password: str | None
    sender: str
    timeout: float = 20.0
    ca_file: str | None = None  # a private CA the server's certificate is signed by (ANXIN_SMTP_CA_FILE)

    @classmethod
    def from_url(cls, url: str, sender: str, ca_file: str | None = None) -> SmtpSettings:
        u = urlparse(url)
        if u.scheme not in ("smtp", "smtps") or not u.hostname:
            raise ValueError("ANXIN_SMTP_URL 应形如 smtp://主机:端口 或 smtps://用户:密码@主机:465")
        q = parse_qs(u.query)
        return cls(
            host=u.hostname,
            port=u.port or (465 if u.scheme == "smtps" else 25),
            ssl=u.scheme == "smtps",
            starttls=q.get("starttls", ["0"])[0] in ("1", "true", "yes"),
            user=unquote(u.username) if u.username else None,
            password=unquote(u.password) if u.password else None,
            sender=sender,
            ca_file=ca_file or None,
        )


def send_email(settings: SmtpSettings, to: str, subject: str, body: str, message_id: str) -> None:
    """One message to one address. The Message-ID is the delivery's idempotency key: a
    message sent again after a crash carries the same one, so a mail system can drop it."""
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{message_id}@anxin>"
    msg["X-Anxin-Delivery"] = message_id
    msg.set_content(body)
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)  # the certificate is always checked
        smtp: smtplib.SMTP
        if settings.ssl:
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with smtp:
            if settings.starttls:
                smtp.starttls(context=context)
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as e:
        raise SendFailed(f"{type(e).__name__} {e.smtp_code}") from e
    except (smtplib.SMTPException, OSError) as e:
        raise SendFailed(type(e).__name__) from e


def post_webhook(url: str, text: str, delivery_id: str, timeout: float = 10.0) -> None:
    """A text message to a group bot, in the shape 企业微信 and 钉钉 robots both take:
    {"msgtype": "text", "text": {"content": …}}."""
    body = json.dumps({"msgtype": "text", "text": {"content": text}}, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "X-Anxin-Delivery": delivery_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - the administrator's URL
            status = answer.status
            reply = answer.read(4096)
    except urllib.error.HTTPError as e:
        raise SendFailed(f"HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise SendFailed(type(e).__name__) from e
    if status >= 300:
        raise SendFailed(f"HTTP {status}")
    try:  # the robots answer 200 with {"errcode": n} when they refuse
        code = json.loads(reply or b"{}").get("errcode", 0)
    except (ValueError, AttributeError):
        code = 0
    if code:
        raise SendFailed(f"errcode {code}")
