"""A browser asking for ``/favicon.ico`` ends at the site's SVG icon, served."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_favicon_ico_ends_at_the_svg_icon(site, page: Page):
    response = page.goto(site + "/favicon.ico")

    assert response is not None and response.status == 200
    assert response.url.endswith("/static/favicon.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
