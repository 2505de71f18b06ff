from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=150, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if get_user_model().objects.filter(username__iexact=email).exists():
            raise forms.ValidationError("An account with this email address already exists. Log in instead.")
        return email

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


class LoginForm(AuthenticationForm):
    """Django's login form, which also tells an unconfirmed user why they cannot log in yet."""

    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean(self) -> dict[str, Any]:
        username = (self.cleaned_data.get("username") or "").strip().lower()
        self.cleaned_data["username"] = username
        try:
            return super().clean()
        except forms.ValidationError:
            user = get_user_model().objects.filter(username__iexact=username, is_active=False).first()
            if user is not None and user.check_password(self.cleaned_data.get("password") or ""):
                raise forms.ValidationError(
                    "This account is not confirmed yet: follow the link in the mail we sent you.",
                    code="inactive",
                ) from None
            raise
