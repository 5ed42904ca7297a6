"""Every user-facing page in a real browser, at a phone's width (390x844) and a desktop's
(1280x800): nothing wider than the window (``scrollWidth <= innerWidth``) and no serious
or critical axe-core violation (tests/browser/axe.py). The pages known to fail today are
``xfail(strict=True)`` per (page, width) in ``KNOWN_FAILURES``: a fix makes the test pass,
which fails the run until its entry is removed.

``SCREENSHOTS_DIR=docs/screenshots`` (``make screenshots``) saves the README's pictures:
the Integrations page and an app page at both widths."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Page, expect

import config.urls  # noqa: F401  (its admin registrations, e.g. unused models dropped, are the admin's)
from apps_registry import services
from integrations.app_authorization import AllowItem, app_authorization_allow
from integrations.models import Connection
from integrations.secrets import secret_set

from ..integrations.factories import ConnectionFactory
from .axe import severe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long enough passphrase 42"
MANIFEST = """\
namespace: acme
name: sheets
title: Sheets report
integrations:
  - key: google.sheets.readonly
    description: Reads the report's sheet
secrets:
  - key: REPORT_API_KEY
    description: The report service's key
"""
BAD_MANIFEST = "namespace: acme\nname: Not A Slug\nintegrations: 7\n"
LONG_KEY = "K" * 128
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}
SCREENSHOT_PAGES = ("integrations", "app_page")


@dataclass
class World:
    user: Any
    staff: Any
    connection: Connection
    failing: Connection
    secret_id: int


def build_world() -> World:
    users = get_user_model().objects
    user = users.create_user("ada", "ada@example.com", PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    staff = users.create_user(
        "root", "root@example.com", PASSWORD, is_staff=True, is_superuser=True
    )
    services.manifest_upload(user=user, text=MANIFEST)  # Ada owns acme
    connection = ConnectionFactory.create(user=user, account_email="ada@gmail.example")
    failing = ConnectionFactory.create(
        user=user,
        account_email="ada.work@gmail.example",
        status=Connection.Status.REFRESH_FAILING,
        last_error_code="invalid_grant",
    )
    app_authorization_allow(
        user=user,
        app="acme/sheets",
        version=1,
        items=[AllowItem("capability", "google.sheets.readonly", connection.pk)],
    )
    secret = secret_set(user=user, key=LONG_KEY, value="not shown").secret
    return World(user, staff, connection, failing, secret.pk)


def sign_in(page: Page, site: str, user: Any) -> None:
    """The session of a signed-in ``user`` in the page's context (the sign-in form
    itself is one of the pages checked)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": site}])


def _upload_with_errors(page: Page, site: str, w: World) -> None:
    page.goto(site + "/apps/upload/")
    page.locator("textarea").first.fill(BAD_MANIFEST)
    page.locator("main form [type=submit]").first.click()
    expect(page.locator(".problems")).to_be_visible()


def _sandbox_consent(page: Page, site: str, w: World) -> None:
    page.goto(site + "/settings/secrets/integrations/")
    connect = page.locator("form[action$='/google/connect/']")
    connect.locator("[id='connect-google-google.gmail.readonly']").check()
    connect.get_by_role("button", name="Continue to Google").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("wants to access")


def _go(
    path: str | Callable[[World], str], status: int = 200
) -> Callable[[Page, str, World], None]:
    def go(page: Page, site: str, w: World) -> None:
        response = page.goto(site + (path(w) if callable(path) else path))
        assert response is not None, path
        assert response.status == status, (path, response.status)

    return go


# (id, role, how to get there): role is None (signed out), "user" or "staff".
PAGES: list[tuple[str, str | None, Callable[[Page, str, World], None]]] = [
    ("sign_in", None, _go("/accounts/login/")),
    ("sign_up", None, _go("/accounts/signup/")),
    ("password_reset", None, _go("/accounts/password/reset/")),
    ("verification_sent", None, _go("/accounts/confirm-email/")),
    ("integrations", "user", _go("/settings/secrets/integrations/")),
    ("secrets", "user", _go("/settings/secrets/")),
    ("service_accounts", "user", _go("/settings/secrets/service-accounts/")),
    ("secret_delete", "user", _go(lambda w: f"/settings/secrets/{w.secret_id}/delete/")),
    (
        "disconnect",
        "user",
        _go(lambda w: f"/settings/secrets/integrations/connections/{w.connection.pk}/disconnect/"),
    ),
    ("apps_list", "user", _go("/apps/")),
    ("app_page", "user", _go("/apps/acme/sheets/")),
    ("upload_errors", "user", _upload_with_errors),
    ("namespace", "user", _go("/namespaces/acme/")),
    ("mfa_index", "user", _go("/accounts/2fa/")),
    ("mfa_reauthenticate", "user", _go("/accounts/2fa/totp/activate/")),
    ("sandbox_consent", "user", _sandbox_consent),
    (
        "oauth_error",
        "user",
        _go("/integrations/oauth/google/callback/?error=access_denied&state=unknown", 400),
    ),
    ("admin_index", "staff", _go("/admin/")),
    ("admin_user_change", "staff", _go(lambda w: f"/admin/auth/user/{w.user.pk}/change/")),
] + [
    (
        f"admin_{model._meta.app_label}_{model._meta.model_name}",
        "staff",
        _go(f"/admin/{model._meta.app_label}/{model._meta.model_name}/"),
    )
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label)
]

# (page id, width) -> why it fails today. Each fix flips its entry to an unexpected pass.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _params() -> list[Any]:
    params = []
    for page_id, role, go in PAGES:
        for width in WIDTHS:
            reason = KNOWN_FAILURES.get((page_id, width))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(role, go, width, id=f"{page_id}-{width}", marks=marks))
    return params


@pytest.mark.parametrize(("role", "go", "width"), _params())
def test_page_fits_and_passes_axe(site, page: Page, request, role, go, width):
    world = build_world()
    w, h = WIDTHS[width]
    page.set_viewport_size({"width": w, "height": h})
    if role is not None:
        sign_in(page, site, world.user if role == "user" else world.staff)
    go(page, site, world)
    page.wait_for_load_state("load")

    page_id = request.node.callspec.id.rsplit("-", 1)[0]
    shots = os.environ.get("SCREENSHOTS_DIR")
    if shots and page_id in SCREENSHOT_PAGES:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / f"{page_id}-{width}.png"), full_page=True)

    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    violations = severe_violations(page)
    assert scroll <= inner and not violations, {
        "url": page.url,
        "scrollWidth": scroll,
        "innerWidth": inner,
        "axe": violations,
    }
