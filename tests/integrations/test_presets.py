"""The Slack, GitHub and Notion presets, as staff add them, through Connect, refresh and
Disconnect. Their servers are faked at the HTTP edge with the answers their
documentation shows (no network here): what these tests prove is that the presets'
endpoints, separators, client authentication and identity fields fit those answers.

- Slack: https://api.slack.com/methods/oauth.v2.access (errors answered with HTTP 200
  and ``{"ok": false}``; token rotation), https://api.slack.com/methods/auth.revoke
- GitHub: https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
  (asked with spaces, answers ``scope`` with commas; no RFC 7009 revocation)
- Notion: https://developers.notion.com/docs/authorization (HTTP Basic, ``owner=user``,
  the workspace named in the token response)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.connections.credentials import connection_credentials
from integrations.core.provider_definitions import PRESETS
from integrations.errors import ReauthorizationRequiredError
from integrations.models import AuditEvent, Connection, ProviderDefinition
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret

pytestmark = pytest.mark.django_db

Answer = Callable[[dict[str, str]], dict[str, Any]]


class FakeServer:
    """A provider's token, userinfo and revocation endpoints, from its preset's URLs."""

    def __init__(self, rsps: responses.RequestsMock, preset: dict[str, Any]) -> None:
        self.token_requests: list[tuple[dict[str, str], str]] = []
        self.revoked: list[str] = []
        self.answers: list[Answer] = []
        rsps.add_callback(responses.POST, preset["token_url"], callback=self._token)
        if preset["userinfo_url"]:
            rsps.add_callback(responses.GET, preset["userinfo_url"], callback=self._userinfo)
        if preset["revocation_url"]:
            rsps.add_callback(responses.POST, preset["revocation_url"], callback=self._revoke)
        self.userinfo: dict[str, Any] = {}
        self.revoke_answer: dict[str, Any] = {"ok": True}

    def _token(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.token_requests.append((form, request.headers.get("Authorization", "")))
        body = self.answers.pop(0)(form)
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    def _userinfo(self, request):
        return (200, {"Content-Type": "application/json"}, json.dumps(self.userinfo))

    def _revoke(self, request):
        self.revoked.append(parse_qs(request.body)["token"][0])
        return (200, {"Content-Type": "application/json"}, json.dumps(self.revoke_answer))


def add_preset(slug: str) -> dict[str, Any]:
    preset = PRESETS[slug]
    definition = ProviderDefinition.objects.create(
        **preset, client_id=f"{slug}-client", enabled=True, last_check_ok=True
    )
    provider_definition_set_secret(definition=definition, secret=f"{slug}-secret")
    registry.definitions_changed()
    return preset


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def connect(client: Client, slug: str, capabilities: list[str]) -> dict[str, str]:
    """Connect: the authorization request's parameters; the callback is followed."""
    resp = client.post(
        reverse("integrations:connect", kwargs={"provider_id": slug}),
        {"capabilities": capabilities},
    )
    assert resp.status_code == 302, resp.content
    params = {k: v[0] for k, v in parse_qs(urlsplit(resp["Location"]).query).items()}
    done = client.get(
        reverse("integrations:oauth_callback", kwargs={"provider_id": slug}),
        {"state": params["state"], "code": "the-code"},
    )
    assert done.status_code == 302
    return params


def basic(slug: str) -> str:
    return "Basic " + base64.b64encode(f"{slug}-client:{slug}-secret".encode()).decode()


def expire(conn: Connection) -> Connection:
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    return conn


def test_slack(alice_client, alice, rsps):
    preset = add_preset("slack")
    server = FakeServer(rsps, preset)
    server.answers.append(
        lambda form: {
            "ok": True,
            "access_token": "xoxb-1",
            "token_type": "bot",
            "scope": "chat:write,channels:read",
            "bot_user_id": "U0BOT",
            "app_id": "A0APP",
            "team": {"id": "T0TEAM", "name": "Acme HQ"},
            "authed_user": {"id": "U0ADA"},
            "refresh_token": "xoxe-1-r1",
            "expires_in": 43200,
        }
    )
    params = connect(alice_client, "slack", ["slack.chat.write", "slack.channels.read"])

    assert urlsplit(preset["authorize_url"]).path == "/oauth/v2/authorize"
    assert sorted(params["scope"].split(",")) == ["channels:read", "chat:write"]
    assert params["code_challenge_method"] == "S256"
    form, auth = server.token_requests[0]
    assert form["client_id"] == "slack-client" and form["client_secret"] == "slack-secret"
    assert auth == ""  # client_secret_post
    conn = Connection.objects.get(user=alice, provider="slack")
    assert (conn.account_uid, conn.account_email) == ("T0TEAM", "Acme HQ")
    assert conn.scopes == ["channels:read", "chat:write"]

    # Rotation: the new refresh token is kept.
    server.answers.append(
        lambda form: {
            "ok": True,
            "access_token": "xoxb-2",
            "refresh_token": "xoxe-1-r2",
            "expires_in": 43200,
            "token_type": "bot",
        }
    )
    assert connection_credentials(connection=expire(conn)).access_token == "xoxb-2"
    form, _ = server.token_requests[1]
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "xoxe-1-r1"

    # Slack's errors come with HTTP 200: a dead refresh token still means reconnect.
    server.answers.append(lambda form: {"ok": False, "error": "invalid_refresh_token"})
    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=expire(conn))
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect"

    # Disconnect revokes at auth.revoke with the current (rotated) token.
    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert server.revoked == ["xoxe-1-r2"]


def test_slack_error_at_connect_is_shown_not_stored(alice_client, alice, rsps):
    preset = add_preset("slack")
    server = FakeServer(rsps, preset)
    server.answers.append(lambda form: {"ok": False, "error": "invalid_code"})
    connect(alice_client, "slack", ["slack.chat.write"])
    assert not Connection.objects.filter(user=alice).exists()


def test_github(alice_client, alice, rsps):
    preset = add_preset("github")
    server = FakeServer(rsps, preset)
    server.userinfo = {"id": 583231, "login": "octocat", "name": "The Octocat"}
    server.answers.append(
        lambda form: {"access_token": "gho_1", "token_type": "bearer", "scope": "read:user,repo"}
    )
    params = connect(alice_client, "github", ["github.user.read", "github.repo"])

    assert sorted(params["scope"].split(" ")) == ["read:user", "repo"]
    form, _ = server.token_requests[0]
    assert form["client_id"] == "github-client" and form["code"] == "the-code"
    conn = Connection.objects.get(user=alice, provider="github")
    assert (conn.account_uid, conn.account_email) == ("583231", "octocat")
    # Asked with spaces, answered with commas: both capabilities are granted.
    assert conn.scopes == ["read:user", "repo"]
    assert conn.expires_at is None and not conn.has_refresh_token  # OAuth app tokens

    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert not Connection.objects.filter(pk=conn.pk).exists()
    assert "offers no way to revoke" in [str(m) for m in get_messages(resp.wsgi_request)][-1]


def test_notion(alice_client, alice, rsps):
    preset = add_preset("notion")
    server = FakeServer(rsps, preset)
    server.answers.append(
        lambda form: {
            "access_token": "ntn_1",
            "token_type": "bearer",
            "bot_id": "b-1",
            "workspace_id": "w-1",
            "workspace_name": "Ada's Notion",
            "workspace_icon": None,
            "owner": {"type": "user", "user": {"object": "user", "id": "u-1"}},
            "duplicated_template_id": None,
            "refresh_token": "nrt_1",
        }
    )
    params = connect(alice_client, "notion", ["notion.workspace"])

    assert params["owner"] == "user"
    _, auth = server.token_requests[0]
    assert auth == basic("notion")  # HTTP Basic client authentication
    conn = Connection.objects.get(user=alice, provider="notion")
    assert (conn.account_uid, conn.account_email) == ("b-1", "Ada's Notion")

    server.answers.append(lambda form: {"access_token": "ntn_2", "token_type": "bearer"})
    assert connection_credentials(connection=expire(conn)).access_token == "ntn_2"
    form, auth = server.token_requests[1]
    assert form["refresh_token"] == "nrt_1" and auth == basic("notion")


def test_slack_refusing_a_revocation_with_http_200_is_a_failed_revocation(alice_client, rsps):
    """auth.revoke answers errors with HTTP 200 and ``{"ok": false}``: not revoked."""
    preset = add_preset("slack")
    server = FakeServer(rsps, preset)
    server.answers.append(
        lambda form: {
            "ok": True,
            "access_token": "xoxb-1",
            "token_type": "bot",
            "scope": "chat:write",
            "team": {"id": "T0TEAM", "name": "Acme HQ"},
            "refresh_token": "xoxe-1-r1",
            "expires_in": 43200,
        }
    )
    connect(alice_client, "slack", ["slack.chat.write"])
    conn = Connection.objects.get(provider="slack")
    server.revoke_answer = {"ok": False, "error": "invalid_auth"}

    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))

    assert server.revoked
    event = AuditEvent.objects.get(kind="revocation")
    assert not event.ok and event.error_code == "invalid_auth"
    assert "did not confirm the revocation (invalid_auth)" in " ".join(
        str(m) for m in get_messages(resp.wsgi_request)
    )
