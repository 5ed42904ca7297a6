"""Production's Content-Security-Policy in a real browser: a staff member's whole path
into the admin (allauth's sign-in, setting up an authenticator app, the code, the admin's
pages) and the user's pages raise no violation; a Connect whose provider is on another
origin is not blocked by form-action; and the watch itself sees a violation when there
is one (tests/browser/conftest.py watches every browser test)."""

from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.test import override_settings
from playwright.sync_api import Page, expect

from apps_registry import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long enough passphrase 42"
APP = """\
namespace: acme
name: sheets
title: Sheets report
integrations:
  - key: google.sheets.readonly
    description: Reads the report's sheet
"""

# An inline <style>, as a template that kept one would have.
ADD_INLINE_STYLE = """
const style = document.createElement("style");
style.textContent = "body { color: black; }";
document.head.append(style);
"""


def sign_in(page: Page, *, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def code_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_the_watch_sees_a_violation(site, new_context):
    context, watch = new_context()
    page = context.new_page()
    page.goto(site + "/accounts/login/")
    page.evaluate(ADD_INLINE_STYLE)
    page.wait_for_timeout(500)
    assert any("style-src" in str(v) for v in watch.violations), watch.violations
    watch.violations.clear()  # seen: this test is about the watch


def test_staff_path_into_the_admin_raises_no_violation(site, page: Page, settings):
    settings.INTEGRATIONS_ADMIN_REQUIRE_MFA = True
    user = get_user_model().objects.create_user(
        "root", "root@example.com", PASSWORD, is_staff=True, is_superuser=True
    )
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    services.manifest_upload(user=user, text=APP)

    page.goto(site + "/admin/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=%2Fadmin%2F$"))
    sign_in(page, email=user.email)
    expect(
        page.get_by_role("heading", name="Set up two-factor authentication to open the admin")
    ).to_be_visible()

    page.get_by_role("link", name="Set up an authenticator app").click()
    # allauth asks for the password again before an authenticator is added.
    expect(page.get_by_role("heading", name="Confirm Access")).to_be_visible()
    page.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("img")).to_be_visible()  # the QR code, a data: image
    secret = page.locator("#authenticator_secret").input_value()
    page.get_by_label("Code").fill(code_now(secret))
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_text(re.compile("Recovery Codes", re.I)).first).to_be_visible()

    # Added after this sign-in: the admin asks for a code once.
    page.goto(site + "/admin/")
    page.get_by_role("link", name="Enter a code from your authenticator app").click()
    page.get_by_label("Code").fill(code_now(secret))
    page.get_by_role("button", name=re.compile("Confirm")).click()
    expect(page.get_by_role("heading", name="Integrations Hub admin", level=1)).to_be_visible()

    for path in (
        "/admin/integrations/connection/",
        "/admin/integrations/providerdefinition/",
        "/admin/integrations/providerdefinition/add/",
        f"/admin/auth/user/{user.pk}/change/",
        "/admin/apps_registry/app/",
        "/admin/mfa/authenticator/",
    ):
        response = page.goto(site + path)
        assert response is not None and response.status == 200, path
        expect(page.locator("#content")).to_be_visible()

    page.goto(site + "/settings/secrets/integrations/")
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    page.goto(site + "/apps/acme/sheets/")
    expect(page.get_by_role("heading", name="Not ready")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.goto(site + "/accounts/login/")
    expect(page.get_by_role("button", name="Sign In")).to_be_visible()


def test_connect_to_a_provider_on_another_origin_passes_form_action(site, page: Page):
    # The same sandbox under the server's other name: another origin, as Google's is.
    other = (
        site.replace("localhost", "127.0.0.1")
        if "localhost" in site
        else site.replace("127.0.0.1", "localhost")
    )
    assert other != site
    get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)
    with override_settings(GOOGLE_OAUTH_AUTHORIZE_URL=other + "/sandbox/o/authorize/"):
        page.goto(site + "/accounts/login/")
        sign_in(page, email="ada@example.com")
        page.get_by_role("group", name="Gmail").get_by_label("Read", exact=True).check()
        page.get_by_role("button", name="Continue to Google").click()
        # The POST's redirect reached the provider (whose sign-in comes first there).
        expect(page).to_have_url(re.compile("^" + re.escape(other) + "/"))
