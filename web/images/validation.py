"""What an upload must be before anything is stored: checked with Pillow, quickly, in the request."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from web.images.thumbnails import decoded_bytes

#: The formats the site accepts, with the file name extensions and declared types each may carry.
ACCEPTED: dict[str, tuple[set[str], str]] = {
    "JPEG": ({".jpg", ".jpeg", ".jpe"}, "image/jpeg"),
    "PNG": ({".png"}, "image/png"),
    "WEBP": ({".webp"}, "image/webp"),
    "GIF": ({".gif"}, "image/gif"),
}
#: Decoding a JPEG at 1/8 scale reads every byte of it (so truncation shows) at a fraction of the cost.
_CHECK_SCALE = 8
#: Files up to this size may be decoded in the request (at most a few tens of milliseconds)...
DECODE_MAX_BYTES = 2 * 1024 * 1024
#: ...when decoding them takes at most this much memory: a small PNG can still hold a huge image
#: (8000 x 8000 RGBA in 240 KB is 256 MB decoded), which only the worker may decode. Larger ones get
#: the structural checks (and, for PNG, every chunk's checksum) so the answer stays fast and small
#: whatever the image; the worker marks the image failed, with the reason, if its data is damaged.
DECODE_MAX_MEMORY = 16 * 1024 * 1024
#: How much of the end of a file the structural check reads.
_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int


def check_upload(upload: UploadedFile) -> CheckedImage:
    """Raise ValidationError with a message for the user unless the upload is a whole, accepted image."""
    size = upload.size or 0
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")
    if size > settings.IMAGE_MAX_BYTES:
        raise ValidationError(
            "The file is %(size)s MB; the limit is %(limit)s MB.",
            code="too_large",
            params={"size": f"{size / 2**20:.1f}", "limit": f"{settings.IMAGE_MAX_BYTES / 2**20:.0f}"},
        )
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload) as image:
                checked = CheckedImage(image.format or "", image.width, image.height)
                _check_pixels(checked)
                _check_format(checked, upload)
                _check_memory(image, checked)
                _check_complete(checked.format, upload, size)
                if size <= DECODE_MAX_BYTES and _check_decode_bytes(image) <= DECODE_MAX_MEMORY:
                    _decode(image)
                elif checked.format == "PNG":
                    image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        raise ValidationError("This file is not an image we can read.", code="not_an_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ValidationError(
            "The image is damaged or incomplete (%(reason)s).", code="truncated", params={"reason": e}
        ) from None
    finally:
        upload.seek(0)
    return checked


def _check_pixels(checked: CheckedImage) -> None:
    if checked.width * checked.height > settings.IMAGE_MAX_PIXELS:
        raise _too_many_pixels()


def _check_memory(image: Image.Image, checked: CheckedImage) -> None:
    needed = decoded_bytes(image)
    limit = settings.IMAGE_MAX_DECODED_BYTES
    if needed > limit:
        raise ValidationError(
            "The image is too large to process: %(width)s \N{MULTIPLICATION SIGN} %(height)s pixels "
            "take %(needed)s MB of memory once decoded; the limit is %(limit)s MB (about %(colour)s "
            "megapixels for a colour image, %(grey)s for a greyscale or palette one).",
            code="too_much_memory",
            params={
                "width": checked.width,
                "height": checked.height,
                "needed": round(needed / 2**20),
                "limit": round(limit / 2**20),
                "colour": limit // 4 // 1_000_000,
                "grey": limit // 1_000_000,
            },
        )


def _check_decode_bytes(image: Image.Image) -> int:
    """Memory the request's own decoding check would take (JPEGs are checked at 1/8 scale)."""
    width, height = image.size
    if image.format == "JPEG":
        width, height = -(-width // _CHECK_SCALE), -(-height // _CHECK_SCALE)
    return width * height * 4


def _too_many_pixels() -> ValidationError:
    return ValidationError(
        "The image has too many pixels; the limit is %(limit)s megapixels.",
        code="too_many_pixels",
        params={"limit": settings.IMAGE_MAX_PIXELS // 1_000_000},
    )


def _check_format(checked: CheckedImage, upload: UploadedFile) -> None:
    if checked.format not in ACCEPTED:
        raise ValidationError(
            "%(format)s images are not supported; upload a JPEG, PNG, WebP or GIF.",
            code="unsupported_format",
            params={"format": checked.format or "This kind of"},
        )
    extensions, content_type = ACCEPTED[checked.format]
    extension = PurePath(upload.name or "").suffix.lower()
    if extension not in extensions:
        raise ValidationError(
            "The file is named %(name)s, but it is a %(format)s image.",
            code="name_mismatch",
            params={"name": upload.name, "format": checked.format},
        )
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared and declared not in {content_type, "application/octet-stream"}:
        raise ValidationError(
            "The file was sent as %(declared)s, but it is a %(format)s image.",
            code="type_mismatch",
            params={"declared": declared, "format": checked.format},
        )


def _check_complete(format: str, upload: UploadedFile, size: int) -> None:
    """Raise OSError unless the file ends the way a whole file of its format ends."""
    upload.seek(max(0, size - _TAIL_BYTES))
    tail = upload.read(_TAIL_BYTES)
    if format == "JPEG":
        # End Of Image. Compressed data never holds FF D9 (a data FF is followed by 00), and
        # some cameras append data after it, so look in the tail rather than at the last bytes.
        complete = b"\xff\xd9" in tail
    elif format == "PNG":
        complete = b"IEND\xaeB`\x82" in tail[-64:]
    elif format == "GIF":
        complete = tail.rstrip(b"\x00").endswith(b";")
    else:  # WEBP: the RIFF header states the size of the rest of the file
        upload.seek(0)
        head = upload.read(8)
        complete = len(head) == 8 and int.from_bytes(head[4:8], "little") + 8 <= size
    if not complete:
        raise OSError("the file ends too early")


def _decode(image: Image.Image) -> None:
    if image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // _CHECK_SCALE), max(1, image.height // _CHECK_SCALE)))
    image.load()
