"""Signing up and confirming an email address."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from web.core.enqueue import enqueue_on_commit

logger = logging.getLogger(__name__)

#: Keeps confirmation tokens apart from every other signed value the site makes.
CONFIRMATION_SALT = "offload.accounts.confirm-email"


class ConfirmationLinkInvalid(Exception):
    """Raised when a confirmation link was altered, or names an account that no longer matches."""


class ConfirmationLinkExpired(Exception):
    """Raised when a confirmation link is genuine but older than ACCOUNT_CONFIRMATION_MAX_AGE_S."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"The confirmation link for user {user_id} has expired.")
        self.user_id = user_id


@transaction.atomic
def user_sign_up(*, email: str, password: str) -> AbstractUser:
    """Create an inactive account and mail it a confirmation link once the account is committed."""
    from tasks.send_confirmation_email import send_confirmation_email

    user = get_user_model().objects.create_user(
        username=email, email=email, password=password, is_active=False
    )
    enqueue_on_commit(send_confirmation_email, user_id=user.pk)
    return user


def user_resend_confirmation(*, user_id: int) -> None:
    """Mail a fresh link to an account that is still waiting for confirmation."""
    from tasks.send_confirmation_email import send_confirmation_email

    with transaction.atomic():
        enqueue_on_commit(send_confirmation_email, user_id=user_id)


def confirmation_token(*, user: AbstractUser) -> str:
    return signing.dumps({"user": user.pk, "email": user.email}, salt=CONFIRMATION_SALT, compress=True)


def user_send_confirmation_email(*, user_id: int) -> bool:
    """Mail the confirmation link; False (and no mail) when the account is gone or already active."""
    user = get_user_model().objects.filter(pk=user_id, is_active=False).first()
    if user is None:
        logger.info("User %r is active or gone; no confirmation mail sent.", user_id)
        return False
    link = settings.SITE_URL + reverse("accounts:confirm", args=[confirmation_token(user=user)])
    hours = settings.ACCOUNT_CONFIRMATION_MAX_AGE_S // 3600
    send_mail(
        "Confirm your offload account",
        f"Welcome to offload.\n\nFollow this link to activate your account (it works for {hours} hours):\n\n"
        f"{link}\n\nIf you did not sign up, ignore this mail.\n",
        None,
        [user.email],
    )
    logger.info("Sent a confirmation mail to user %r.", user_id)
    return True


def user_confirm_email(*, token: str) -> AbstractUser:
    """Activate the account a confirmation token names; raises ConfirmationLinkExpired/Invalid."""
    try:
        payload = signing.loads(
            token, salt=CONFIRMATION_SALT, max_age=settings.ACCOUNT_CONFIRMATION_MAX_AGE_S
        )
    except signing.SignatureExpired:
        payload = signing.loads(token, salt=CONFIRMATION_SALT)  # genuine, only too old
        raise ConfirmationLinkExpired(payload["user"]) from None
    except signing.BadSignature:
        raise ConfirmationLinkInvalid("The link was altered or is incomplete.") from None
    user = get_user_model().objects.filter(pk=payload.get("user"), email=payload.get("email")).first()
    if user is None:
        raise ConfirmationLinkInvalid("The link names an account that does not exist.")
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    return user
