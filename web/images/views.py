from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from web.images import selectors, services
from web.images.forms import UploadForm


@login_required
@require_http_methods(["GET", "POST"])
def image_list(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        image = services.image_create(
            owner=request.user, upload=form.cleaned_data["image"], checked=form.checked
        )
        return redirect("images:detail", image_id=image.pk)
    images = selectors.image_list(owner=request.user)
    status = 400 if form.errors else 200
    return render(request, "images/list.html", {"form": form, "images": images}, status=status)


@login_required
@require_GET
def image_detail(request: HttpRequest, image_id: int) -> HttpResponse:
    image = selectors.image_get(owner=request.user, image_id=image_id)
    return render(request, "images/detail.html", {"image": image})


@login_required
@require_GET
def image_status(request: HttpRequest, image_id: int) -> HttpResponse:
    """The status fragment the detail page polls (htmx) until the thumbnails are there."""
    image = selectors.image_get(owner=request.user, image_id=image_id)
    return render(request, "images/_status.html", {"image": image})


@login_required
@require_GET
def thumbnail_file(request: HttpRequest, image_id: int, size: int) -> FileResponse:
    thumbnail = selectors.thumbnail_get(owner=request.user, image_id=image_id, size=size)
    response = FileResponse(thumbnail.file.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def original_file(request: HttpRequest, image_id: int) -> FileResponse:
    image = selectors.image_get(owner=request.user, image_id=image_id)
    return FileResponse(image.original.open("rb"), filename=image.original_name)
