"""Give each request an id and a client address for the audit log, echo the id back, and
record every refused (403) request that would have changed something."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from audit.context import Context, acting
from audit.refusals import SAFE_METHODS, record_forbidden

# A caller may pass its own id (a proxy's, a script's) when it is a plain token. It is kept
# under CLIENT, so that nobody can pass a request off as a system task ("task:<id>", set by
# audit/signals.py) or as another request Wavegate numbered itself.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,120}$")
CLIENT = "client:"


def request_id_for(offered: str) -> str:
    """The id the audit log records for a request whose client offered `offered`."""
    return CLIENT + offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


@lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(entry.strip(), strict=False) for entry in configured if entry.strip())


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Did this request reach us through one of WAVEGATE_TRUSTED_PROXIES?"""
    networks = _networks(tuple(settings.WAVEGATE_TRUSTED_PROXIES))
    try:
        peer = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or, for a request that came through our trusted proxies, the address the
    outermost of them saw (from X-Forwarded-For). Anyone else's X-Forwarded-For is ignored."""
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.WAVEGATE_TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops > 0 and forwarded and from_trusted_proxy(request):
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if len(addresses) >= hops:
            try:
                return str(ip_address(addresses[-hops]))
            except ValueError:
                return remote
    return remote


class TrustedProxyMiddleware:
    """Drop X-Forwarded-For and X-Forwarded-Proto unless a trusted proxy sent the request, so
    that nobody else can choose the address the audit log and the sign-in throttle see, or
    pass a plain-HTTP request off as HTTPS."""

    HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not from_trusted_proxy(request):
            for header in self.HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get("X-Request-ID", ""))
        request.request_id = request_id  # type: ignore[attr-defined]
        context = Context(
            request_id=request_id,
            ip=client_ip(request),
            get_user=lambda: getattr(request, "user", None),
        )
        with acting(context):
            response = self.get_response(request)
            if response.status_code == 403 and request.method not in SAFE_METHODS:
                record_forbidden(request, response)
        # The id as recorded, which is the one to quote to an auditor.
        response["X-Request-ID"] = request_id
        return response
