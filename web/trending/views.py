"""/trending/: the stored top 100. It reads the database only; GitHub is the poll actor's business."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from web.trending.selectors import trending_get


def trending(request: HttpRequest) -> HttpResponse:
    return render(request, "trending/trending.html", {"trending": trending_get()})
