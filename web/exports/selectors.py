"""Reads for the exports pages. Every read is scoped to its owner: another user's export is not found."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from web.exports.models import Export

#: Exports listed on the page.
LIST_LIMIT = 20


def export_list(*, owner: AbstractBaseUser) -> QuerySet[Export]:
    return Export.objects.filter(owner=owner)[:LIST_LIMIT]


def export_get(*, owner: AbstractBaseUser, export_id: int) -> Export:
    """The owner's export, or Http404 (also for someone else's, so ids reveal nothing)."""
    return get_object_or_404(Export, pk=export_id, owner=owner)


def export_get_ready(*, owner: AbstractBaseUser, export_id: int) -> Export:
    return get_object_or_404(Export, pk=export_id, owner=owner, status=Export.Status.DONE)
