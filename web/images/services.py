"""Storing uploads and making their thumbnails."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage

from web.core.enqueue import enqueue_on_commit
from web.images.models import Image, Thumbnail
from web.images.thumbnails import render_thumbnails
from web.images.validation import CheckedImage

logger = logging.getLogger(__name__)

#: What the owner reads when the worker cannot decode an upload.
UNREADABLE = "The image could not be read: the file is damaged or cut short, or it is not an image."


def image_create(*, owner: AbstractBaseUser, upload: UploadedFile, checked: CheckedImage) -> Image:
    """Store a checked upload and have its thumbnails made once the row is committed."""
    from tasks.make_thumbnails import make_thumbnails

    image = Image(
        owner=owner,
        original_name=(upload.name or "")[:255],
        format=checked.format,
        width=checked.width,
        height=checked.height,
        size_bytes=upload.size or 0,
    )
    image.original.save("original", upload, save=False)
    try:
        with transaction.atomic():
            image.save()
            enqueue_on_commit(make_thumbnails, image_id=image.pk)
    except BaseException:
        image.original.delete(save=False)
        raise
    return image


def image_make_thumbnails(*, image_id: int) -> Image | None:
    """Write every thumbnail size of an image and mark it done, or failed with the reason.

    Safe to run again: each size overwrites its own file and row, and a done image is left alone.
    """
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        logger.info("Image %r is gone; no thumbnails made.", image_id)
        return None
    if image.status == Image.Status.DONE:
        logger.info("Image %r already has its thumbnails.", image_id)
        return image
    try:
        with image.original.open("rb") as source:
            # Checked again here: the limit may have been lowered since the upload was accepted.
            rendered = render_thumbnails(source, max_decoded_bytes=settings.IMAGE_MAX_DECODED_BYTES)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as e:
        logger.warning("Could not make thumbnails of image %r: %s", image_id, e)
        # Plain words for the owner; the decoder's own text (it can name server paths) stays in the log.
        Image.objects.filter(pk=image.pk).update(
            status=Image.Status.FAILED, error=UNREADABLE, processed_at=timezone.now()
        )
        image.refresh_from_db()
        return image
    for item in rendered:
        thumbnail = Thumbnail.objects.filter(image=image, size=item.size).first() or Thumbnail(
            image=image, size=item.size
        )
        old_name = thumbnail.file.name if thumbnail.file else None
        thumbnail.width, thumbnail.height = item.width, item.height
        thumbnail.file.save(f"{item.size}.{item.extension}", ContentFile(item.data), save=False)
        thumbnail.save()
        if old_name and old_name != thumbnail.file.name:
            thumbnail.file.storage.delete(old_name)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE, error="", processed_at=timezone.now())
    image.refresh_from_db()
    return image
