"""Email backends for the tests of the reconnect email, at the edge (Django's
EMAIL_BACKEND): they fail as an SMTP server does, or hold a send up."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.locmem import EmailBackend as LocmemBackend


class FlakyBackend(LocmemBackend):
    """Refuses the first ``failures`` sends (the server hangs up), then delivers to
    ``django.core.mail.outbox``. ``attempts`` counts every send asked for."""

    failures = 0
    attempts = 0

    @classmethod
    def reset(cls, *, failures: int) -> None:
        cls.failures = failures
        cls.attempts = 0

    def send_messages(self, messages: Sequence[Any]) -> int:
        cls = type(self)
        cls.attempts += 1
        if cls.failures > 0:
            cls.failures -= 1
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


class SlowBackend(LocmemBackend):
    """Delivers to the outbox, each send held until ``release`` is set; ``sending`` is
    set when one starts."""

    sending = threading.Event()
    release = threading.Event()
    lock = threading.Lock()
    attempts = 0

    @classmethod
    def reset(cls) -> None:
        cls.sending = threading.Event()
        cls.release = threading.Event()
        cls.attempts = 0

    def send_messages(self, messages: Sequence[Any]) -> int:
        cls = type(self)
        with cls.lock:
            cls.attempts += 1
        cls.sending.set()
        assert cls.release.wait(30), "never released"
        return super().send_messages(messages)
