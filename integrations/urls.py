from django.urls import path

from integrations.views import app_access
from integrations.views import connections as views
from integrations.views import preferences as preference_views
from integrations.views import secrets as secret_views

app_name = "integrations"

urlpatterns = [
    # Settings → Secrets: the Secrets and Service accounts tabs (secret_views).
    path("settings/secrets/", secret_views.secrets_page, name="secrets"),
    path("settings/secrets/<int:id>/delete/", secret_views.secret_delete, name="secret_delete"),
    path(
        "settings/secrets/service-accounts/",
        secret_views.service_accounts_page,
        name="service_accounts",
    ),
    path(
        "settings/secrets/service-accounts/<slug:purpose>/",
        secret_views.service_account_upload,
        name="service_account_upload",
    ),
    path(
        "settings/secrets/service-accounts/keys/<int:id>/delete/",
        secret_views.service_account_delete,
        name="service_account_delete",
    ),
    path("settings/secrets/integrations/", views.integrations_page, name="page"),
    path("settings/preferences/", preference_views.preferences_page, name="preferences"),
    path(
        "settings/preferences/time-zone/detect/",
        preference_views.time_zone_detect,
        name="time_zone_detect",
    ),
    path(
        "settings/secrets/integrations/<slug:provider_id>/connect/",
        views.connect,
        name="connect",
    ),
    path(
        "settings/secrets/integrations/<slug:provider_id>/client/",
        views.own_client_set,
        name="own_client_set",
    ),
    path(
        "settings/secrets/integrations/<slug:provider_id>/client/delete/",
        views.own_client_delete,
        name="own_client_delete",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/add-permissions/",
        views.add_permissions,
        name="add_permissions",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/reconnect/",
        views.reconnect,
        name="reconnect",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/retry/",
        views.retry_refresh,
        name="retry_refresh",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/default/",
        views.make_default,
        name="make_default",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/disconnect/",
        views.disconnect,
        name="disconnect",
    ),
    path(
        "settings/secrets/integrations/connections/<int:id>/remove-access/",
        app_access.app_access_remove,
        name="app_access_remove",
    ),
    path(
        "settings/secrets/<int:id>/remove-access/",
        app_access.secret_access_remove,
        name="secret_access_remove",
    ),
    path(
        "settings/secrets/service-accounts/keys/<int:id>/remove-access/",
        app_access.service_account_access_remove,
        name="service_account_access_remove",
    ),
    path(
        "integrations/oauth/<slug:provider_id>/callback/",
        views.oauth_callback,
        name="oauth_callback",
    ),
]
