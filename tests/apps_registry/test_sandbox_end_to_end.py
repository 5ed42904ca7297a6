"""The readiness story against the real sandbox: a user with Google connected for
Gmail opens an app that needs Sheets, follows its Add Permissions action through the
sandbox's consent page, and lands back on the app page with the app ready.

Our pages and the sandbox's consent page are driven with Django's test client (one
session: the signed-in user is also the sandbox's "Google" user); the product's code
exchange calls the sandbox over HTTP at SITE_URL, which is the live server.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from apps_registry.models import App
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import AppAuthorization, AuditEvent, Connection
from integrations.sandbox.models import SandboxTokenRequest
from integrations.sandbox.services import google_callback_uri, sandbox_client_ensure

from .conftest import REPORT

REPORT_URL = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "report"})


@pytest.fixture
def site(live_server):
    with override_settings(SITE_URL=live_server.url):
        sandbox_client_ensure(redirect_uris=[google_callback_uri(site_url=live_server.url)])
        yield live_server.url


def through_consent(
    client: Client, site: str, started: Any, *, untick: str = ""
) -> tuple[dict[str, str], Any]:
    """Follow a started flow: the sandbox's consent page, Allow with every requested
    scope ticked, then our callback. Returns the authorization request's parameters
    and the callback's answer."""
    assert started.status_code == 302, started.content
    authorize = started["Location"]
    assert authorize.startswith(site + "/sandbox/o/authorize/")
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    page = client.get(authorize)
    assert page.status_code == 200, page.content
    form = page.context["form"]
    data = {f.name: f.value() or "" for f in form.hidden_fields()}
    data["scope"] = [s for s in form.fields["scope"].initial if s != untick]
    data["allow"] = "true"
    answer = client.post(authorize, data)
    assert answer.status_code == 302
    callback = answer["Location"]
    assert callback.startswith(google_callback_uri(site_url=site))
    return params, client.get(callback)


def action_forms(html: str) -> list[tuple[str, list[tuple[str, str]]]]:
    forms = []
    for action, body in re.findall(r'action="([^"]+)"[^>]*>(.*?)</form>', html, re.S):
        inputs = re.findall(
            r'<input type="hidden" name="(capabilities|next|app|app_version)" value="([^"]*)">',
            body,
        )
        if inputs:
            forms.append((action, inputs))
    return forms


@pytest.mark.django_db(transaction=True)
def test_add_permissions_from_the_app_page_ends_with_the_app_ready(site):
    ada = get_user_model().objects.create_user(username="ada", email="ada@example.com")
    client = Client()
    client.force_login(ada)

    # Ada has Google connected, with Gmail read only.
    started = client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"capabilities": ["google.gmail.readonly"]},
    )
    _, done = through_consent(client, site, started)
    assert done.status_code == 302
    conn = Connection.objects.get(user=ada)
    assert G + "gmail.readonly" in conn.scopes and G + "spreadsheets.readonly" not in conn.scopes

    # An app that needs Sheets (read) and, optionally, Drive (read).
    assert client.post(reverse("apps_registry:upload"), {"text": REPORT}).status_code == 302
    assert App.objects.get().current_version is not None

    # Not ready; the action asks for exactly Sheets (read), on the existing connection.
    html = client.get(REPORT_URL).content.decode()
    assert '<h2 id="readiness-heading">Not ready: needs 1 permission</h2>' in html
    # The checklist's row buttons (Sheets; the optional Drive), then both at once.
    (required_url, required), _, (optional_url, optional) = action_forms(html)
    add_url = reverse("integrations:add_permissions", kwargs={"id": conn.pk})
    assert required_url == add_url == optional_url
    assert required == [
        ("capabilities", "google.sheets.readonly"),
        ("next", REPORT_URL),
        ("app", "acme/report"),
        ("app_version", "1"),
    ]
    assert ("capabilities", "google.drive.readonly") in optional

    # Follow it through the sandbox's consent.
    started = client.post(required_url, dict_of(required))
    params, done = through_consent(client, site, started)
    assert set(params["scope"].split()) == {"openid", "email", G + "spreadsheets.readonly"}
    assert params["login_hint"] == conn.account_email
    assert params["include_granted_scopes"] == "true"
    assert done.status_code == 302
    assert done["Location"] == REPORT_URL

    # Back on the app page: ready, on the same connection, earlier grant kept; started
    # from the app page, the app is allowed what it asked and got, on that connection,
    # and nothing else (not Gmail, which the connection has and the app never asked).
    html = client.get(done["Location"]).content.decode()
    assert '<h2 id="readiness-heading">Ready to run</h2>' in html
    assert "✓ Allowed" in html
    assert list(
        AppAuthorization.objects.filter(user=ada).values_list("app", "key", "connection_id")
    ) == [("acme/report", "google.sheets.readonly", conn.pk)]
    assert AuditEvent.objects.filter(kind="app_allowed", user=ada).count() == 1
    assert (
        "Not granted yet"
        not in html.split('data-key="google.sheets.readonly"')[1].split("</li>")[0]
    )
    conn.refresh_from_db()
    assert Connection.objects.filter(user=ada).count() == 1
    assert {G + "gmail.readonly", G + "spreadsheets.readonly"} <= set(conn.scopes)
    # The product really exchanged two codes with the sandbox over HTTP.
    assert SandboxTokenRequest.objects.filter(grant_type="authorization_code").count() == 2


def dict_of(inputs: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in inputs:
        data.setdefault(name, []).append(value)
    return data


@pytest.mark.django_db(transaction=True)
def test_connect_from_the_app_page_allows_only_what_was_granted(site):
    """Connect started from the app page (asking for Sheets and the optional Drive);
    Drive unticked at the consent page: the app is allowed Sheets only, on the new
    connection. A forged app name in the form starts nothing."""
    ada = get_user_model().objects.create_user(username="ada", email="ada@example.com")
    client = Client()
    client.force_login(ada)
    assert client.post(reverse("apps_registry:upload"), {"text": REPORT}).status_code == 302

    html = client.get(REPORT_URL).content.decode()
    *_rows, (optional_url, optional) = action_forms(html)
    assert optional_url == reverse("integrations:connect", kwargs={"provider_id": "google"})
    assert ("app", "acme/report") in optional

    forged = dict_of(optional)
    forged["app"] = ["../../etc"]
    refused = client.post(optional_url, forged)
    assert refused.status_code == 302 and refused["Location"] == reverse("integrations:page")

    started = client.post(optional_url, dict_of(optional))
    _, done = through_consent(client, site, started, untick=G + "drive.readonly")
    assert done.status_code == 302 and done["Location"] == REPORT_URL
    conn = Connection.objects.get(user=ada)
    assert G + "drive.readonly" not in conn.scopes
    assert list(
        AppAuthorization.objects.filter(user=ada).values_list("app", "key", "connection_id")
    ) == [("acme/report", "google.sheets.readonly", conn.pk)]
