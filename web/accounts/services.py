"""Signing up and confirming an email address.

A sign-up never tells the visitor whether the address already has an account: the answer, and the
work done before it (one password hash), are the same either way, and what differs goes by mail to
the address's owner. A new address gets an inactive account and a confirmation link; an address
still waiting for confirmation gets the new password and a new link (earlier links stop working);
an address with an active account gets a mail saying so.

A confirmation link is signed, expires, and is bound to the account's state when it was made (its
password hash, last log-in and whether it is active), so it works once, stops when a newer sign-up
replaces the password, and never reactivates an account that was confirmed and later deactivated.
Confirming takes the password too: whoever clicks must know the password the account will have, so
a stranger who signed up with someone else's address (before or after them) cannot get the owner
to activate an account whose password the stranger chose.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractUser
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from web.core.enqueue import enqueue_on_commit

logger = logging.getLogger(__name__)

#: Keeps confirmation tokens apart from every other signed value the site makes.
CONFIRMATION_SALT = "offload.accounts.confirm-email"


class ConfirmationLinkInvalid(Exception):
    """Raised when a confirmation link was altered or cut short, or names no account."""


class ConfirmationLinkExpired(Exception):
    """Raised when a confirmation link is genuine and still current but older than the time allowed."""

    def __init__(self, user: AbstractUser) -> None:
        super().__init__(f"The confirmation link for user {user.pk} has expired.")
        self.user = user


class ConfirmationLinkStale(Exception):
    """Raised when a newer sign-up replaced the link, or the account was deactivated since."""


class AccountAlreadyConfirmed(Exception):
    """Raised when the link's account is already active (the link was used, or the account confirmed)."""


class WrongPassword(Exception):
    """Raised when the password given to confirm an account is not the account's."""

    def __init__(self, user: AbstractUser) -> None:
        super().__init__(f"Wrong password to confirm user {user.pk}.")
        self.user = user


def user_sign_up(*, email: str, password: str) -> None:
    """Start a sign-up for `email`; what happens next goes by mail, whatever the address's state."""
    from tasks.send_account_exists_email import send_account_exists_email
    from tasks.send_confirmation_email import send_confirmation_email

    # Hashed whether or not it is used, so the answer takes as long for a taken address as a new one.
    password_hash = make_password(password)
    users = get_user_model().objects
    with transaction.atomic():
        user = users.select_for_update().filter(username__iexact=email).first()
        if user is None:
            try:
                with transaction.atomic():
                    user = users.create(username=email, email=email, password=password_hash, is_active=False)
            except IntegrityError:  # the same address signed up at the same moment
                user = users.select_for_update().get(username__iexact=email)
            else:
                enqueue_on_commit(send_confirmation_email, user_id=user.pk)
                return
        if user.is_active:
            send_account_exists_email.enqueue(user_id=user.pk)  # a django.tasks task: after commit too
        elif user.last_login is None:
            # Still waiting for confirmation: the newest sign-up's password wins, and its link is the
            # only one that works, since links are bound to the password hash.
            user.password = password_hash
            user.save(update_fields=["password"])
            enqueue_on_commit(send_confirmation_email, user_id=user.pk)
        else:
            logger.info("User %r is deactivated; a sign-up with its address sends nothing.", user.pk)


def user_resend_confirmation(*, user: AbstractUser) -> None:
    """Mail a fresh link to an account still waiting for confirmation."""
    from tasks.send_confirmation_email import send_confirmation_email

    with transaction.atomic():
        enqueue_on_commit(send_confirmation_email, user_id=user.pk)


def confirmation_token(*, user: AbstractUser) -> str:
    return signing.dumps({"user": user.pk, "state": _state(user)}, salt=CONFIRMATION_SALT, compress=True)


def confirmation_link(*, user: AbstractUser) -> str:
    return settings.SITE_URL + reverse("accounts:confirm", args=[confirmation_token(user=user)])


def user_send_confirmation_email(*, user_id: int) -> bool:
    """Mail the confirmation link; False (and no mail) when the account is gone or already active."""
    user = get_user_model().objects.filter(pk=user_id, is_active=False, last_login=None).first()
    if user is None:
        logger.info("User %r is active or gone; no confirmation mail sent.", user_id)
        return False
    hours = settings.ACCOUNT_CONFIRMATION_MAX_AGE_S // 3600
    send_mail(
        "Confirm your offload account",
        "Welcome to offload.\n\n"
        f"Open this link to confirm your address; you will enter the password you chose and be logged in. "
        f"It works once, for {hours} hours:\n\n{confirmation_link(user=user)}\n\n"
        "If you did not sign up, ignore this mail: no account is made without the link.\n",
        None,
        [user.email],
    )
    logger.info("Sent a confirmation mail to user %r.", user_id)
    return True


def user_send_account_exists_email(*, user_id: int) -> bool:
    """Tell the owner of an active account that someone signed up with its address."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        logger.info("User %r is inactive or gone; no account-exists mail sent.", user_id)
        return False
    send_mail(
        "You already have an offload account",
        "Someone, probably you, just tried to sign up at offload with this address, which already has "
        f"an account. Log in here:\n\n{settings.SITE_URL}{reverse('accounts:login')}\n\n"
        "If it was not you, ignore this mail: nothing about your account has changed.\n",
        None,
        [user.email],
    )
    logger.info("Sent an account-exists mail to user %r.", user_id)
    return True


def confirmation_check(*, token: str) -> AbstractUser:
    """The account a link may confirm; raises one of this module's exceptions saying why not."""
    try:
        payload = signing.loads(
            token, salt=CONFIRMATION_SALT, max_age=settings.ACCOUNT_CONFIRMATION_MAX_AGE_S
        )
        expired = False
    except signing.SignatureExpired:
        payload = signing.loads(token, salt=CONFIRMATION_SALT)  # genuine, only too old
        expired = True
    except signing.BadSignature:
        raise ConfirmationLinkInvalid("The link was altered or is incomplete.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), int):
        raise ConfirmationLinkInvalid("The link names no account.")
    user = get_user_model().objects.filter(pk=payload["user"]).first()
    if user is None:
        raise ConfirmationLinkInvalid("The link names an account that does not exist.")
    if user.is_active:
        raise AccountAlreadyConfirmed(user.email)
    if not constant_time_compare(str(payload.get("state", "")), _state(user)):
        raise ConfirmationLinkStale("A newer link replaced this one, or the account was deactivated.")
    if expired:
        raise ConfirmationLinkExpired(user)
    return user


def user_confirm_email(*, token: str, password: str) -> AbstractUser:
    """Activate the account a link names, given its password; raises as confirmation_check, or
    WrongPassword. Two confirmations at once activate it once: the second finds it active."""
    with transaction.atomic():
        user = confirmation_check(token=token)
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        confirmation_check(token=token)  # again, now that the row is locked
        # Without upgrading the hash: that would change the state the link is bound to.
        if not check_password(password, user.password):
            raise WrongPassword(user)
        user.is_active = True
        user.save(update_fields=["is_active"])
    logger.info("User %r confirmed its address.", user.pk)
    return user


def _state(user: AbstractUser) -> str:
    """A keyed digest of what confirming (or a newer sign-up, or deactivating) changes."""
    last_login = "" if user.last_login is None else user.last_login.replace(microsecond=0, tzinfo=None)
    value = f"{user.pk}|{user.email}|{user.password}|{last_login}|{user.is_active}"
    return salted_hmac(CONFIRMATION_SALT, value, algorithm="sha256").hexdigest()[::2]
