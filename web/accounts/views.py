from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from web.accounts import services, throttle
from web.accounts.forms import ConfirmForm, LoginForm, SignupForm

#: The backend that checks passwords by username; confirming logs the user in without a second check.
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        refusal = throttle.mail_refusal(request, email)
        if refusal is not None:
            form.add_error(None, refusal.message)
            return _refused(render(request, "accounts/signup.html", {"form": form}), refusal)
        services.user_sign_up(email=email, password=form.cleaned_data["password"])
        request.session["signed_up_email"] = email
        return redirect("accounts:check_email")
    status = 400 if form.errors else 200
    return render(request, "accounts/signup.html", {"form": form}, status=status)


def check_email(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_email.html", {"email": request.session.get("signed_up_email")})


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the form (mail scanners that follow links change nothing); POST confirms."""
    try:
        user = services.confirmation_check(token=token)
    except services.ConfirmationLinkExpired as e:
        return _expired(request, e.user)
    except services.AccountAlreadyConfirmed:
        return render(request, "accounts/confirm_used.html")
    except services.ConfirmationLinkStale:
        return render(request, "accounts/confirm_stale.html", status=410)
    except services.ConfirmationLinkInvalid:
        return render(request, "accounts/confirm_invalid.html", status=400)

    form = ConfirmForm(request.POST or None)
    context = {"form": form, "email": user.email}
    if request.method != "POST" or not form.is_valid():
        return render(request, "accounts/confirm.html", context, status=400 if form.errors else 200)
    refusal = throttle.login_refusal(request, user.email)
    if refusal is not None:
        form.add_error(None, refusal.message)
        return _refused(render(request, "accounts/confirm.html", context), refusal)
    try:
        user = services.user_confirm_email(token=token, password=form.cleaned_data["password"])
    except services.WrongPassword:
        throttle.login_failed(request, user.email)
        form.add_error("password", "That is not the password this account was signed up with.")
        return render(request, "accounts/confirm.html", context, status=400)
    except services.AccountAlreadyConfirmed:  # confirmed by another request a moment ago
        return render(request, "accounts/confirm_used.html")
    login(request, user, backend=_MODEL_BACKEND)
    messages.success(request, "Your account is confirmed, and you are logged in.")
    return redirect("images:list")


def _expired(request: HttpRequest, user: AbstractUser) -> HttpResponse:
    """The expired-link page; its button (a POST) mails a new link."""
    if request.method != "POST":
        return render(request, "accounts/confirm_expired.html", status=410)
    refusal = throttle.mail_refusal(request, user.email)
    if refusal is not None:
        page = render(request, "accounts/confirm_expired.html", {"refusal": refusal})
        return _refused(page, refusal)
    services.user_resend_confirmation(user=user)
    return render(request, "accounts/check_email.html", {"resent": True})


def _refused(response: HttpResponse, refusal: throttle.Refusal) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.refusal is not None:
            return _refused(response, form.refusal)
        response.status_code = 400
        return response
