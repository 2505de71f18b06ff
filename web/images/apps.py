from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "web.images"
    label = "images"
