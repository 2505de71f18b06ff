from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "web.exports"
    label = "exports"
