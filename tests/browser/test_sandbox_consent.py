"""The sandbox's consent page answers Enter the way Google's does: Allow is the form's
first submit button, so the browser's implicit submission presses it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from integrations.models import Connection

from .test_pages import _sandbox_consent, build_world, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_enter_on_the_consent_page_allows(site, page: Page):
    world = build_world()
    sign_in(page, site, world.user)
    _sandbox_consent(page, site, world)
    expect(page.get_by_role("button", name="Allow")).to_have_class("primary")
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "/static/favicon.svg")

    page.locator("main form input[type=checkbox]:not([disabled])").first.press("Enter")

    expect(page.get_by_role("status")).to_contain_text("Connected Google")
    assert Connection.objects.filter(user=world.user, account_email="ada@example.com").exists()
