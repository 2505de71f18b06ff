"""Thumbnails look right whatever path made them: reduced in strips, converted, turned upright."""

import io

import pytest
from PIL import Image as PILImage

from tests.web.images.conftest import jpeg_bytes
from web.images.thumbnails import decoded_bytes, render_thumbnails


def _png(image: PILImage.Image) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def _opened(rendered) -> PILImage.Image:
    return PILImage.open(io.BytesIO(rendered.data))


def _near(pixel: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Equal but for rounding (translucent pixels are premultiplied while they are reduced)."""
    return all(abs(a - b) <= 2 for a, b in zip(pixel, expected, strict=True))


def test_a_large_translucent_png_keeps_its_colours_and_transparency_when_reduced_in_strips():
    # 5000 px wide: reduced by 2 (in strips) before the final resize to 1024.
    image = PILImage.new("RGBA", (5000, 2500), (20, 40, 230, 128))
    image.paste((230, 30, 20, 255), (0, 0, 2500, 2500))

    largest = render_thumbnails(_png(image))[0]

    assert (largest.size, largest.width, largest.height, largest.extension) == (1024, 1024, 512, "png")
    made = _opened(largest)
    assert made.mode == "RGBA"
    assert _near(made.getpixel((100, 256)), (230, 30, 20, 255))
    assert _near(made.getpixel((900, 256)), (20, 40, 230, 128))


def test_a_palette_image_with_a_transparent_colour_becomes_a_transparent_thumbnail():
    image = PILImage.new("P", (4000, 4000), 1)
    image.putpalette([0, 0, 0, 250, 10, 10] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 2000, 4000))
    buffer = io.BytesIO()
    image.save(buffer, "GIF", transparency=0)
    buffer.seek(0)

    made = _opened(render_thumbnails(buffer)[0])

    assert made.size == (1024, 1024)
    assert made.convert("RGBA").getpixel((100, 500))[3] == 0
    assert _near(made.convert("RGBA").getpixel((900, 500)), (250, 10, 10, 255))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_turned_jpeg_decoded_at_reduced_scale_comes_out_upright(orientation):
    # Stored 4000 x 2000, red left half; EXIF says how the camera was held.
    data = jpeg_bytes(4000, 2000, orientation=orientation)

    made = _opened(render_thumbnails(io.BytesIO(data))[0])

    if orientation == 3:  # upside down: red ends up on the right
        assert made.size == (1024, 512)
        assert made.getpixel((900, 256))[0] > 200 > made.getpixel((100, 256))[0]
    else:  # turned a quarter: red ends up on top (6) or at the bottom (8)
        assert made.size == (512, 1024)
        top, bottom = made.getpixel((256, 100)), made.getpixel((256, 900))
        red, blue = (top, bottom) if orientation == 6 else (bottom, top)
        assert red[0] > 200 > blue[0]


def test_an_image_needing_more_memory_than_allowed_is_refused_before_decoding():
    image = PILImage.new("RGBA", (3000, 3000))

    with pytest.raises(ValueError, match=r"it would take 34 MB of memory to decode; the limit is 16 MB"):
        render_thumbnails(_png(image), max_decoded_bytes=16 * 1024 * 1024)


def test_pixels_weigh_what_their_mode_costs_and_jpegs_count_at_their_reduced_scale():
    def opened(image: PILImage.Image, fmt: str) -> PILImage.Image:
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        buffer.seek(0)
        return PILImage.open(buffer)

    assert decoded_bytes(opened(PILImage.new("RGBA", (1000, 1000)), "PNG")) == 4_000_000
    assert decoded_bytes(opened(PILImage.new("RGB", (1000, 1000)), "PNG")) == 4_000_000
    assert decoded_bytes(opened(PILImage.new("L", (1000, 1000)), "PNG")) == 1_000_000
    # 6000 x 4000 decodes at 1/4 (1500 x 1000): 1/8 would not cover a 1024 px thumbnail.
    assert decoded_bytes(opened(PILImage.new("RGB", (6000, 4000)), "JPEG")) == 1500 * 1000 * 4
