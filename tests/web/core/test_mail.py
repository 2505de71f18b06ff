import io

from django.core.mail import send_mail

LINK = "http://127.0.0.1:8000/accounts/confirm/" + "x" * 120 + "/"


def test_the_console_mail_backend_prints_a_long_link_on_one_unbroken_line(settings):
    stream = io.StringIO()
    settings.MAILERS = {
        "default": {"BACKEND": "web.core.mail.ReadableConsoleBackend", "OPTIONS": {"stream": stream}}
    }

    send_mail("Confirm your offload account", f"Follow this link:\n\n{LINK}\n", None, ["new@example.com"])

    printed = stream.getvalue()
    assert "Subject: Confirm your offload account" in printed
    assert "To: new@example.com" in printed
    assert LINK + "\n" in printed
