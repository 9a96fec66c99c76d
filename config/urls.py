"""Wavegate's URLs. Every URL here has an entry in tests/test_url_access.py's table."""

from django.urls import include, path

from health.views import healthz

urlpatterns = [
    path("", include("fleet.urls")),
    path("", include("preflight.urls")),
    path("plans/", include("rollout.urls")),
    path("audit/", include("audit.urls")),
    path("accounts/", include("accounts.urls")),
    path("healthz", healthz, name="healthz"),
]

handler403 = "accounts.views.permission_denied"
