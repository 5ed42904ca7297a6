"""Retry now in a real browser, against the sandbox: a connection made through the
sandbox's consent page whose last renewal failed says so in plain words; Retry now
renews it with the sandbox's refresh token and the card says it works again. The
browser's time zone (Europe/Paris) is taken once by static/js/time-zone.js, and the
card's times are shown in it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from integrations.models import AuditEvent, Connection, UserPreferences
from integrations.sandbox.models import SandboxTokenRequest

from .conftest import PolicyWatch
from .test_connect_google import consent
from .test_pages import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_for_zone(page: Page, user) -> str:
    for _ in range(50):
        zone = UserPreferences.objects.filter(user=user).values_list("time_zone", flat=True)
        if zone and zone[0]:
            return zone[0]
        page.wait_for_timeout(100)
    raise AssertionError("the browser's time zone was never posted")


@pytest.fixture
def paris_page(browser):
    """A page whose browser is in Paris, watched for policy violations."""
    context = browser.new_context(
        viewport={"width": 1100, "height": 900}, timezone_id="Europe/Paris"
    )
    context.set_default_timeout(15_000)
    watch = PolicyWatch(context)
    yield context.new_page()
    context.close()
    assert not watch.violations, f"Content-Security-Policy violations: {watch.violations}"


def test_retry_now_renews_a_failing_connection(site, paris_page: Page):
    page = paris_page
    ada = get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)
    EmailAddress.objects.create(user=ada, email=ada.email, verified=True, primary=True)
    sign_in(page, site, ada)

    # No zone chosen: the page posts the browser's once.
    page.goto(site + "/settings/secrets/integrations/")
    assert _wait_for_zone(page, ada) == "Europe/Paris"

    connect = page.locator("form.connect")
    connect.get_by_role("group", name="Gmail").get_by_label("Read", exact=True).check()
    connect.get_by_role("button", name="Continue to Google").click()
    consent(page)
    account = page.get_by_role("article", name=re.compile("Google connection ada@example.com"))
    expect(account).to_contain_text("Working. Renewed automatically.")
    expect(account).to_contain_text("Not used by an app yet.")
    expect(account).to_contain_text(re.compile(r"Connected \d+ \w+ \d{4}, \d\d:\d\d CES?T"))

    # The sweep's last renewal failed: the card says what happened and what comes next.
    conn = Connection.objects.get()
    retry_at = timezone.now() + timedelta(minutes=20)
    Connection.objects.filter(pk=conn.pk).update(
        status=Connection.Status.REFRESH_FAILING,
        last_error_code="http_503",
        refresh_failures=1,
        backoff_until=retry_at,
    )
    page.reload()
    expect(account).to_contain_text("Google did not answer our last renewal.")
    expect(account).to_contain_text("We retry automatically at")
    expect(account).not_to_contain_text("Renewed automatically")
    account.get_by_role("button", name="Retry now").click()

    expect(page.get_by_role("status")).to_contain_text(
        "Renewed: Google answered and the connection works again."
    )
    expect(account).to_contain_text("Working. Renewed automatically.")
    expect(account.get_by_role("button", name="Retry now")).to_have_count(0)
    conn.refresh_from_db()
    assert conn.status == "active" and conn.last_error_code == ""
    assert SandboxTokenRequest.objects.filter(grant_type="refresh_token").count() == 1
    assert AuditEvent.objects.filter(kind="refresh_forced", ok=True).count() == 1
