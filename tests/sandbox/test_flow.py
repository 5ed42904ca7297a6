"""The authorization-code flow of the sandbox, played like Google."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken
from oauth2_provider.settings import oauth2_settings

from integrations.providers import registry
from integrations.sandbox.models import SandboxGrantOption, SandboxTokenRequest

from .conftest import (
    GMAIL_RO,
    REDIRECT_URI,
    SHEETS_RO,
    Pkce,
    authorize_url,
    bearer,
    consent_data,
    query_of,
)

pytestmark = pytest.mark.django_db

SHEET_URL = "/sandbox/google/sheets/v4/spreadsheets/abc/values/Sheet1!A1:B3"


def test_authorize_requires_login(client, sandbox_app):
    url = authorize_url([SHEETS_RO], Pkce())

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse(settings.LOGIN_URL) + "?next=")
    assert not Grant.objects.exists()


def test_consent_page_shows_labelled_checkboxes(flow, django_assert_num_queries):
    url = authorize_url(["openid", "email", SHEETS_RO, GMAIL_RO], Pkce(), login_hint="x@y.z")

    # The page's Content-Security-Policy names the providers' origins, read from the
    # provider definitions cached per process (config/csp.py): warm, as in production.
    registry.authorization_origins()
    # session, user, application twice (DOT), earlier grants
    with django_assert_num_queries(5):
        response = flow.client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Sandbox — plays Google, never in production" in html
    assert "Sandbox Google" in html and "x@y.z" in html and "ada@example.com" in html
    for i, (label, scope) in enumerate([("Sheets: read", SHEETS_RO), ("Gmail: read", GMAIL_RO)]):
        assert re.search(
            rf'<input type="checkbox" name="scope" value="{re.escape(scope)}"[^>]*'
            rf'id="id_scope_{i}"[^>]*checked',
            html,
        )
        assert f'<label for="id_scope_{i}">' in html
        assert label in html
    # Identity scopes are shown, ticked and not untickable.
    assert html.count("checked disabled") == 2
    # gmail.readonly is restricted, spreadsheets.readonly is not.
    assert html.count(">restricted</span>") == 1
    # DOT's hidden fields are kept.
    for name in (
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "response_type",
        "client_id",
        "requested_scope",
        "access_type",
    ):
        assert f'name="{name}"' in html
    assert not Grant.objects.exists()


def test_full_flow_with_pkce_s256(flow, user):
    tokens = flow.tokens(["openid", "email", SHEETS_RO])

    assert re.fullmatch(r"sbx-at-[A-Za-z0-9_-]{43}", tokens["access_token"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"].split() == ["openid", "email", SHEETS_RO]
    token = AccessToken.objects.get()
    assert token.user == user and token.scope == tokens["scope"]
    assert not Grant.objects.exists() and not SandboxGrantOption.objects.exists()
    record = SandboxTokenRequest.objects.get()
    assert (record.grant_type, record.outcome, record.user) == ("authorization_code", "ok", user)
    assert record.client_id == "sandbox-google-client"


def test_unticked_scope_is_not_granted(flow):
    tokens = flow.tokens(["openid", "email", SHEETS_RO, GMAIL_RO], tick=[SHEETS_RO])

    assert tokens["scope"].split() == ["openid", "email", SHEETS_RO]
    assert AccessToken.objects.get().scope == tokens["scope"]


def test_unticking_everything_still_grants_identity(flow):
    tokens = flow.tokens(["openid", "email", SHEETS_RO], tick=[])

    assert tokens["scope"].split() == ["openid", "email"]


def test_cancel_redirects_with_access_denied(flow):
    url = authorize_url(["openid", SHEETS_RO], Pkce())
    page = flow.client.get(url)

    response = flow.client.post(url, consent_data(page.context["form"], allow=False))

    assert response.status_code == 302
    assert response["Location"].startswith(REDIRECT_URI)
    assert query_of(response["Location"]) == {"error": "access_denied", "state": "st-123"}
    assert not Grant.objects.exists()


def test_missing_pkce_is_refused(flow):
    response = flow.client.get(authorize_url(["openid", SHEETS_RO], None))

    assert response.status_code == 302
    query = query_of(response["Location"])
    assert query["error"] == "invalid_request" and query["state"] == "st-123"
    assert not Grant.objects.exists()


def test_wrong_code_verifier_is_refused(flow, user):
    code = flow.code(["openid", SHEETS_RO], pkce=Pkce())

    response = flow.exchange(code, Pkce())

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()
    record = SandboxTokenRequest.objects.get()
    assert (record.outcome, record.user) == ("invalid_grant", user)


@pytest.mark.parametrize("scope", ["offline_access", "profile", "https://example.com/x"])
def test_unknown_scope_is_refused(flow, scope):
    response = flow.client.get(authorize_url(["openid", scope], Pkce()))

    assert response.status_code == 302
    assert query_of(response["Location"])["error"] == "invalid_scope"


def test_no_refresh_token_without_offline_access(flow):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="online")

    assert "refresh_token" not in tokens
    assert not RefreshToken.objects.exists()


def test_refresh_token_with_offline_access(flow, user):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline", prompt="consent")

    assert re.fullmatch(r"sbx-rt-[A-Za-z0-9_-]{43}", tokens["refresh_token"])
    refresh = RefreshToken.objects.get()
    assert refresh.user == user and refresh.access_token.scope == tokens["scope"]


def test_include_granted_scopes_adds_earlier_grants(flow):
    flow.tokens(["openid", "email", SHEETS_RO], access_type="offline")

    page = flow.client.get(
        authorize_url(["openid", "email", GMAIL_RO], Pkce(), include_granted_scopes="true")
    )
    assert "Already granted" in page.content.decode()
    tokens = flow.tokens(["openid", "email", GMAIL_RO], include_granted_scopes="true")

    assert tokens["scope"].split() == ["openid", "email", GMAIL_RO, SHEETS_RO]
    assert AccessToken.objects.order_by("pk").last().scope == tokens["scope"]


def test_without_include_granted_scopes_only_this_grant(flow):
    flow.tokens(["openid", "email", SHEETS_RO], access_type="offline")

    tokens = flow.tokens(["openid", "email", GMAIL_RO])

    assert tokens["scope"].split() == ["openid", "email", GMAIL_RO]


def test_include_granted_scopes_ignores_dead_grants(flow):
    earlier = flow.tokens(["openid", SHEETS_RO])  # online: no refresh token
    AccessToken.objects.filter(token_checksum__isnull=False).update(
        expires=timezone.now() - timedelta(seconds=1)
    )

    tokens = flow.tokens(["openid", GMAIL_RO], include_granted_scopes="true")

    assert SHEETS_RO not in tokens["scope"].split()
    assert earlier["scope"] != tokens["scope"]


def test_refresh_without_rotation_is_googles(flow, user):
    first = flow.tokens(["openid", SHEETS_RO], access_type="offline")

    response = flow.refresh(first["refresh_token"])

    assert response.status_code == 200
    refreshed = response.json()
    assert "refresh_token" not in refreshed
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["scope"] == first["scope"] and refreshed["expires_in"] == 3600
    # Both access tokens work until they expire; the refresh token stays the same.
    for token in (first["access_token"], refreshed["access_token"]):
        assert flow.client.get(SHEET_URL, **bearer(token)).status_code == 200
    assert flow.refresh(first["refresh_token"]).status_code == 200
    assert RefreshToken.objects.get().revoked is None
    counts = SandboxTokenRequest.objects.filter(grant_type="refresh_token", outcome="ok")
    assert counts.count() == 2
    assert set(counts.values_list("user", flat=True)) == {user.pk}


def test_refresh_with_rotation_and_reuse_protection(flow):
    rotating = {**oauth2_settings.user_settings, "ROTATE_REFRESH_TOKEN": True}
    first = flow.tokens(["openid", SHEETS_RO], access_type="offline")

    with override_settings(OAUTH2_PROVIDER=rotating):
        rotated = flow.refresh(first["refresh_token"]).json()
        replay = flow.refresh(first["refresh_token"])
        after_replay = flow.refresh(rotated["refresh_token"])

    assert rotated["refresh_token"].startswith("sbx-rt-")
    assert rotated["refresh_token"] != first["refresh_token"]
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # Reusing a rotated refresh token revokes its whole family.
    assert after_replay.status_code == 400
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    outcomes = list(
        SandboxTokenRequest.objects.filter(grant_type="refresh_token")
        .order_by("pk")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["ok", "invalid_grant", "invalid_grant"]


@override_settings(SANDBOX_ACCESS_TOKEN_SECONDS=5)
def test_short_access_token_lifetime(flow):
    before = timezone.now()

    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    refreshed = flow.refresh(tokens["refresh_token"]).json()

    assert tokens["expires_in"] == 5 and refreshed["expires_in"] == 5
    expires = AccessToken.objects.order_by("pk").first().expires
    assert before + timedelta(seconds=5) <= expires <= timezone.now() + timedelta(seconds=5)


def test_token_requests_are_counted_per_grant_type(flow):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    for _ in range(3):
        flow.refresh(tokens["refresh_token"])
    flow.refresh("sbx-rt-unknown")

    rows = SandboxTokenRequest.objects
    assert rows.filter(grant_type="authorization_code").count() == 1
    assert rows.filter(grant_type="refresh_token", outcome="ok").count() == 3
    assert rows.filter(grant_type="refresh_token", outcome="invalid_grant").get().user is None


def test_token_endpoint_needs_the_client_secret(flow):
    pkce = Pkce()
    code = flow.code(["openid", SHEETS_RO], pkce=pkce)

    response = flow.client.post(
        reverse("sandbox:token"),
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": "sandbox-google-client",
            "client_secret": "wrong",
            "code_verifier": pkce.verifier,
        },
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert SandboxTokenRequest.objects.get().outcome == "invalid_client"


def test_consent_needs_the_csrf_token(user, sandbox_app):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = authorize_url(["openid", SHEETS_RO], Pkce())
    page = client.get(url)

    response = client.post(url, consent_data(page.context["form"]))

    assert response.status_code == 403
    assert not Grant.objects.exists()


def test_unregistered_redirect_uri_is_never_followed(flow):
    url = authorize_url(["openid", SHEETS_RO], Pkce(), redirect_uri="https://evil.example/cb")

    response = flow.client.get(url)

    assert response.status_code == 400
    assert "Sandbox — plays Google" in response.content.decode()
    assert "evil.example" not in response.get("Location", "")
    assert not Grant.objects.exists()
