from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "web.ops"
    label = "ops"
