"""Uploaded images and the thumbnails the worker makes of them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


def _original_path(image: Image, filename: str) -> str:
    return f"images/{image.key}/original.{image.format.lower()}"


def _thumbnail_path(thumbnail: Thumbnail, filename: str) -> str:
    return f"images/{thumbnail.image.key}/{filename}"


class Image(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Making thumbnails"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    #: Names the files, so a file's path says nothing about whose it is or how many there are.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images")
    original = models.FileField(upload_to=_original_path, max_length=300)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"


class Thumbnail(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="thumbnails")
    #: The box the thumbnail fits in: its long side, in pixels, unless the original is smaller.
    size = models.PositiveSmallIntegerField()
    file = models.FileField(upload_to=_thumbnail_path, max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()

    class Meta:
        ordering = ["size"]
        constraints = [models.UniqueConstraint(fields=["image", "size"], name="one_thumbnail_per_size")]

    def __str__(self) -> str:
        return f"{self.size} px of image {self.image_id}"
