"""For the operator, not for users: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz``: the process answers (no database, no broker: a liveness probe must not
restart web processes because PostgreSQL is down). ``/readyz``: it can serve
(``integrations.health``). ``/metrics``: Prometheus, for a bearer token
(``METRICS_TOKEN``) or an allowed address (``METRICS_ALLOWED_IPS``); off (404) when
neither is set.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from integrations import app_settings, health, metrics


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks = health.readiness_checks()
    ready = all(c.ok for c in checks)
    return JsonResponse(
        {
            "status": "ok" if ready else "failing",
            "checks": {c.name: {"ok": c.ok, "reason": c.reason} for c in checks},
        },
        status=200 if ready else 503,
    )


def _address_allowed(address: str, allowed: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in allowed)


def _token_presented(request: HttpRequest, token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = app_settings.metrics_token()
    allowed = app_settings.metrics_allowed_ips()
    if not token and not allowed:
        raise Http404("Metrics are off.")
    if not (
        (token and _token_presented(request, token))
        or (allowed and _address_allowed(request.META.get("REMOTE_ADDR", ""), allowed))
    ):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    body, content_type = metrics.metrics_text()
    return HttpResponse(body, content_type=content_type)
