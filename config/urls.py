"""Wavegate's URLs. Every URL here has an entry in tests/test_url_access.py's table."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from health.metrics import metrics
from health.views import healthz

FAVICON = (settings.BASE_DIR / "static" / "favicon.svg").read_bytes()


# Pages name the icon (base.html); browsers and tools still ask /favicon.ico, before signing in.
@login_not_required
@cache_control(public=True, max_age=86400)
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON, content_type="image/svg+xml")


urlpatterns = [
    path("", include("fleet.urls")),
    path("", include("preflight.urls")),
    path("plans/", include("rollout.urls")),
    path("audit/", include("audit.urls")),
    path("accounts/tokens/", include("api.urls")),
    path("accounts/", include("accounts.urls")),
    path("api/", include("api.routes")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
]

handler403 = "accounts.views.permission_denied"
