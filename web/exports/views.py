from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from web.exports import selectors, services
from web.exports.models import export_storage


@login_required
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    context = {
        "exports": selectors.export_list(owner=request.user),
        "kept": services.export_kept(owner=request.user),
        "kept_limit": settings.EXPORT_MAX_KEPT_PER_USER,
    }
    return render(request, "exports/list.html", context)


@login_required
@require_POST
def export_start(request: HttpRequest) -> HttpResponse:
    try:
        _, created = services.export_start(owner=request.user)
    except services.ExportLimitReached as e:
        messages.error(request, str(e))
        return redirect("exports:list")
    if created:
        messages.success(request, "Your export has started; its progress shows below.")
    else:
        messages.info(request, "Your previous export is still running; this page shows its progress.")
    return redirect("exports:list")


@login_required
@require_POST
def export_delete(request: HttpRequest, export_id: int) -> HttpResponse:
    if not services.export_delete(owner=request.user, export_id=export_id):
        raise Http404("No such export, or it is still being written.")
    messages.success(request, "The export and its file are deleted.")
    return redirect("exports:list")


@login_required
@require_GET
def export_row(request: HttpRequest, export_id: int) -> HttpResponse:
    """One export's row, polled by htmx while it runs."""
    export = selectors.export_get(owner=request.user, export_id=export_id)
    return render(request, "exports/_row.html", {"export": export})


@login_required
@require_GET
def export_download(request: HttpRequest, export_id: int) -> FileResponse:
    export = selectors.export_get_ready(owner=request.user, export_id=export_id)
    # Streamed through this owner-checked view rather than a storage URL, which anyone holding the
    # link could use; FileResponse reads and sends it in blocks and closes it when done.
    return FileResponse(
        export_storage().open(export.file_name, "rb"),
        as_attachment=True,
        filename=f"offload-snapshots-{export.finished_at:%Y%m%d-%H%M%S}.csv",
        content_type="text/csv; charset=utf-8",
    )
