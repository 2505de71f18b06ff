import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage

from tasks.make_thumbnails import make_thumbnails
from tests.web.images.conftest import jpeg_bytes, png_bytes
from web.core.enqueue import wait_for_background_sends
from web.core.models import OutboxMessage
from web.images.models import Image


def _upload(client: Client, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return client.post("/images/", {"image": SimpleUploadedFile(name, data, content_type=content_type)})


@pytest.mark.django_db(transaction=True)
def test_an_uploaded_photo_gets_upright_thumbnails_in_three_sizes(owner_client, media_root, broker, worker):
    # Orientation 6: the camera was turned; stored 1200 x 800, shown 800 x 1200.
    response = _upload(owner_client, jpeg_bytes(1200, 800, orientation=6))

    assert response.status_code == 302
    page = owner_client.get(response["Location"])
    assert "Making thumbnails" in page.content.decode()

    assert wait_for_background_sends(), "the request's message never reached SQS"
    broker.join("default", timeout=20_000)
    status = owner_client.get(response["Location"] + "status/").content.decode()
    assert "Thumbnails ready" in status
    image = Image.objects.get()
    sizes = {t.size: (t.width, t.height) for t in image.thumbnails.all()}
    assert sizes == {1024: (683, 1024), 512: (341, 512), 128: (85, 128)}
    thumbnail = owner_client.get(f"/images/{image.pk}/1024/")
    with PILImage.open(io.BytesIO(b"".join(thumbnail.streaming_content))) as made:
        assert made.size == (683, 1024)
        # Turned upright: the red left half of the stored image is now the top half.
        top, bottom = made.getpixel((340, 100)), made.getpixel((340, 900))
        assert top[0] > 200 > bottom[0]
        assert bottom[2] > 200 > top[2]


@pytest.mark.django_db(transaction=True)
def test_a_24_megapixel_upload_is_answered_before_any_thumbnail_is_made(owner_client, media_root, broker):
    photo = jpeg_bytes(6000, 4000)

    response = _upload(owner_client, photo)

    assert response.status_code == 302
    image = Image.objects.get()
    assert (image.width, image.status) == (6000, Image.Status.PENDING)
    assert not image.thumbnails.exists(), "no thumbnail is made in the request"


def _truncated() -> bytes:
    data = jpeg_bytes(800, 600, quality=95)
    return data[: len(data) // 2]


def _bomb() -> bytes:
    # A tiny file that claims 20000 x 20000 pixels: 400 megapixels to decompress.
    buffer = io.BytesIO()
    PILImage.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


def _bmp() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (50, 50)).save(buffer, "BMP")
    return buffer.getvalue()


BAD_UPLOADS = {
    "not an image": (b"%PDF-1.7 not a picture at all", "photo.jpg", "image/jpeg", "not an image"),
    "truncated": (_truncated(), "photo.jpg", "image/jpeg", "damaged or incomplete"),
    "decompression bomb": (_bomb(), "bomb.png", "image/png", "too many pixels"),
    "unsupported format": (_bmp(), "photo.bmp", "image/bmp", "BMP images are not supported"),
    "empty": (b"", "photo.jpg", "image/jpeg", "The file is empty"),
    "lying name": (png_bytes(40, 40), "photo.jpg", "image/jpeg", "it is a PNG image"),
    "lying declared type": (jpeg_bytes(40, 40), "photo.jpg", "image/png", "sent as image/png"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS.keys())
@pytest.mark.django_db
def test_a_bad_upload_gets_a_clear_error_and_nothing_is_stored_or_enqueued(owner_client, media_root, case):
    data, name, content_type, message = BAD_UPLOADS[case]

    response = _upload(owner_client, data, name, content_type)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Image.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not any(Path(media_root).rglob("*.*")) if Path(media_root).exists() else True


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_refused(owner_client, media_root, settings):
    settings.IMAGE_MAX_BYTES = 1_000

    response = _upload(owner_client, jpeg_bytes(400, 400, quality=100))

    assert response.status_code == 400
    assert "the limit is" in response.content.decode()
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_another_users_image_is_not_found(owner_client, media_root, broker):
    _upload(owner_client, jpeg_bytes(300, 200))
    image = Image.objects.get()
    stranger = get_user_model().objects.create_user("stranger@example.com", "stranger@example.com", "x")
    other = Client()
    other.force_login(stranger)

    for path in ("", "status/", "original/", "128/"):
        assert other.get(f"/images/{image.pk}/{path}").status_code == 404
    assert "No images yet" in other.get("/images/").content.decode()


@pytest.mark.django_db
def test_the_images_page_asks_visitors_to_log_in(client):
    response = client.get("/images/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_large_truncated_file_is_refused_without_decoding_it_in_the_request(
    owner_client, media_root, monkeypatch
):
    monkeypatch.setattr("web.images.validation.DECODE_MAX_BYTES", 0)  # as if every file were large

    response = _upload(owner_client, _truncated())

    assert response.status_code == 400
    assert "the file ends too early" in response.content.decode()
    assert not Image.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_image_the_worker_cannot_decode_is_shown_as_failed_with_the_reason(
    owner_client, owner, media_root, broker, worker
):
    # Only the first part of a JPEG: what a large upload cut short inside its data would leave.
    data = jpeg_bytes(900, 600, quality=95)
    image = Image(owner=owner, original_name="broken.jpg", format="JPEG", width=900, height=600, size_bytes=1)
    image.original.save("original", ContentFile(data[: len(data) // 2]))

    message = make_thumbnails.send(image_id=image.pk)
    broker.join(message.queue_name, timeout=20_000)

    status = owner_client.get(f"/images/{image.pk}/status/").content.decode()
    assert "Failed" in status
    assert "The image could not be read: the file is damaged or cut short, or it is not an image." in status
    assert "truncated" not in status  # the decoder's own words stay in the log
    assert not image.thumbnails.exists()
