"""The provider client's compliance hooks: a quirk is applied to its provider's answers
only. Providers are faked at the HTTP edge (``responses``)."""

from __future__ import annotations

import pytest
import responses

from integrations.core.provider_definitions import PRESETS
from integrations.models import ProviderDefinition
from integrations.providers import client as http
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret

pytestmark = pytest.mark.django_db

SLACK_USERINFO = "https://slack.com/api/users.identity"
SLACK_ERROR = {"ok": False, "error": "invalid_auth"}


def define(slug: str, preset: str, **fields: object) -> None:
    definition = ProviderDefinition.objects.create(
        **{**PRESETS[preset], "slug": slug, **fields},
        client_id=f"{slug}-client",
        enabled=True,
        last_check_ok=True,
    )
    provider_definition_set_secret(definition=definition, secret=f"{slug}-secret")
    registry.definitions_changed()


def test_the_slack_quirk_comes_with_slacks_endpoints_whatever_the_slug():
    define("acme-chat", "slack")
    define("github", "github")
    assert registry.provider_config("acme-chat").quirks == ("slack",)
    assert registry.provider_config("github").quirks == ()
    assert registry.provider_config("google").quirks == ()


def test_slacks_error_with_http_200_is_an_error_for_slack_only():
    define("acme-chat", "slack", userinfo_url=SLACK_USERINFO)
    define("github", "github")
    slack, github = registry.provider_config("acme-chat"), registry.provider_config("github")
    with responses.RequestsMock() as rsps:
        rsps.get(SLACK_USERINFO, json=SLACK_ERROR)
        rsps.get(PRESETS["github"]["userinfo_url"], json=SLACK_ERROR)
        assert http.fetch_userinfo(slack, "xoxp-1") is None
        assert http.fetch_userinfo(github, "gho_1") == SLACK_ERROR
    # The callback's token response (allauth read it: HTTP 200), for providers that
    # name the account there.
    assert http.accepted_token_response(slack, SLACK_ERROR) is None
    assert http.accepted_token_response(github, SLACK_ERROR) == SLACK_ERROR
    named = {"ok": True, "access_token": "xoxb-1", "team": {"id": "T0TEAM"}}
    assert http.accepted_token_response(slack, named) == named
