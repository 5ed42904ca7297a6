"""Per-app authorization in a real browser, over live HTTP, against the sandbox: Ada
connects Google for Sheets, opens an app that needs it, presses Allow, a run gets the
token; Remove access on the Integrations page, and the next run is refused again."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Page, expect

from apps_registry import services
from integrations.models import AppAuthorization, AuditEvent, Connection

from ..integrations.factories import ConnectionFactory
from .test_connect_google import consent
from .test_pages import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MANIFEST = """\
namespace: acme
name: report
title: Weekly report
integrations:
  - key: google.sheets.readonly
    description: Read the source spreadsheet
"""


def run(runner: str, email: str):
    return Client().post(
        "/api/v1/run-environments/",
        json.dumps({"user": email, "app": "acme/report"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {runner}",
    )


def test_allow_an_app_then_remove_its_access(site, page: Page):
    publisher = get_user_model().objects.create_user(username="pub", email="pub@example.com")
    services.manifest_upload(user=publisher, text=MANIFEST)
    runner = services.runner_token_create(name="browser", all_namespaces=True)[1]

    page.goto(site + "/accounts/signup/")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label(re.compile(r"^Password:?$")).fill("a long enough passphrase 42")
    page.get_by_label(re.compile(r"^Password \(again\)")).fill("a long enough passphrase 42")
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("group", name="Sheets").get_by_label("Read", exact=True).check()
    page.get_by_role("button", name="Continue to Google").click()
    consent(page)
    expect(page.get_by_role("status")).to_contain_text("Connected Google (ada@example.com)")
    assert run(runner, "ada@example.com").status_code == 409  # connected, not allowed

    page.goto(site + "/apps/acme/report/")
    expect(page.get_by_role("heading", name="Not allowed yet")).to_be_visible()
    allow = page.get_by_role("form", name="Allow Weekly report")
    expect(allow).to_contain_text("Allow Weekly report to use: Sheets: read (ada@example.com).")
    allow.get_by_role("button", name="Allow Weekly report").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Allowed Weekly report to use: Sheets: read (ada@example.com)."
    )
    expect(page.get_by_role("heading", name="Ready to run")).to_be_visible()
    expect(page.get_by_text("✓ Allowed")).to_be_visible()
    assert "GOOGLE_OAUTH_ACCESS_TOKEN" in run(runner, "ada@example.com").json()["env"]

    connection = Connection.objects.get()
    page.goto(site + reverse("integrations:disconnect", args=[connection.pk]))
    expect(page.get_by_text("These apps you allowed to use it will stop working")).to_contain_text(
        "acme/report"
    )
    page.get_by_role("link", name="Cancel").click()
    assert Connection.objects.filter(pk=connection.pk).exists()

    page.goto(site + "/settings/secrets/integrations/")
    account = page.get_by_role("article", name=re.compile("Google connection ada@example.com"))
    expect(account.get_by_text("Used by:")).to_be_visible()
    account.get_by_role("button", name="Remove access of acme/report to ada@example.com").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Removed acme/report's access to ada@example.com."
    )
    assert not AppAuthorization.objects.exists()
    refused = run(runner, "ada@example.com")
    assert refused.status_code == 409
    assert [m["reason"] for m in refused.json()["missing"]] == ["not_allowed"]
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {"app_allowed", "app_access_removed"} <= kinds


CHECKLIST_MANIFEST = """\
namespace: acme
name: voice
title: Voice notes
integrations:
  - key: google.sheets.readonly
    description: Read the notes sheet
secrets:
  - key: FAL_KEY
    description: fal.ai API key
"""


def test_add_the_missing_secret_on_the_app_page_then_allow_it(site, page: Page):
    """The checklist end to end: the secret is added in its row (never shown again),
    the Allow step lists it with the connection, and Allow ends at Ready to run."""
    users = get_user_model().objects
    publisher = users.create_user(username="pub", email="pub@example.com")
    services.manifest_upload(user=publisher, text=CHECKLIST_MANIFEST)
    ada = users.create_user("ada", "ada@example.com", "a long enough passphrase 42")
    connection = ConnectionFactory.create(user=ada, account_email="ada@gmail.example")
    sign_in(page, site, ada)

    page.goto(site + "/apps/acme/voice/")
    expect(page.get_by_role("heading", level=2, name="Not ready")).to_have_text(
        "Not ready: needs 1 secret and your Allow"
    )
    checklist = page.get_by_role("list", name="What Voice notes needs")
    expect(checklist.get_by_role("listitem")).to_have_count(3)
    secret = page.get_by_role("form", name="Add the secret FAL_KEY")
    secret.get_by_label("Value of FAL_KEY").fill("fal-value-never-shown")
    secret.get_by_role("button", name="Save FAL_KEY").click()

    expect(page.get_by_role("status")).to_contain_text("Added FAL_KEY.")
    expect(page.get_by_role("heading", level=2)).to_have_text("Not allowed yet")
    expect(page.get_by_role("form", name="Add the secret FAL_KEY")).to_have_count(0)
    assert "fal-value-never-shown" not in page.content()
    allow = page.get_by_role("form", name="Allow Voice notes")
    expect(allow).to_contain_text(
        "Allow Voice notes to use: Sheets: read (ada@gmail.example), the secret FAL_KEY."
    )
    allow.get_by_role("button", name="Allow Voice notes").click()

    expect(page.get_by_role("heading", level=2)).to_have_text("Ready to run")
    expect(page.get_by_text("✓ Allowed")).to_be_visible()
    assert set(
        AppAuthorization.objects.filter(user=ada, app="acme/voice").values_list(
            "key", "connection_id"
        )
    ) == {("google.sheets.readonly", connection.pk), ("FAL_KEY", None)}
