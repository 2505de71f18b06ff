from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "web.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from web.accounts.forms import StaffLoginForm

        # The admin checks passwords too: the same rate limits apply there.
        admin.site.login_form = StaffLoginForm
