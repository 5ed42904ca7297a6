"""No 500 for any input: ids beyond 64 bits, malformed encryption keys (refused at
start), and JSON error answers under /api/ (404 and 500), HTML pages elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings
from django.urls import path, reverse

from apps_registry import services
from config import urls as site_urls

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
HUGE = "99999999999999999999"  # > 2**64
GOOD_KEY = "aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="


# --- ids beyond 64 bits -----------------------------------------------------------------


@pytest.mark.parametrize("user", [HUGE, str(2**63), "9" * 254])
def test_run_env_with_a_user_id_beyond_64_bits_is_404(alice, user):
    services.manifest_upload(user=alice, text="namespace: acme\nname: a\n")
    token = services.runner_token_create(name="r", all_namespaces=True)[1]
    resp = Client().post(
        "/api/v1/run-environments/",
        json.dumps({"user": user, "app": "acme/a"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert resp.status_code == 404, resp.content
    assert resp.json()["error"] == "not_found"


ID_URLS = [
    "/settings/secrets/{id}/delete/",
    "/settings/secrets/service-accounts/keys/{id}/delete/",
    "/settings/secrets/integrations/connections/{id}/add-permissions/",
    "/settings/secrets/integrations/connections/{id}/reconnect/",
    "/settings/secrets/integrations/connections/{id}/default/",
    "/settings/secrets/integrations/connections/{id}/disconnect/",
    "/apps/acme/a/retry/{id}/",
    "/settings/secrets/integrations/connections/{id}/remove-access/",
    "/settings/secrets/{id}/remove-access/",
]


# Django answers no rows for an out-of-range integer lookup on the row's own id (Django
# 5.0+); these pin that the pages taking ids keep answering 404.
@pytest.mark.parametrize("url", ID_URLS)
@pytest.mark.parametrize("id", [HUGE, str(2**63), "0"])
def test_ids_a_row_cannot_have_are_404(alice_client, url, id):
    assert alice_client.post(url.format(id=id)).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/admin/integrations/connection/{id}/change/",
        "/admin/integrations/secret/{id}/change/",
        "/admin/apps_registry/app/{id}/change/",
    ],
)
def test_the_admin_with_a_huge_id_is_no_500(admin_client, url):
    assert admin_client.get(url.format(id=HUGE)).status_code < 500


# --- encryption keys are checked at start -----------------------------------------------


@pytest.mark.parametrize(
    "keys, code", [([], "integrations.E001"), ([GOOD_KEY, "not-a-fernet-key"], "integrations.E002")]
)
def test_manage_py_check_refuses_bad_token_keys(settings, keys, code):
    settings.INTEGRATIONS_TOKEN_KEYS = keys
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    message = str(refused.value)
    assert code in message
    assert "Fernet.generate_key()" in message
    assert "not-a-fernet-key" not in message


def test_manage_py_check_accepts_good_keys(settings):
    settings.INTEGRATIONS_TOKEN_KEYS = [GOOD_KEY]
    call_command("check")


def test_production_settings_refuse_a_malformed_key():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "INTEGRATIONS_TOKEN_KEYS": f"{GOOD_KEY},tooshort",
    }
    env.pop("SANDBOX_ENABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "INTEGRATIONS_TOKEN_KEYS: key 2 is not a Fernet key" in done.stderr
    assert "tooshort" not in done.stderr


# --- JSON errors under /api/ --------------------------------------------------------------


def test_an_unknown_api_path_is_a_json_404_and_a_page_elsewhere(client):
    resp = client.get("/api/v1/no-such-thing/")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


@override_settings(DEBUG=True)
def test_an_unknown_api_path_is_json_with_debug_on_too(client):
    """``make run`` runs with DEBUG on, where Django shows its HTML debug 404 page."""
    resp = client.post("/api/v2/whatever/", {"a": 1})
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {"detail": "Not found."}


def test_an_api_path_without_its_trailing_slash_is_redirected_as_before(client):
    resp = client.get("/api/schema?format=json")
    assert resp.status_code == 301 and resp["Location"] == "/api/schema/?format=json"


def _boom(request):
    raise RuntimeError("something the client must not read")


urlpatterns = [
    path("api/v1/boom/", _boom),
    path("boom/", _boom),
    *site_urls.urlpatterns,
]
handler404 = site_urls.handler404
handler500 = site_urls.handler500


@pytest.mark.urls(__name__)
def test_a_crash_under_api_is_a_json_500_and_a_page_elsewhere():
    client = Client(raise_request_exception=False)
    resp = client.get("/api/v1/boom/")
    assert resp.status_code == 500
    assert resp.json() == {"detail": "Server error."}
    assert "must not read" not in resp.content.decode()
    page = client.get("/boom/")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
    assert reverse("apps_registry:api_run_environment")  # the site's routes are all there
