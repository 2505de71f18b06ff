from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from web.accounts import services
from web.accounts.forms import LoginForm, SignupForm


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_sign_up(email=form.cleaned_data["email"], password=form.cleaned_data["password"])
        request.session["signed_up_email"] = user.email
        return redirect("accounts:check_email")
    return render(request, "accounts/signup.html", {"form": form})


def check_email(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_email.html", {"email": request.session.get("signed_up_email")})


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user = services.user_confirm_email(token=token)
    except services.ConfirmationLinkExpired as e:
        if request.method == "POST":
            services.user_resend_confirmation(user_id=e.user_id)
            return render(request, "accounts/check_email.html", {"resent": True})
        return render(request, "accounts/confirm_expired.html", status=410)
    except services.ConfirmationLinkInvalid:
        return render(request, "accounts/confirm_invalid.html", status=400)
    return render(request, "accounts/confirmed.html", {"confirmed_email": user.email})


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True
