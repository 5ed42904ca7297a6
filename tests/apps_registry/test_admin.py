"""Staff pages: apps and what they request, read-only versions, upload through the
admin, and API tokens shown once, never their hash."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps_registry import selectors, services
from apps_registry.models import ApiToken, App, ManifestVersion

from .conftest import REAL, REPORT

pytestmark = pytest.mark.django_db


def test_apps_list_and_page_show_what_each_app_requests(admin_client, alice, upload):
    upload(alice)
    upload(alice, REAL["api-falai-dia-tts.inf.yml"])
    app = App.objects.get(name="report")

    html = admin_client.get(reverse("admin:apps_registry_app_changelist")).content.decode()
    assert "acme/report" in html and "falai/dia-tts" in html
    assert "google.sheets.readonly, google.drive.readonly (optional)" in html
    assert "FAL_KEY" in html
    assert "Upload a manifest" in html

    html = admin_client.get(
        reverse("admin:apps_registry_app_change", args=[app.pk])
    ).content.decode()
    assert "Read the source spreadsheet" in html and "(required)" in html
    assert "Find the spreadsheet in Drive" in html and "(optional)" in html


def test_versions_are_read_only_with_raw_text_and_errors(admin_client, alice, upload):
    version = upload(alice, REPORT.replace("optional: true", "optional: yes"))
    url = reverse("admin:apps_registry_manifestversion_change", args=[version.pk])
    html = admin_client.get(url).content.decode()
    assert "optional: yes" in html  # raw text
    assert "Line 10, column 15: integrations[1].optional: must be true or false" in html
    assert 'name="_save"' not in html
    resp = admin_client.post(
        reverse("admin:apps_registry_manifestversion_delete", args=[version.pk]), {"post": "yes"}
    )
    assert resp.status_code == 403
    assert ManifestVersion.objects.filter(pk=version.pk).exists()


def test_upload_through_the_admin_calls_the_service(admin_client, admin_user):
    url = reverse("admin:apps_registry_app_upload")
    assert admin_client.get(url).status_code == 200
    resp = admin_client.post(url, {"text": REPORT})
    app = App.objects.get()
    assert resp.status_code == 302
    assert resp["Location"] == reverse("admin:apps_registry_app_change", args=[app.pk])
    assert app.owner == admin_user
    assert app.current_version is not None and app.current_version.number == 1

    resp = admin_client.post(url, {"file": SimpleUploadedFile("x.yml", b"name: [\n")})
    assert resp.status_code == 200
    assert "the manifest ends inside a list" in resp.content.decode()
    # Into a chosen app: the manifest must name it.
    resp = admin_client.post(url, {"text": REPORT.replace("report", "other"), "app": app.pk})
    version = ManifestVersion.objects.latest("id")
    assert resp.status_code == 302 and not version.valid and version.app == app


def test_admin_is_for_staff_only(client, alice):
    client.force_login(alice)
    resp = client.get(reverse("admin:apps_registry_app_upload"))
    assert resp.status_code == 302 and "/admin/login/" in resp["Location"]


def test_api_token_is_shown_once_and_its_hash_never(admin_client, alice):
    add = reverse("admin:apps_registry_apitoken_add")
    assert "shown once" in admin_client.get(add).content.decode()
    resp = admin_client.post(add, {"user_email": "alice@example.com", "name": "github"})
    html = resp.content.decode()
    row = ApiToken.objects.get()
    token = html.split('readonly value="')[1].split('"')[0]
    assert token.startswith(row.prefix)
    assert selectors.api_token_for(token=token) == row
    assert "no-store" in resp["Cache-Control"]
    assert row.token_hash not in html

    for url in (
        reverse("admin:apps_registry_apitoken_changelist"),
        reverse("admin:apps_registry_apitoken_change", args=[row.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert row.prefix in page
        assert token not in page and row.token_hash not in page
    # Nothing carries it to a later page (messages, session).
    assert token not in str(dict(admin_client.session))


def test_api_token_for_an_unknown_email_is_refused(admin_client):
    resp = admin_client.post(
        reverse("admin:apps_registry_apitoken_add"), {"user_email": "x@example.com", "name": "n"}
    )
    assert "No user has this email address." in resp.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_a_token_is_deleting_it(admin_client, alice):
    row, token = services.api_token_create(user=alice, name="ci")
    admin_client.post(
        reverse("admin:apps_registry_apitoken_delete", args=[row.pk]), {"post": "yes"}
    )
    assert selectors.api_token_for(token=token) is None
