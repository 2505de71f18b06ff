from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from web.images.models import Image, Thumbnail


def image_list(*, owner: AbstractBaseUser) -> QuerySet[Image]:
    return Image.objects.filter(owner=owner).prefetch_related("thumbnails")


def image_get(*, owner: AbstractBaseUser, image_id: int) -> Image:
    """The owner's image; another user's image is a 404, as if it did not exist."""
    return get_object_or_404(Image.objects.prefetch_related("thumbnails"), pk=image_id, owner=owner)


def thumbnail_get(*, owner: AbstractBaseUser, image_id: int, size: int) -> Thumbnail:
    return get_object_or_404(Thumbnail, image_id=image_id, image__owner=owner, size=size)
