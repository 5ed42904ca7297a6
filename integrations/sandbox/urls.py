"""Mounted at /sandbox/ when SANDBOX_ENABLED (config/urls.py).

The fake Google APIs live under ``google/``. google-api-python-client built with
``client_options={"api_endpoint": SITE_URL + "/sandbox/google/"}`` (trailing slash
needed: it ``urljoin``s) requests ``<endpoint>`` + the discovery ``path``, since the
static discovery documents have an empty ``servicePath``: Sheets v4
``v4/spreadsheets/{spreadsheetId}/values/{range}``, Gmail v1
``gmail/v1/users/{userId}/profile``.
"""

from django.urls import path

from . import views

app_name = "sandbox"

urlpatterns = [
    path("o/authorize/", views.SandboxAuthorizationView.as_view(), name="authorize"),
    path("o/token/", views.SandboxTokenView.as_view(), name="token"),
    path("o/revoke_token/", views.SandboxRevokeTokenView.as_view(), name="revoke"),
    path("userinfo/", views.userinfo, name="userinfo"),
    path(
        "google/sheets/v4/spreadsheets/<str:spreadsheet_id>/values/<path:range>",
        views.sheets_values_get,
        name="sheets_values_get",
    ),
    # Where google-api-python-client sends spreadsheets.values.get.
    path(
        "google/v4/spreadsheets/<str:spreadsheet_id>/values/<path:range>",
        views.sheets_values_get,
        name="sheets_values_get_client",
    ),
    path(
        "google/gmail/v1/users/<str:user_id>/profile",
        views.gmail_get_profile,
        name="gmail_get_profile",
    ),
]
