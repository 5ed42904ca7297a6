"""The whole Google story in a real browser, over live HTTP, against the sandbox:
sign up, Connect two capabilities, Add Permissions for more while unticking one at the
consent page, Disconnect; the provider recorded the revocation; no token leaked."""

from __future__ import annotations

import logging
import re

import pytest
from oauth2_provider.models import AccessToken, RefreshToken
from playwright.sync_api import Page, expect

from integrations.models import AuditEvent, Connection
from integrations.sandbox.models import SandboxRevocation, SandboxTokenRequest
from tests.integrations.test_no_leaks import dump_every_table

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def consent(page: Page, *, untick: tuple[str, ...] = ()) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "wants to access your Google Account"
    )
    for label in untick:
        page.get_by_label(re.compile(label)).uncheck()
    page.get_by_role("button", name="Allow").click()


def test_sign_up_connect_add_permissions_disconnect(site, page: Page, caplog):
    caplog.set_level(logging.DEBUG)
    page.goto(site + "/accounts/signup/")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label(re.compile(r"^Password:?$")).fill("a long enough passphrase 42")
    page.get_by_label(re.compile(r"^Password \(again\)")).fill("a long enough passphrase 42")
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()

    # Connect with two capabilities: one level in each of two product rows.
    connect = page.locator("form.connect")
    expect(connect).to_be_visible()  # always shown, not behind a summary
    gmail = connect.get_by_role("group", name="Gmail")
    expect(gmail.get_by_label("None", exact=True)).to_be_checked()
    expect(gmail.get_by_text(re.compile("Restricted: Google must verify"))).to_have_count(
        3
    )  # not Send only
    gmail.get_by_label("Read", exact=True).check()
    connect.get_by_role("group", name="Calendar").get_by_label("Read", exact=True).check()
    connect.get_by_role("button", name="Continue to Google").click()
    consent(page)
    expect(page.get_by_role("status")).to_contain_text(
        "Connected Google (ada@example.com): Gmail: read, Calendar: read."
    )
    account = page.get_by_role("article", name=re.compile("Google connection ada@example.com"))
    expect(account.get_by_role("listitem").filter(has_text="Gmail: read")).to_be_visible()
    expect(account.get_by_role("listitem").filter(has_text="Calendar: read")).to_be_visible()
    conn = Connection.objects.get()
    assert conn.status == "active" and conn.has_refresh_token

    # Add Permissions for two more, unticking one of them at the consent page.
    account.get_by_text("Add Permissions").click()
    expect(
        account.get_by_role("group", name="Gmail").get_by_label("Read (current)")
    ).to_be_checked()
    account.get_by_role("group", name="Sheets").get_by_label("Read", exact=True).check()
    account.get_by_role("group", name="Drive").get_by_label("Read", exact=True).check()
    account.get_by_role("button", name="Continue to Google").click()
    consent(page, untick=("Drive: read",))
    expect(page.get_by_role("status")).to_contain_text(
        "You granted 1 of the 2 permissions asked for"
    )
    expect(page.get_by_role("status")).to_contain_text("Not granted: Drive: read")
    for label in ("Gmail: read", "Calendar: read", "Sheets: read"):
        expect(account.get_by_role("listitem").filter(has_text=label)).to_be_visible()
    conn.refresh_from_db()
    assert Connection.objects.count() == 1
    assert "https://www.googleapis.com/auth/spreadsheets.readonly" in conn.scopes
    assert "https://www.googleapis.com/auth/drive.readonly" not in conn.scopes

    # What the provider issued, before Disconnect removes it.
    issued = [t.token for t in AccessToken.objects.all()] + [
        t.token for t in RefreshToken.objects.all()
    ]
    assert len(issued) >= 3
    ours = dump_every_table(exclude_prefixes=("oauth2_provider_",))
    page.goto(site + "/admin/")  # not staff: the admin is not for Ada
    page.go_back()

    # Disconnect, behind a confirmation.
    account.get_by_role("link", name="Disconnect").click()
    expect(page.get_by_role("heading", name="Disconnect Google?")).to_be_visible()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Disconnected Google (ada@example.com); Google revoked the access."
    )
    expect(page.get_by_text("No Google account connected.")).to_be_visible()
    assert not Connection.objects.exists()
    assert SandboxRevocation.objects.filter(user__email="ada@example.com").count() == 1
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert AuditEvent.objects.filter(kind="revocation", ok=True).count() == 1
    assert SandboxTokenRequest.objects.filter(grant_type="authorization_code").count() == 2

    logs = "\n".join(r.getMessage() for r in caplog.records)
    for token in issued:
        assert token not in ours
        assert token not in logs
