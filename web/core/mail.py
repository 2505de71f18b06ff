"""A console mail backend for `make run` that prints mails as a person reads them.

Django's console backend prints the raw MIME message, in which any line longer than 78 characters
(a confirmation link, say) is quoted-printable encoded and broken with "=" soft line breaks.
"""

from __future__ import annotations

from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend


class ReadableConsoleBackend(EmailBackend):
    """Writes each mail's main headers and its decoded plain-text body, links unbroken."""

    def write_message(self, message: EmailMessage) -> None:
        mime = message.message()
        for header in ("From", "To", "Subject", "Date"):
            if mime[header]:
                self.stream.write(f"{header}: {mime[header]}\n")
        body = mime.get_body(preferencelist=("plain",))
        self.stream.write("\n" + (body.get_content() if body is not None else "(no plain-text body)\n"))
        self.stream.write("-" * 79 + "\n")
