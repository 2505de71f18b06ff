"""Mail a new account its signed, expiring confirmation link."""

import dramatiq

from web.accounts.services import user_send_confirmation_email


@dramatiq.actor(max_retries=5)
def send_confirmation_email(user_id: int) -> None:
    user_send_confirmation_email(user_id=user_id)
