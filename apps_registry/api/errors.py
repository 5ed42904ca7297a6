"""Django's error views for the whole site (``handler400``/``403``/``404``/``500`` in
``config.urls``): under ``/api/`` the answer is JSON in DRF's shape
(``{"detail": "..."}``), never an HTML page; elsewhere Django's own pages.

DRF's exception handler covers errors raised inside its views; these cover the rest: a
path no route matches, and an exception outside a view's handling.
https://docs.djangoproject.com/en/stable/topics/http/views/#customizing-error-views
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


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


def server_error(request: HttpRequest) -> HttpResponse:
    # No exception text: it could name what it should not.
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
