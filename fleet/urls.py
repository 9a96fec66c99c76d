from django.urls import path

from fleet import views

app_name = "fleet"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("sync/", views.sync, name="sync"),
    path("sync/status/", views.sync_status, name="sync_status"),
    path("clusters/", views.cluster_list, name="clusters"),
    path("clusters/<int:pk>/", views.cluster_detail, name="cluster"),
    path("clusters/<int:pk>/timeline/", views.cluster_timeline, name="cluster_timeline"),
]
