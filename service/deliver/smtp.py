"""Email through ``aiosmtplib``: STARTTLS, implicit TLS or a plain local relay, with auth.

Every message has a plain-text and an HTML part rendered from the templates (the digest's own
for a digest); the subject names the kind, the advertiser and the amount. The ``Message-ID``
is derived from the delivery id, so a retried message can be recognised as the same one.
SMTP 4xx answers and connection problems are retried; 5xx answers (a refused recipient,
failed auth) are final.

Usage::

    receiver = EmailReceiver(settings, Renderer(settings, promotions_url=...))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import jinja2

from config.notify import EmailReceiverSettings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.receivers import ConfiguredReceiver, Outcome
from service.deliver.templates import Renderer

__all__ = ["EmailReceiver", "build_email"]


def build_email(
    delivery: Delivery, renderer: Renderer, settings: EmailReceiverSettings, clock: Clock
) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part preferred."""
    transitions, repeat = delivery.transitions, delivery.repeat
    if delivery.digest is not None:
        subject = delivery.digest.title
        text = renderer.render_digest("text", delivery.digest)
        html = renderer.render_digest("html", delivery.digest)
    else:
        subject = renderer.render("subject", transitions, repeat=repeat)
        text = renderer.render("text", transitions, repeat=repeat)
        html = renderer.render("html", transitions, repeat=repeat)
    message = EmailMessage()
    # Header injection is impossible: the subject is one line, whatever a template produced.
    message["Subject"] = " ".join(subject.split())
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = format_datetime(clock())
    message["Message-ID"] = f"<{delivery.message_id}@creditwatch>"
    message.set_content(text + "\n")
    message.add_alternative(html + "\n", subtype="html")
    return message


@dataclass(eq=False, repr=False)
class EmailReceiver(ConfiguredReceiver[EmailReceiverSettings]):
    kind = "email"

    renderer: Renderer
    clock: Clock = utc_now

    async def attempt(self, delivery: Delivery) -> Outcome:
        settings = self.settings
        try:
            message = build_email(delivery, self.renderer, settings, self.clock)
        except jinja2.TemplateError as error:
            return Outcome.failed(f"template error: {error}")
        password = settings.password.get_secret_value() if settings.password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.host,
                port=settings.effective_port,
                username=settings.username,
                password=password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPException as error:
            return _outcome_of(error, settings.timeout_s)
        except OSError as error:
            return Outcome.retry(f"{type(error).__name__}: {str(error)[:200]}")
        return Outcome.delivered(250)


def _outcome_of(error: aiosmtplib.SMTPException, timeout_s: float) -> Outcome:
    """SMTP 4xx and connection trouble are worth retrying; 5xx and refused recipients are not."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        detail = f"SMTP {error.code}: {str(error.message)[:200]}"
        if 400 <= error.code < 500:
            return Outcome.retry(detail, error.code)
        return Outcome.failed(detail, error.code)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return Outcome.failed(f"every recipient was refused ({len(error.recipients)})")
    if isinstance(error, aiosmtplib.SMTPTimeoutError):
        return Outcome.retry(f"timeout after {timeout_s:g} s")
    return Outcome.retry(f"{type(error).__name__}: {str(error)[:200]}")
