from django.urls import path

from web.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.export_list, name="list"),
    path("start/", views.export_start, name="start"),
    path("<int:export_id>/row/", views.export_row, name="row"),
    path("<int:export_id>/download/", views.export_download, name="download"),
    path("<int:export_id>/delete/", views.export_delete, name="delete"),
]
