"""Two Connects started from two app pages in two tabs, against the sandbox over live
HTTP: both finish, and both apps are ready (the second answer keeps the first grant,
as Google's include_granted_scopes does), with the second tab told so."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from apps_registry import services
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import Connection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long enough passphrase 42"
APP = """\
namespace: acme
name: {name}
title: {title}
integrations:
  - key: {key}
    description: {title}
"""


def sign_in(page: Page, site: str, email: str) -> None:
    page.goto(site + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password:?$")).fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()


def allow(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "wants to access your Google Account"
    )
    page.get_by_role("button", name="Allow").click()


def test_two_connects_from_two_app_pages_leave_both_apps_ready(site, new_context):
    user = get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)
    services.manifest_upload(
        user=user, text=APP.format(name="sheets", title="Sheets report", key="google.sheets")
    )
    services.manifest_upload(
        user=user,
        text=APP.format(name="agenda", title="Agenda", key="google.calendar.readonly"),
    )
    context, _ = new_context()  # closed, and checked for policy violations, at the end
    first = context.new_page()
    sign_in(first, site, "ada@example.com")
    second = context.new_page()  # same session: another tab

    first.goto(site + "/apps/acme/sheets/")
    second.goto(site + "/apps/acme/agenda/")
    expect(first.get_by_role("heading", name="Not ready")).to_be_visible()
    expect(second.get_by_role("heading", name="Not ready")).to_be_visible()
    # Both flows are started before either comes back.
    first.get_by_role("button", name="Connect Google").click()
    second.get_by_role("button", name="Connect Google").click()
    allow(first)
    expect(first.get_by_role("heading", name="Ready")).to_be_visible()
    allow(second)
    expect(second.get_by_role("status")).to_contain_text(
        "Google (ada@example.com) was already connected; added Calendar: read."
    )
    expect(second.get_by_role("heading", name="Ready")).to_be_visible()

    first.reload()
    expect(first.get_by_role("heading", name="Ready")).to_be_visible()
    conn = Connection.objects.get()
    assert {G + "spreadsheets", G + "calendar.readonly"} <= set(conn.scopes)
