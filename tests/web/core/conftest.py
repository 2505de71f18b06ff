# The outbox test uploads an image as a logged-in user, like the image tests do.
from tests.web.images.conftest import media_root, owner, owner_client

__all__ = ["media_root", "owner", "owner_client"]
