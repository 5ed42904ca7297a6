"""Narrow screens: on a phone (390 px) the header's menus fold behind a "Menu"
disclosure (a <details>, no script) and tables stack, a block per row with each
cell under its column's name; a desktop (1280 px) shows both as before."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .test_pages import WIDTHS, build_world, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _at(page: Page, site: str, width: str, path: str) -> None:
    w, h = WIDTHS[width]
    page.set_viewport_size({"width": w, "height": h})
    sign_in(page, site, build_world().user)
    page.goto(site + path)


def test_phone_header_folds_its_menus_behind_menu(site, page: Page):
    _at(page, site, "phone", "/apps/")
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_hidden()
    expect(page.get_by_role("link", name="Settings", exact=True)).to_be_hidden()

    page.get_by_text("Menu", exact=True).click()

    expect(sign_out).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(site + "/settings/secrets/integrations/")


def test_desktop_header_shows_its_menus_inline(site, page: Page):
    _at(page, site, "desktop", "/apps/")

    expect(page.get_by_text("Menu", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    main_nav = page.get_by_role("navigation", name="Main")
    account = page.get_by_role("navigation", name="Account")
    # One row: the brand, the main links, the account links.
    assert main_nav.bounding_box()["y"] < 40 and account.bounding_box()["y"] < 40  # type: ignore[index]


def _cell(page: Page) -> dict[str, str]:
    return page.locator("table.data tbody td[data-label=Fingerprint]").first.evaluate(
        """td => ({
            display: getComputedStyle(td).display,
            label: getComputedStyle(td, '::before').content,
            header: getComputedStyle(td.closest('table').querySelector('thead')).position,
        })"""
    )


def test_phone_tables_stack_with_each_cell_labelled(site, page: Page):
    _at(page, site, "phone", "/settings/secrets/")

    assert _cell(page) == {"display": "block", "label": '"Fingerprint"', "header": "absolute"}
    # The header row is out of sight but still names the columns for screen readers.
    expect(page.get_by_role("columnheader", name="Fingerprint")).to_have_count(1)


def test_desktop_tables_keep_their_columns(site, page: Page):
    _at(page, site, "desktop", "/settings/secrets/")

    assert _cell(page) == {"display": "table-cell", "label": "none", "header": "static"}
    expect(page.get_by_role("columnheader", name="Fingerprint")).to_be_visible()
