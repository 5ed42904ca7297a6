"""Every user-facing page in a real browser, at a phone's width (390x844) and a desktop's
(1280x800): nothing wider than the window (``scrollWidth <= innerWidth``) and no serious
or critical axe-core violation (tests/browser/axe.py). The pages known to fail today are
``xfail(strict=True)`` per (page, width) in ``KNOWN_FAILURES``: a fix makes the test pass,
which fails the run until its entry is removed.

``SCREENSHOTS_DIR=docs/screenshots`` (``make screenshots``) saves the README's pictures:
the Integrations page and an app page at both widths."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Page, expect

import config.urls  # noqa: F401  (it unregisters the unused admin models: the registry as served)
from apps_registry import services
from integrations.app_authorization import AllowItem, app_authorization_allow
from integrations.models import Connection
from integrations.preferences import preferences_time_zone_set
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
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
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
    # Chosen, so that no page reloads itself in the browser's zone while it is checked.
    preferences_time_zone_set(user=user, time_zone="Europe/Paris")
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
    # The user has a Google connection: another one is behind its secondary button.
    page.locator("summary", has_text="Connect another Google account").click()
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


# --- account pages (allauth's) that need more than a URL ----------------------------------


def _submit(page: Page, fields: dict[str, str]) -> None:
    """Fill the page's account form (its fields by name) and press its primary button."""
    form = page.locator("main form.stack").first
    for name, value in fields.items():
        form.locator(f"[name='{name}']").fill(value)
    form.locator("button.primary").click()
    page.wait_for_load_state("load")


def _signed_in_with_errors(page: Page, site: str, w: World) -> None:
    page.goto(site + "/accounts/login/")
    _submit(page, {"login": w.user.email, "password": "not the password"})
    expect(page.locator("main [role=alert] ul.errors")).to_be_visible()


def _sign_up_with_errors(page: Page, site: str, w: World) -> None:
    page.goto(site + "/accounts/signup/")
    _submit(page, {"email": "new@example.com", "password1": "abc", "password2": "abd"})
    expect(page.locator("#id_password1_error")).to_be_visible()


def _reset_key_url(w: World) -> str:
    key = default_token_generator.make_token(w.user)
    return f"/accounts/password/reset/key/{user_pk_to_url_str(w.user)}-{key}/"


def _password_set(page: Page, site: str, w: World) -> None:
    w.user.set_unusable_password()
    w.user.save(update_fields=["password"])
    sign_in(page, site, w.user)
    _go("/accounts/password/set/")(page, site, w)


def _email_confirm(page: Page, site: str, w: World) -> None:
    address = EmailAddress.objects.create(user=w.user, email="ada.new@example.com")
    _go(f"/accounts/confirm-email/{EmailConfirmationHMAC(address).key}/")(page, site, w)


def _password_confirmed(path: str) -> Callable[[Page, str, World], None]:
    """``path``, a page allauth shows only after the password was given again: through
    the confirmation form it sends to."""

    def go(page: Page, site: str, w: World) -> None:
        page.goto(site + path)
        expect(page).to_have_url(re.compile("/accounts/reauthenticate/"))
        _submit(page, {"password": PASSWORD})
        expect(page).to_have_url(site + path)

    return go


def _with_totp_confirmed(path: str) -> Callable[[Page, str, World], None]:
    """``path`` for a user with an authenticator app and recovery codes, after the
    code-confirmation form (a recovery code: allauth takes each code once)."""

    def go(page: Page, site: str, w: World) -> None:
        TOTP.activate(w.user, TOTP_SECRET)
        code = RecoveryCodes.activate(w.user).get_unused_codes()[0]
        page.goto(site + "/accounts/2fa/reauthenticate/?next=" + path)
        _submit(page, {"code": code})
        expect(page).to_have_url(site + path)

    return go


def _mfa_code_confirm(page: Page, site: str, w: World) -> None:
    TOTP.activate(w.user, TOTP_SECRET)
    _go("/accounts/2fa/reauthenticate/")(page, site, w)


def _mfa_authenticate(page: Page, site: str, w: World) -> None:
    TOTP.activate(w.user, TOTP_SECRET)
    page.goto(site + "/accounts/login/")
    _submit(page, {"login": w.user.email, "password": PASSWORD})
    expect(page).to_have_url(site + "/accounts/2fa/authenticate/")


# (id, role, how to get there): role is None (signed out), "user" or "staff".
PAGES: list[tuple[str, str | None, Callable[[Page, str, World], None]]] = [
    ("sign_in", None, _go("/accounts/login/")),
    ("sign_in_errors", None, _signed_in_with_errors),
    ("sign_up", None, _go("/accounts/signup/")),
    ("sign_up_errors", None, _sign_up_with_errors),
    ("password_reset", None, _go("/accounts/password/reset/")),
    ("password_reset_done", None, _go("/accounts/password/reset/done/")),
    ("password_reset_from_key", None, _go(_reset_key_url)),
    ("password_reset_bad_key", None, _go("/accounts/password/reset/key/1-bad-key/")),
    ("password_reset_from_key_done", None, _go("/accounts/password/reset/key/done/")),
    ("verification_sent", None, _go("/accounts/confirm-email/")),
    ("email_confirm", None, _email_confirm),
    ("mfa_authenticate", None, _mfa_authenticate),
    ("sign_out", "user", _go("/accounts/logout/")),
    ("email", "user", _go("/accounts/email/")),
    ("password_change", "user", _go("/accounts/password/change/")),
    ("password_set", None, _password_set),
    ("integrations", "user", _go("/settings/secrets/integrations/")),
    ("secrets", "user", _go("/settings/secrets/")),
    ("service_accounts", "user", _go("/settings/secrets/service-accounts/")),
    ("preferences", "user", _go("/settings/preferences/")),
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
    ("totp_activate", "user", _password_confirmed("/accounts/2fa/totp/activate/")),
    ("mfa_code_confirm", "user", _mfa_code_confirm),
    ("totp_deactivate", "user", _with_totp_confirmed("/accounts/2fa/totp/deactivate/")),
    ("recovery_codes", "user", _with_totp_confirmed("/accounts/2fa/recovery-codes/")),
    (
        "recovery_codes_generate",
        "user",
        _with_totp_confirmed("/accounts/2fa/recovery-codes/generate/"),
    ),
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
