"""Mail a new account its signed, expiring confirmation link."""

import dramatiq

from web.accounts.services import user_send_confirmation_email


# skip_repeats: a mail cannot be unsent, so a redelivered message must not send a second one.
@dramatiq.actor(max_retries=5, skip_repeats=True)
def send_confirmation_email(user_id: int) -> None:
    user_send_confirmation_email(user_id=user_id)
