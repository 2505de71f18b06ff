from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from web.reports import selectors, services


@require_GET
def report(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/report.html", {"page": selectors.report_page()})


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    """The in-flight panel, polled by htmx; once the run is over the whole page reloads to show it."""
    in_flight = selectors.report_in_flight()
    response = render(request, "reports/_status.html", {"in_flight": in_flight})
    if in_flight is None:
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def regenerate(request: HttpRequest) -> HttpResponse:
    run, created = services.report_request(requested_by=request.user)
    if created:
        messages.success(request, "The report is being regenerated; this page updates when it is ready.")
    else:
        since = timezone.localtime(run.requested_at).strftime("%H:%M:%S")
        messages.info(
            request, f"A regeneration is already {run.status} (requested at {since}); not starting another."
        )
    return redirect("reports:report")
