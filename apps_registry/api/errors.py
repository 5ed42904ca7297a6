"""How the API answers errors.

``exception_handler`` (DRF's ``EXCEPTION_HANDLER``) answers, inside DRF's views, every
error of the product's family, ``IntegrationError`` and ``ManifestError``, with the
error's own status, body and headers; anything else as DRF does.
https://www.django-rest-framework.org/api-guide/exceptions/#custom-exception-handling

Django's error views for the whole site (``handler400``/``403``/``404``/``500`` in
``config.urls``) cover the rest: under ``/api/`` the answer is JSON in DRF's shape
(``{"detail": "..."}``), never an HTML page; elsewhere Django's own pages. They answer
a path no route matches, and an exception outside a view's handling.
https://docs.djangoproject.com/en/stable/topics/http/views/#customizing-error-views
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps_registry.manifest import ManifestError
from integrations.errors import IntegrationError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The one place the API turns an error into its answer. A view's decorators still
    apply (the run API's ``Cache-Control: no-store`` included): DRF's ``dispatch``
    returns this response as any other."""
    if isinstance(exc, IntegrationError | ManifestError):
        if isinstance(exc, IntegrationError) and exc.log_level is not None:
            request = context.get("request")
            logger.log(
                exc.log_level,
                "%s answered %s %s (%s)",
                getattr(request, "path", "?"),
                exc.status,
                exc.code,
                type(exc).__name__,
            )
        return Response(exc.payload(), status=exc.status, headers=exc.headers())
    return drf_exception_handler(exc, context)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Forbidden."}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


@csrf_exempt
def unknown_api_path(request: HttpRequest, rest: str) -> HttpResponse:
    """Any other path under ``/api/``, whatever the method: a JSON 404; but a GET of a
    path that exists with a trailing slash is sent there, as ``APPEND_SLASH`` does (this
    route catches the path before ``CommonMiddleware`` could)."""
    if request.method in ("GET", "HEAD") and not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not unknown_api_path:
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(
                request.path + "/" + (f"?{query}" if query else "")
            )
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No exception text: it could name what it should not.
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
