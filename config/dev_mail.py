"""The development email backend: each message printed as a person reads it.

Django's console backend prints the raw MIME message, whose quoted-printable body splits
long lines with ``=`` and escapes ``=`` as ``=3D``: a verification link copied from it
404s. This one prints the headers a person needs and the decoded text body, so links
are whole. Development only (config/settings/local.py); nothing here is sent.
"""

from __future__ import annotations

from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend

RULE = "-" * 79


class ReadableConsoleEmailBackend(ConsoleEmailBackend):
    def write_message(self, message: EmailMessage) -> None:
        lines = [
            f"Subject: {message.subject}",
            f"From: {message.from_email}",
            f"To: {', '.join(message.to)}",
        ]
        if message.cc:
            lines.append(f"Cc: {', '.join(message.cc)}")
        self.stream.write("\n".join(lines) + "\n\n" + str(message.body).rstrip() + "\n")
        alternatives = getattr(message, "alternatives", [])
        if alternatives:
            kinds = ", ".join(str(alt[1]) for alt in alternatives)
            self.stream.write(f"\n(also sent as {kinds}; not shown)\n")
        self.stream.write(RULE + "\n")
