"""Making thumbnails in little memory: decode small when the format allows, reduce before converting.

Peak memory is the decoded image plus a reduced copy of at most a quarter of it:

- JPEG's draft mode decodes at 1/2, 1/4 or 1/8 scale, the smallest that still covers the largest
  thumbnail, so even a 64-megapixel photo is decoded at about 8 megapixels or fewer.
- Other formats decode whole. The decoded image is then reduced by an integer factor (a box filter,
  as Pillow's reducing_gap does) to within REDUCING_GAP of the largest thumbnail, a strip at a time:
  each strip is converted to the output mode and reduced on its own, so no full-size converted copy
  (RGBA premultiplied for reduce, or RGB from a palette) ever exists.
- Turning upright (EXIF orientation), converting and the final Lanczos resizes then work on the
  reduced image, and the full-size one is released before them.

decoded_bytes() tells, from the header alone, how much memory decoding an image will take; uploads
are refused above IMAGE_MAX_DECODED_BYTES (web.images.validation).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

#: The long side of each thumbnail, in pixels.
SIZES = (1024, 512, 128)
#: Reduce to within this factor of the largest thumbnail before resampling (Pillow's reducing_gap).
REDUCING_GAP = 3.0
JPEG_QUALITY = 85
#: Rows are converted and reduced in strips of about this many bytes (in the output mode).
STRIP_BYTES = 4 * 1024 * 1024
_ORIENTATION = 0x0112  # the EXIF tag
_TURNED = {5, 6, 7, 8}  # orientations that swap width and height
#: How to turn each EXIF orientation upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Bytes Pillow keeps per pixel, by mode: one for bilevel, greyscale and palette images, two for
#: 16-bit greyscale, and four for every other mode (RGB too: it is stored padded to four bytes).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: JPEG draft mode's scales, largest first.
_DRAFT_SCALES = (8, 4, 2, 1)


@dataclass(frozen=True)
class Rendered:
    size: int
    width: int
    height: int
    extension: str
    data: bytes


def decoded_bytes(image: Image.Image, sizes: tuple[int, ...] = SIZES) -> int:
    """Memory the decoded pixels of an opened (not loaded) image take when its thumbnails are made."""
    width, height = image.size
    if image.format == "JPEG":
        scale = _draft_scale(image.size, max(sizes))
        width, height = math.ceil(width / scale), math.ceil(height / scale)
    return width * height * _BYTES_PER_PIXEL.get(image.mode, 4)


def render_thumbnails(
    source: BinaryIO, sizes: tuple[int, ...] = SIZES, *, max_decoded_bytes: int | None = None
) -> list[Rendered]:
    """Thumbnails of an image file for each size (largest first), upright per its EXIF orientation.

    Raises ValueError, before decoding anything, when decoding would take more than max_decoded_bytes.
    """
    reduced = _decode_reduced(source, max(sizes), sizes, max_decoded_bytes)
    current = reduced.image
    if reduced.orientation in _UPRIGHT:
        current = current.transpose(_UPRIGHT[reduced.orientation])
    rendered = []
    for size in sorted(sizes, reverse=True):
        box = _fit(reduced.full_size, size)
        if box != current.size:
            current = current.resize(box, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        rendered.append(_encode(current, size, reduced.has_alpha))
    return rendered


@dataclass(frozen=True)
class _Reduced:
    image: Image.Image
    #: The original's upright size: every thumbnail box is computed from it, so each size rounds the
    #: same way whether or not the decoder scaled the image down first.
    full_size: tuple[int, int]
    has_alpha: bool
    #: The EXIF orientation, applied once the full-size image is released.
    orientation: int | None


def _decode_reduced(
    source: BinaryIO, largest: int, sizes: tuple[int, ...], max_decoded_bytes: int | None
) -> _Reduced:
    """The image decoded, reduced towards `largest` and converted (not yet turned upright).

    A function of its own so that the full-size image is released when it returns: Pillow's close()
    keeps the pixels for as long as the Image object lives.
    """
    with Image.open(source) as image:
        needed = decoded_bytes(image, sizes)
        if max_decoded_bytes is not None and needed > max_decoded_bytes:
            raise ValueError(
                f"it would take {needed / 2**20:.0f} MB of memory to decode; "
                f"the limit is {max_decoded_bytes / 2**20:.0f} MB"
            )
        orientation = image.getexif().get(_ORIENTATION)
        full_size = image.size[::-1] if orientation in _TURNED else image.size
        has_alpha = image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
        if image.format == "JPEG":
            # The box is in stored orientation, as the decoder sees it; draft picks _draft_scale's scale.
            image.draft("RGB", _fit(image.size, largest))
        reduced = _reduce(image, _fit(image.size, largest), "RGBA" if has_alpha else "RGB")
    return _Reduced(reduced, full_size, has_alpha, orientation)


def _draft_scale(size: tuple[int, int], long_side: int) -> int:
    """The scale JPEG draft mode decodes at for the largest thumbnail: 8, 4, 2 or 1 (whole)."""
    box = _fit(size, long_side)
    ratio = min(size[0] // box[0], size[1] // box[1])
    return next(scale for scale in _DRAFT_SCALES if ratio >= scale)


def _reduce(image: Image.Image, box: tuple[int, int], mode: str) -> Image.Image:
    """The image in `mode`, reduced by whole factors to within REDUCING_GAP of `box`, a strip at a time."""
    width, height = image.size
    factor_x = max(1, int(width / box[0] / REDUCING_GAP))
    factor_y = max(1, int(height / box[1] / REDUCING_GAP))
    image.load()
    if factor_x == factor_y == 1:
        return image.convert(mode) if image.mode != mode else image.copy()
    reduced = Image.new(mode, (math.ceil(width / factor_x), math.ceil(height / factor_y)))
    # Strips of whole factor_y rows reduce exactly as the whole image would (the blocks line up).
    rows = factor_y * max(1, STRIP_BYTES // (width * 4 * factor_y))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        if strip.mode != mode:
            strip = strip.convert(mode)
        reduced.paste(strip.reduce((factor_x, factor_y)), (0, top // factor_y))
    return reduced


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
