from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image as PILImage


def jpeg_bytes(width: int, height: int, *, orientation: int | None = None, quality: int = 85) -> bytes:
    """A JPEG whose left half is red and right half blue, optionally with an EXIF orientation."""
    image = PILImage.new("RGB", (width, height), (20, 40, 230))
    image.paste((230, 30, 20), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    exif = PILImage.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def png_bytes(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height), (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


@pytest.fixture
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner(namespace: str) -> Any:
    address = f"{namespace}@example.com"
    return get_user_model().objects.create_user(address, address, "irrelevant password 1")


@pytest.fixture
def owner_client(owner: Any) -> Client:
    client = Client()
    client.force_login(owner)
    return client
