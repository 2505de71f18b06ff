from django.contrib import admin
from django.urls import include, path

from web.core import views as core_views
from web.metrics import views as metrics_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("accounts/", include("web.accounts.urls")),
    path("images/", include("web.images.urls")),
    path("trending/", include("web.trending.urls")),
    path("reports/", include("web.reports.urls")),
    path("exports/", include("web.exports.urls")),
    path("ops/", include("web.ops.urls")),
    path("admin/", admin.site.urls),
    # No trailing slash: Prometheus asks for /metrics.
    path("metrics", metrics_views.metrics, name="metrics"),
]
