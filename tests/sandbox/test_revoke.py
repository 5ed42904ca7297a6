"""Revocation removes the whole grant, as Google's does, and is recorded without
the token."""

from __future__ import annotations

import hashlib

import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from integrations.sandbox.models import SandboxRevocation

from .conftest import GMAIL_RO, SHEETS_RO, bearer

pytestmark = pytest.mark.django_db

SHEET_URL = "/sandbox/google/v4/spreadsheets/s/values/A1:B3"


def test_revoking_the_refresh_token_removes_the_grant(flow, user):
    first = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    second = flow.tokens(["openid", GMAIL_RO], access_type="offline")

    response = flow.revoke(first["refresh_token"], "refresh_token")

    assert response.status_code == 200
    revocation = SandboxRevocation.objects.get()
    assert revocation.user == user
    assert revocation.client_id == "sandbox-google-client"
    assert revocation.token_type_hint == "refresh_token"
    assert revocation.token_sha256 == hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    assert first["refresh_token"] not in str(revocation) + repr(revocation)
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    for tokens in (first, second):
        assert flow.client.get(SHEET_URL, **bearer(tokens["access_token"])).status_code == 401
        assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_access_token_removes_the_refresh_token_too(flow):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline")

    response = flow.revoke(tokens["access_token"])

    assert response.status_code == 200
    assert SandboxRevocation.objects.get().token_type_hint == ""
    assert flow.refresh(tokens["refresh_token"]).status_code == 400


def test_revoking_an_unknown_or_revoked_token_is_an_error(flow):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    assert flow.revoke(tokens["refresh_token"]).status_code == 200

    again = flow.revoke(tokens["refresh_token"])

    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_token",
        "error_description": "Token expired or revoked",
    }
    assert SandboxRevocation.objects.count() == 1


def test_revoking_needs_client_authentication(flow):
    tokens = flow.tokens(["openid", SHEETS_RO], access_type="offline")

    response = flow.revoke(tokens["refresh_token"], client_secret="wrong")

    assert response.status_code == 401
    assert not SandboxRevocation.objects.exists()
    assert RefreshToken.objects.get().revoked is None


def test_other_users_grants_survive(flow, client, django_user_model):
    mine = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    grace = django_user_model.objects.create_user(username="grace", email="grace@example.com")
    client.force_login(grace)
    theirs = flow.tokens(["openid", SHEETS_RO], access_type="offline")

    flow.revoke(mine["refresh_token"])

    assert flow.client.get(SHEET_URL, **bearer(theirs["access_token"])).status_code == 200
    assert RefreshToken.objects.get(revoked__isnull=True).user == grace
