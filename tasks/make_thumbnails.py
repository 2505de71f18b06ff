"""Make the thumbnails of an uploaded image."""

import dramatiq

from web.images.services import image_make_thumbnails


@dramatiq.actor(max_retries=3, time_limit=5 * 60 * 1000, skip_repeats=True)
def make_thumbnails(image_id: int) -> None:
    image_make_thumbnails(image_id=image_id)
