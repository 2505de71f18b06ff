"""Tell the owner of an account that someone signed up again with its address.

Written with Django's task API to show it (README, "Using django.tasks"): the sign-up calls
`send_account_exists_email.enqueue(user_id=...)` inside its transaction, the message leaves after
the commit, and a worker runs it like any actor; `get_result` says whether a mail went out.
"""

from django.tasks import task

from web.accounts.services import user_send_account_exists_email


# A task whose result is SUCCESSFUL never runs again, so a redelivered message sends no second mail.
@task(max_retries=5)
def send_account_exists_email(user_id: int) -> bool:
    return user_send_account_exists_email(user_id=user_id)
