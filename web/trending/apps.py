from django.apps import AppConfig


class TrendingConfig(AppConfig):
    name = "web.trending"
    label = "trending"
