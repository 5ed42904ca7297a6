"""The site's icon: one SVG file in static/, linked from every page (the site's base,
the admin's and the sandbox's consent page), and ``/favicon.ico``, which browsers ask
for whatever a page links, redirects to it instead of answering 404."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static

pytestmark = pytest.mark.django_db

ICON = static("favicon.svg")
LINK = f'<link rel="icon" href="{ICON}" type="image/svg+xml">'


def test_favicon_ico_redirects_to_the_svg(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == ICON
    path = finders.find("favicon.svg")
    assert path, "static/favicon.svg"
    with open(path, encoding="utf-8") as svg:
        assert svg.read().startswith("<svg xmlns=")


def test_signed_out_pages_link_the_icon(client):
    assert LINK in client.get("/accounts/login/").content.decode()


def test_signed_in_pages_link_the_icon(alice_client):
    assert LINK in alice_client.get("/settings/secrets/").content.decode()


def test_admin_pages_link_the_icon(admin_client):
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    assert LINK in response.content.decode()
