"""The apps pages, the JSON API (``/api/v1/``) and its OpenAPI schema (``/api/schema/``)."""

from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView

from apps_registry import views
from apps_registry.api import connections as connections_api
from apps_registry.api import errors as api_errors
from apps_registry.api import runner as runner_api
from apps_registry.api import views as api_views
from apps_registry.api import webhooks as webhooks_api

app_name = "apps_registry"


class AppSlugConverter:
    """An app's ``namespace`` or ``name`` as ``manifest.SLUG_RE`` allows it: with dots
    (``model-2.5-flash``), which Django's ``slug`` converter refuses, but never ``..``
    or a leading or trailing dot."""

    regex = r"[a-z0-9](?:[a-z0-9_-]|\.(?!\.))*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AppSlugConverter, "appslug")

urlpatterns = [
    path("apps/", views.app_list, name="list"),
    path("apps/upload/", views.upload, name="upload"),
    path("apps/manifest-format/", views.manifest_format, name="manifest_format"),
    path("apps/<appslug:namespace>/<appslug:name>/", views.app_detail, name="app"),
    path("namespaces/<appslug:name>/", views.namespace_detail, name="namespace"),
    path("apps/<appslug:namespace>/<appslug:name>/allow/", views.app_allow, name="app_allow"),
    path(
        "apps/<appslug:namespace>/<appslug:name>/secrets/",
        views.app_secret_add,
        name="app_secret_add",
    ),
    path(
        "apps/<appslug:namespace>/<appslug:name>/retry/<int:connection_id>/",
        views.retry_now,
        name="retry_now",
    ),
    path(
        "api/v1/manifests/",
        api_views.ManifestUploadView.as_view(),
        name="api_manifest_upload",
    ),
    path(
        "api/v1/apps/<appslug:namespace>/<appslug:name>/",
        api_views.AppDetailView.as_view(),
        name="api_app",
    ),
    path(
        "api/v1/run-environments/",
        runner_api.RunEnvironmentView.as_view(),
        name="api_run_environment",
    ),
    path(
        "api/v1/connections/",
        connections_api.ConnectionListView.as_view(),
        name="api_connections",
    ),
    path(
        "api/v1/connections/<int:id>/",
        connections_api.ConnectionDetailView.as_view(),
        name="api_connection",
    ),
    path(
        "api/v1/connections/<int:id>/refresh/",
        connections_api.ConnectionRefreshView.as_view(),
        name="api_connection_refresh",
    ),
    path(
        "api/v1/webhook-endpoints/",
        webhooks_api.EndpointListView.as_view(),
        name="api_webhook_endpoints",
    ),
    path(
        "api/v1/webhook-endpoints/<int:id>/",
        webhooks_api.EndpointDetailView.as_view(),
        name="api_webhook_endpoint",
    ),
    path(
        "api/v1/webhook-endpoints/<int:id>/rotate-secret/",
        webhooks_api.EndpointRotateSecretView.as_view(),
        name="api_webhook_endpoint_rotate_secret",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # Last: any other path under /api/ is a JSON 404, with DEBUG on too (handler404
    # is not used then, and Django's debug page is HTML).
    path("api/<path:rest>", api_errors.unknown_api_path),
]
