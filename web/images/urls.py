from django.urls import path

from web.images import views

app_name = "images"
urlpatterns = [
    path("", views.image_list, name="list"),
    path("<int:image_id>/", views.image_detail, name="detail"),
    path("<int:image_id>/status/", views.image_status, name="status"),
    path("<int:image_id>/original/", views.original_file, name="original"),
    path("<int:image_id>/<int:size>/", views.thumbnail_file, name="thumbnail"),
]
