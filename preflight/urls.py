from django.urls import path

from preflight import views

app_name = "preflight"
urlpatterns = [
    path("clusters/<int:pk>/scan/", views.cluster_scan, name="cluster_scan"),
    path("clusters/<int:pk>/preflight/", views.cluster_preflight, name="cluster_preflight"),
    path(
        "clusters/<int:pk>/preflight/<int:scan_id>.txt",
        views.scan_findings,
        name="scan_findings",
    ),
    path("blockers/", views.blocker_list, name="blockers"),
    path("blockers/scan-all/", views.scan_all, name="scan_all"),
    path("blockers/progress/", views.scan_progress, name="scan_progress"),
    path("blockers/owners/", views.owners, name="owners"),
    path("blockers/owners/add/", views.owner_add, name="owner_add"),
    path("blockers/owners/<int:pk>/retire/", views.owner_retire, name="owner_retire"),
    path("blockers/owners/<int:pk>/confirm/", views.owner_confirm, name="owner_confirm"),
    path(
        "blockers/owners/<int:pk>/confirm-retirement/",
        views.owner_confirm_retirement,
        name="owner_confirm_retirement",
    ),
]
