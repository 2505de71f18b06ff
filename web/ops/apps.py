from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "web.ops"
    label = "ops"

    def ready(self) -> None:
        from web.ops import aggregates

        aggregates.register()
