"""The provider client's compliance hooks: a quirk is applied to its provider's answers
only. Providers are faked at the HTTP edge (``responses``)."""

from __future__ import annotations

import threading

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


def _in_a_new_thread(fn):
    """``fn()`` run in a thread of its own, so with a session of its own (one per thread)."""
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join(30)
    return out[0]


def test_the_environments_proxy_settings_apply_and_are_read_once_per_host(monkeypatch):
    """requests reads HTTPS_PROXY and NO_PROXY on every request; the session reads them
    once per host (and thread), with the same result."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    def requests_made() -> list[dict]:
        with responses.RequestsMock() as rsps:
            rsps.add(responses.GET, "https://a.example/x", status=204)
            rsps.add(responses.GET, "https://direct.example/x", status=204)
            assert http.reach("GET", "https://a.example/x").status == 204
            assert http.reach("GET", "https://direct.example/x").status == 204
            # Changed while the process runs: this thread's session keeps what it read.
            monkeypatch.setenv("HTTPS_PROXY", "http://other-proxy.example:3128")
            assert http.reach("GET", "https://a.example/x").status == 204
            return [call.request.req_kwargs for call in rsps.calls]  # type: ignore[attr-defined]

    first, direct, again = _in_a_new_thread(requests_made)
    assert first["proxies"].get("https") == "http://proxy.example:3128"
    assert "https" not in direct["proxies"]
    assert again["proxies"].get("https") == "http://proxy.example:3128"
    assert first["verify"] is True and first["timeout"] is not None
