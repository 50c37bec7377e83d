"""A real SMTP server for the tests (``aiosmtpd``), recording every message it accepts.

``with SmtpSink() as smtp: smtp.port; smtp.messages[0]["Subject"]``
"""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.reply: str | None = None  # e.g. "451 try later" to refuse the next message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply:
            reply, self.reply = self.reply, None
            return reply
        raw = envelope.original_content or envelope.content
        self.messages.append(message_from_bytes(raw, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self) -> None:
        self.port = _free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self._recorder.messages

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        return self._recorder.envelopes

    def refuse_next(self, reply: str) -> None:
        self._recorder.reply = reply

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
