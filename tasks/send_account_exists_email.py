"""Tell the owner of an account that someone signed up again with its address."""

import dramatiq

from web.accounts.services import user_send_account_exists_email


# skip_repeats: a mail cannot be unsent, so a redelivered message must not send a second one.
@dramatiq.actor(max_retries=5, skip_repeats=True)
def send_account_exists_email(user_id: int) -> None:
    user_send_account_exists_email(user_id=user_id)
