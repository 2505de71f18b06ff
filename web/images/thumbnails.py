"""Making thumbnails fast: JPEG draft mode decodes at a reduced scale, reducing_gap shrinks in two steps."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps

#: The long side of each thumbnail, in pixels.
SIZES = (1024, 512, 128)
#: Resize with reduce() to within this factor of the target first, then resample (Pillow's reducing_gap).
REDUCING_GAP = 3.0
JPEG_QUALITY = 85
_ORIENTATION = 0x0112  # the EXIF tag
_TURNED = {5, 6, 7, 8}  # orientations that swap width and height


@dataclass(frozen=True)
class Rendered:
    size: int
    width: int
    height: int
    extension: str
    data: bytes


def render_thumbnails(source: BinaryIO, sizes: tuple[int, ...] = SIZES) -> list[Rendered]:
    """Thumbnails of an image file for each size (largest first), upright per its EXIF orientation."""
    with Image.open(source) as image:
        largest = max(sizes)
        # Boxes come from the full-size upright dimensions, so every size rounds the same way
        # whether or not the decoder scaled the image down first.
        full = image.size[::-1] if image.getexif().get(_ORIENTATION) in _TURNED else image.size
        if image.format == "JPEG":
            # Decode at the smallest scale that still covers the largest thumbnail (1/2, 1/4 or 1/8).
            # The box is in stored orientation, as the decoder sees it.
            scale = largest / max(image.size)
            image.draft("RGB", (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        upright = ImageOps.exif_transpose(image)
        has_alpha = upright.mode in {"RGBA", "LA", "PA"} or "transparency" in upright.info
        current = upright.convert("RGBA" if has_alpha else "RGB")
    rendered = []
    for size in sorted(sizes, reverse=True):
        box = _fit(full, size)
        if box != current.size:
            current = current.resize(box, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        rendered.append(_encode(current, size, has_alpha))
    return rendered


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    width, height = size
    if max(width, height) <= long_side:
        return size
    if width >= height:
        return long_side, max(1, round(height * long_side / width))
    return max(1, round(width * long_side / height)), long_side


def _encode(image: Image.Image, size: int, has_alpha: bool) -> Rendered:
    buffer = io.BytesIO()
    if has_alpha:
        image.save(buffer, "PNG", optimize=False)
        extension = "png"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
        extension = "jpg"
    return Rendered(size, image.width, image.height, extension, buffer.getvalue())
