"""Discord's OAuth2 (``discord.identify``, ``discord.guilds``), configured from the
settings, through Connect, refresh (Discord rotates the refresh token on every refresh),
``invalid_grant`` and Disconnect. Discord is faked at the HTTP edge with the answers its
documentation shows (https://discord.com/developers/docs/topics/oauth2): the fake checks
the client's HTTP Basic authentication, the PKCE S256 verifier against the challenge of
the authorization request, and refuses a refresh token once it has been rotated.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from integrations.connections.credentials import connection_credentials
from integrations.connections.store import connection_refresh_token
from integrations.errors import ReauthorizationRequiredError
from integrations.models import AuditEvent, Connection
from integrations.providers import client as http
from integrations.providers import registry

from .discord_fakes import CLIENT_ID, discord_connect, discord_fake

pytestmark = pytest.mark.django_db

CALLBACK = reverse("integrations:oauth_callback", kwargs={"provider_id": "discord"})


@pytest.fixture
def discord(settings):
    yield from discord_fake(settings)


def expire(conn: Connection) -> Connection:
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    return conn


def test_the_page_offers_discord_with_its_two_capabilities(alice_client, discord):
    resp = alice_client.get(reverse("integrations:page"))
    page = resp.content.decode()
    # Connect's form POST is answered with a redirect to Discord: the policy allows it.
    form_action = next(d for d in resp["Content-Security-Policy"].split(";") if "form-action" in d)
    assert "https://discord.com" in form_action.split()
    assert 'id="provider-discord"' in page
    assert 'value="discord.identify"' in page and 'value="discord.guilds"' in page
    # The bot token stays a secret the user brings, never an OAuth permission.
    assert 'value="discord.bot"' not in page
    assert "discord" in registry.connectable_ids()


def test_connect_asks_discord_with_pkce_and_stores_the_granted_scopes(alice_client, alice, discord):
    params = discord_connect(alice_client, discord, ["discord.guilds"])

    assert params["_url"] == "https://discord.com/oauth2/authorize"
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == "http://127.0.0.1:8000" + CALLBACK
    assert sorted(params["scope"].split(" ")) == ["guilds", "identify"]  # space-separated
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 16
    assert params["prompt"] == "consent"
    assert "access_type" not in params and "include_granted_scopes" not in params

    (exchange,) = discord.token_requests
    assert exchange["grant_type"] == "authorization_code"
    assert "client_secret" not in exchange  # HTTP Basic, checked by the fake
    conn = Connection.objects.get(user=alice, provider="discord")
    assert (conn.account_uid, conn.account_email) == ("80351110224678912", "nelly")
    assert conn.scopes == ["guilds", "identify"]
    assert conn.oauth_client_id is None
    cat = registry.catalogue()
    assert cat.effective_capabilities(cat.granted_capabilities("discord", conn.scopes)) == [
        "discord.guilds"
    ]
    assert "Connected Discord (nelly)" in params["_messages"]


def test_a_replayed_state_is_refused(alice_client, alice, discord):
    params = discord_connect(alice_client, discord, ["discord.identify"])
    Connection.objects.all().delete()
    again = alice_client.get(CALLBACK, {"state": params["state"], "code": "code-replayed"})
    assert again.status_code == 400
    assert not Connection.objects.exists()
    assert len(discord.token_requests) == 1  # no second exchange


def test_refresh_stores_the_rotated_refresh_token_and_uses_it_next(alice_client, alice, discord):
    discord_connect(alice_client, discord, ["discord.guilds"])
    conn = Connection.objects.get(user=alice, provider="discord")
    first = connection_refresh_token(connection=conn)
    assert first

    creds = connection_credentials(connection=expire(conn))
    conn.refresh_from_db()
    second = connection_refresh_token(connection=conn)
    assert discord.token_requests[1]["refresh_token"] == first
    assert second not in (None, "", first)
    assert creds.access_token in discord.live_access
    assert conn.status == Connection.Status.ACTIVE
    assert conn.expires_at is not None and conn.expires_at > timezone.now() + timedelta(days=6)

    # The old refresh token is dead at Discord: refreshing with it fails there...
    with pytest.raises(ReauthorizationRequiredError):
        http.refresh_grant(registry.provider_config("discord"), first, now=timezone.now())
    # ...and our next refresh sends the rotated one, and works.
    connection_credentials(connection=expire(conn))
    assert discord.token_requests[-1]["refresh_token"] == second
    conn.refresh_from_db()
    assert conn.status == Connection.Status.ACTIVE
    assert connection_refresh_token(connection=conn) not in (first, second)


def test_invalid_grant_means_reconnect(alice_client, alice, discord):
    discord_connect(alice_client, discord, ["discord.identify"])
    conn = Connection.objects.get(user=alice, provider="discord")
    discord.live_refresh.clear()  # the user removed the app in Discord's Authorized Apps

    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=expire(conn))
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.last_error_code == "invalid_grant"
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "Your Discord connection nelly needs reconnecting." in page


def test_disconnect_revokes_at_discord(alice_client, alice, discord):
    discord_connect(alice_client, discord, ["discord.guilds"])
    conn = Connection.objects.get(user=alice, provider="discord")
    refresh = connection_refresh_token(connection=conn)

    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))

    assert discord.revoked == [{"token": refresh, "token_type_hint": "refresh_token"}]
    assert not Connection.objects.filter(pk=conn.pk).exists()
    assert "Discord revoked the access" in " ".join(str(m) for m in get_messages(resp.wsgi_request))
    event = AuditEvent.objects.get(kind="revocation")
    assert event.ok and event.provider == "discord"


def test_without_a_client_discord_is_not_offered(alice_client, settings):
    settings.DISCORD_CLIENT_ID = ""
    settings.DISCORD_CLIENT_SECRET = ""
    resp = alice_client.get(reverse("integrations:page"))
    page = resp.content.decode()
    assert "https://discord.com" not in resp["Content-Security-Policy"]
    assert 'id="provider-discord"' not in page
    assert "discord" not in registry.connectable_ids()
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "discord"}),
        {"capabilities": ["discord.identify"]},
    )
    assert resp.status_code == 302 and resp["Location"] == reverse("integrations:page")
    assert "Discord is not set up on this server yet" in " ".join(
        str(m) for m in get_messages(resp.wsgi_request)
    )


def test_staff_cannot_define_a_provider_named_discord():
    from integrations.core.provider_definitions import DefinitionError, validate_definition

    with pytest.raises(DefinitionError, match="built in"):
        validate_definition({"slug": "discord"})
