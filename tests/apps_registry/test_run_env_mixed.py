"""A manifest mixing google.*, x.*, discord.bot, gcp.* and secrets: readiness and the
run environment, with X defined as data (its preset), Discord's bot token as a
checked secret, and the GCP token minted at a local token endpoint."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from apps_registry import services
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.core.provider_definitions import PRESETS
from integrations.errors import InvalidSecretError
from integrations.models import AppAuthorization, ProviderDefinition
from integrations.providers.definitions import provider_definition_set_secret
from integrations.secrets import secret_set
from integrations.service_accounts import service_account_key_set
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory
from tests.integrations.gcp_fakes import TokenEndpoint, key_json, rsa_key, serve

pytestmark = pytest.mark.django_db

MIXED = """\
namespace: acme
name: everything
integrations:
  - key: google.sheets.readonly
    description: Read the sheet
  - key: x.tweet.write
    description: Post the summary
  - key: discord.bot
    description: Tell the channel
  - key: gcp.vertex_ai
    description: Summarise with Gemini
  - key: google.sa
    description: Write to the shared drive
    optional: true
secrets:
  - key: FAL_KEY
    description: fal.ai
"""
BOT_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQz.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture
def gcp_endpoint():
    cache.clear()
    endpoint = TokenEndpoint(public_key=rsa_key().public_key())
    server = serve(endpoint)
    yield endpoint
    server.shutdown()
    server.server_close()
    cache.clear()


@pytest.fixture
def x_provider():
    definition = ProviderDefinition.objects.create(
        **{k: v for k, v in PRESETS["x"].items()}, client_id="x-client", enabled=True
    )
    provider_definition_set_secret(definition=definition, secret="x-secret")
    return definition


def ask(token: str, **body: object):
    return Client().post(
        "/api/v1/run-environments/",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_readiness_and_env_across_providers(alice, bob, x_provider, gcp_endpoint):
    services.manifest_upload(user=alice, text=MIXED)
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets.readonly"])

    body = ask(runner, user="bob@example.com", app="acme/everything").json()
    missing = {(m["key"], m["reason"]) for m in body["missing"]}
    assert missing == {
        ("x.tweet.write", "not_connected"),
        ("discord.bot", "needs_credential"),
        ("gcp.vertex_ai", "needs_credential"),
        ("FAL_KEY", "secret_not_set"),
    }
    (connect_x,) = [a for a in body["actions"] if a["provider"] == "x"]
    assert connect_x["kind"] == "connect" and connect_x["capabilities"] == ["x.tweet.write"]

    ConnectionFactory.create(
        user=bob,
        provider="x",
        scopes=["tweet.read", "tweet.write", "users.read", "offline.access"],
    )
    with pytest.raises(InvalidSecretError):
        secret_set(user=bob, key="DISCORD_BOT_TOKEN", value="not-a-bot-token")
    secret_set(user=bob, key="DISCORD_BOT_TOKEN", value=BOT_TOKEN)
    secret_set(user=bob, key="FAL_KEY", value="fal-value")
    service_account_key_set(
        user=bob,
        purpose="gcp",
        key_text=key_json(token_uri=gcp_endpoint.url, key=rsa_key()),
        project_number="123456789012",
    )

    # Everything is there, nothing is allowed yet (per_app): no token, no credential,
    # no secret, and each required item is named.
    resp = ask(runner, user="bob@example.com", app="acme/everything")
    assert resp.status_code == 409, resp.content
    assert {(m["key"], m["reason"]) for m in resp.json()["missing"]} == {
        ("google.sheets.readonly", "not_allowed"),
        ("x.tweet.write", "not_allowed"),
        ("discord.bot", "not_allowed"),
        ("gcp.vertex_ai", "not_allowed"),
        ("FAL_KEY", "not_allowed"),
    }
    assert BOT_TOKEN not in resp.content.decode() and "fal-value" not in resp.content.decode()
    assert gcp_endpoint.requests == 0  # no token was minted for an app not allowed
    allow_declared(bob, "acme/everything")

    resp = ask(runner, user="bob@example.com", app="acme/everything")
    assert resp.status_code == 200, resp.content
    env = resp.json()["env"]
    assert set(env) == {
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
        "GOOGLE_OAUTH_CREDENTIALS",
        "X_ACCESS_TOKEN",
        "DISCORD_BOT_TOKEN",
        "GCP_ACCESS_TOKEN",
        "GCP_PROJECT_NUMBER",
        "FAL_KEY",
    }  # the optional google.sa is not set up: not there
    assert env["DISCORD_BOT_TOKEN"] == BOT_TOKEN
    assert env["GCP_PROJECT_NUMBER"] == "123456789012"
    assert env["X_ACCESS_TOKEN"].startswith("ya29.factory-access-")  # the X connection's
    assert env["X_ACCESS_TOKEN"] != env["GOOGLE_OAUTH_ACCESS_TOKEN"]
    assert gcp_endpoint.requests == 1
    expires = resp.json()["expires_at"]
    assert expires is not None and expires <= (timezone.now() + timedelta(hours=2)).isoformat()

    # The optional google.sa, set up now, is left out until allowed.
    service_account_key_set(
        user=bob, purpose="google_sa", key_text=key_json(token_uri=gcp_endpoint.url, key=rsa_key())
    )
    AppAuthorization.objects.filter(user=bob, key="google.sa").delete()
    assert (
        "GOOGLE_SA_CREDENTIALS"
        not in ask(runner, user="bob@example.com", app="acme/everything").json()["env"]
    )
    allow_declared(bob, "acme/everything")
    assert (
        "GOOGLE_SA_CREDENTIALS"
        in ask(runner, user="bob@example.com", app="acme/everything").json()["env"]
    )


GCP_ONLY = """\
namespace: acme
name: vertex
integrations:
  - key: gcp.vertex_ai
    description: Summarise with Gemini
"""


def test_a_gcp_key_google_refuses_asks_for_a_new_key_not_a_500(alice, bob, gcp_endpoint):
    services.manifest_upload(user=alice, text=GCP_ONLY)
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    service_account_key_set(
        user=bob,
        purpose="gcp",
        key_text=key_json(token_uri=gcp_endpoint.url, key=rsa_key()),
        project_number="123456789012",
    )
    allow_declared(bob, "acme/vertex")
    # The key or its service account was deleted at Google.
    gcp_endpoint.script = [(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})]
    resp = ask(runner, user=str(bob.pk), app="acme/vertex")
    assert resp.status_code == 409, resp.content
    body = resp.json()
    assert [(m["key"], m["reason"]) for m in body["missing"]] == [("gcp.vertex_ai", "key_refused")]
    (upload,) = body["actions"]
    assert upload["kind"] == "upload_key"
    assert upload["url"].endswith("/settings/secrets/service-accounts/")
    assert "Invalid JWT" not in resp.content.decode()
    # Recorded: readiness now says the key is missing, and Google is not asked again.
    again = ask(runner, user=str(bob.pk), app="acme/vertex")
    assert again.status_code == 409
    assert [(m["key"], m["reason"]) for m in again.json()["missing"]] == [
        ("gcp.vertex_ai", "needs_credential")
    ]
    assert gcp_endpoint.requests == 1


X_ONLY = """\
namespace: acme
name: poster
integrations:
  - key: x.tweet.write
    description: Post the summary
"""


def test_a_provider_taking_users_own_clients_is_connectable_without_a_platform_client(alice, bob):
    # "Your own OAuth app" mode: no platform client; each user brings theirs.
    ProviderDefinition.objects.create(**PRESETS["x"], enabled=True)
    services.manifest_upload(user=alice, text=X_ONLY)
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    body = ask(runner, user=str(bob.pk), app="acme/poster").json()
    assert [(m["key"], m["reason"]) for m in body["missing"]] == [
        ("x.tweet.write", "not_connected")
    ]
    (connect,) = body["actions"]
    assert connect["kind"] == "connect" and connect["provider"] == "x"


GCP_OPTIONAL = """\
namespace: acme
name: maybe-vertex
integrations:
  - key: google.sheets.readonly
    description: Read the sheet
  - key: gcp.vertex_ai
    description: Summarise with Gemini, if set up
    optional: true
"""


def test_a_refused_optional_gcp_key_leaves_gcp_out_and_the_run_goes_on(alice, bob, gcp_endpoint):
    services.manifest_upload(user=alice, text=GCP_OPTIONAL)
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets.readonly"])
    service_account_key_set(
        user=bob,
        purpose="gcp",
        key_text=key_json(token_uri=gcp_endpoint.url, key=rsa_key()),
        project_number="123456789012",
    )
    allow_declared(bob, "acme/maybe-vertex")
    gcp_endpoint.script = [(400, {"error": "invalid_grant"})]
    resp = ask(runner, user=str(bob.pk), app="acme/maybe-vertex")
    assert resp.status_code == 200, resp.content
    assert "GCP_ACCESS_TOKEN" not in resp.json()["env"]
    assert "GOOGLE_OAUTH_ACCESS_TOKEN" in resp.json()["env"]
    # Recorded: the next run does not send the refused key to Google again.
    assert ask(runner, user=str(bob.pk), app="acme/maybe-vertex").status_code == 200
    assert gcp_endpoint.requests == 1


X_ONLY = """\
namespace: acme
name: poster
integrations:
  - key: x.tweet.write
    description: Post the summary
"""


def test_a_provider_definition_deleted_under_its_connections_is_an_outage_not_a_404(
    alice, bob, x_provider
):
    """Staff deleted the X definition; Bob's X connection remains, and x.* stays in the
    built-in catalogue: the run cannot be given a token, and says so (503), rather than
    a 404 that means "no such user, app or version"."""
    services.manifest_upload(user=alice, text=X_ONLY)
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    conn = ConnectionFactory.create(
        user=bob, provider="x", scopes=["tweet.read", "tweet.write", "users.read", "offline.access"]
    )
    allow_declared(bob, "acme/poster")
    x_provider.delete()

    resp = ask(runner, user="bob@example.com", app="acme/poster")

    assert resp.status_code == 503, resp.content
    body = resp.json()
    assert (body["error"], body["provider"], body["connection_id"], body["reason"]) == (
        "provider_unavailable",
        "x",
        conn.pk,
        "unknown_provider",
    )
