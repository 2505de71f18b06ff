from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.hashers import check_password

from web.accounts import throttle


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=150, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_email(self) -> str:
        # No check for an existing account here: the answer must not tell (see services.user_sign_up).
        return self.cleaned_data["email"].strip().lower()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            user = get_user_model()(username=cleaned.get("email", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as e:
                self.add_error("password", e)
        return cleaned


class ConfirmForm(forms.Form):
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class _RateLimitedLogin:
    """Log-in form behaviour: rate-limited, and telling an unconfirmed user why they cannot log in yet.

    Every path costs one password hash (Django hashes a dummy for unknown addresses; an inactive
    account is checked here instead of by the backend), so timing does not tell which path ran.
    """

    refusal: throttle.Refusal | None = None
    #: The site's log-in is by email, stored lowercased; the admin's takes usernames as they are.
    lowercase_username = True

    def clean(self) -> dict[str, Any]:
        username = (self.cleaned_data.get("username") or "").strip()
        if self.lowercase_username:
            username = username.lower()
        password = self.cleaned_data.get("password") or ""
        self.cleaned_data["username"] = username
        if not (username and password and self.request is not None):
            return super().clean()
        self.refusal = throttle.login_refusal(self.request, username)
        if self.refusal is not None:
            raise forms.ValidationError(self.refusal.message, code="rate_limited")
        user = get_user_model().objects.filter(username__iexact=username).first()
        if user is not None and not user.is_active:
            if check_password(password, user.password):
                if user.last_login is None:
                    raise forms.ValidationError(
                        "This account is not confirmed yet: open the link in the mail we sent you. "
                        "Lost it? Sign up again with this address to get a new one.",
                        code="inactive",
                    )
                raise forms.ValidationError("This account has been deactivated.", code="inactive")
            throttle.login_failed(self.request, username)
            raise self.get_invalid_login_error()
        try:
            return super().clean()
        except forms.ValidationError:
            throttle.login_failed(self.request, username)
            raise


class LoginForm(_RateLimitedLogin, AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))


class StaffLoginForm(_RateLimitedLogin, AdminAuthenticationForm):
    """The admin's log-in form under the same limits, so /admin/login/ is no way around them."""

    lowercase_username = False
