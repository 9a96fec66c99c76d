"""/api/v1/ and the schema: every view here answers for itself (401 JSON, not the sign-in page)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api import audit, clusters, plans, preflight

app_name = "api"

# JSON unless YAML is asked for: errors (401) are JSON too.
SCHEMA_RENDERERS = [
    OpenApiJsonRenderer2,
    OpenApiJsonRenderer,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
]

# The documentation page is a page: anonymous visitors are sent to sign in (DRF's views
# otherwise answer for themselves, and LoginRequiredMiddleware lets them).
docs = SpectacularSwaggerView.as_view(url_name="api:schema")
docs.login_required = True


@login_not_required  # answered in JSON to anyone: no sign-in page under /api/
@csrf_exempt  # any method: a token client sends no CSRF token, and nothing changes here
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other address under /api/: JSON, as every API error is, not the 404 page."""
    return JsonResponse(
        {
            "code": "not_found",
            "message": f"No API endpoint at {request.path}: the schema at /api/schema/ lists them.",
            "field": None,
        },
        status=404,
    )


v1: list[URLPattern | URLResolver] = [
    *plans.urlpatterns,
    *audit.urlpatterns,
    *clusters.urlpatterns,
    *preflight.urlpatterns,
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", include(v1)),
    path(
        "schema/",
        SpectacularAPIView.as_view(renderer_classes=SCHEMA_RENDERERS),
        name="schema",
    ),
    path("docs/", docs, name="docs"),
    re_path(r"^(?P<rest>.*)$", not_found, name="not_found"),
]
