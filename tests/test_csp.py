"""The Content-Security-Policy's form-action names where Connect may lead: the
authorization endpoints of Google and of every enabled provider staff defined
(config/csp.py); only pages get that longer policy."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import ProviderDefinition
from integrations.providers import registry

pytestmark = pytest.mark.django_db


def form_action(response) -> list[str]:
    directives = dict(
        d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";")
    )
    return directives["form-action"].split()


def test_pages_admit_the_authorization_endpoints_of_enabled_providers(alice_client, settings):
    settings.GOOGLE_OAUTH_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
    ProviderDefinition.objects.create(
        slug="acme",
        name="Acme",
        enabled=True,
        authorize_url="https://auth.acme.example:8443/oauth/authorize",
        token_url="https://auth.acme.example:8443/oauth/token",
    )
    ProviderDefinition.objects.create(
        slug="later",
        name="Later",
        enabled=False,
        authorize_url="https://later.example/authorize",
        token_url="https://later.example/token",
    )
    registry.definitions_changed()

    resp = alice_client.get(reverse("integrations:page"))

    assert resp.status_code == 200
    assert form_action(resp) == [
        "'self'",
        "https://accounts.google.com",
        "https://auth.acme.example:8443",
    ]


def test_json_answers_keep_the_plain_policy(client):
    resp = client.get("/api/v1/no-such-thing/")
    assert resp["Content-Type"] == "application/json"
    assert form_action(resp) == ["'self'"]


def test_without_a_policy_no_header_is_sent(client, settings):
    settings.SECURE_CSP = {}
    resp = client.get(reverse("account_login"))
    assert resp.status_code == 200
    assert "Content-Security-Policy" not in resp
    assert "camera=()" in resp["Permissions-Policy"]
