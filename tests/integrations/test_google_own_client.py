"""Users' own Google OAuth client ("your own OAuth app"), per
``INTEGRATIONS_GOOGLE_USER_CLIENTS``: ``allowed`` (the Integrations page takes a client
ID and secret; that user's Connect, refreshes and Disconnect use it), ``required``
(Connect waits until the user has one) and ``off`` (no form; a posted one is refused).
Google is faked at the HTTP edge (``FakeGoogle``), here also checking which client
authenticates each token and revocation request."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.checks import google_user_clients_check
from integrations.connections.credentials import connection_credentials
from integrations.core import crypto
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import AuditEvent, Connection, Event, UserOAuthClient
from integrations.providers import registry

from .fakes import FakeGoogle

pytestmark = pytest.mark.django_db

CALLBACK = reverse("integrations:oauth_callback", kwargs={"provider_id": "google"})
REDIRECT_URI = "http://127.0.0.1:8000" + CALLBACK
OWN_ID = "1234-alice.apps.googleusercontent.com"
OWN_SECRET = "GOCSPX-alice-very-secret"
SET = reverse("integrations:own_client_set", kwargs={"provider_id": "google"})
CONNECT = reverse("integrations:connect", kwargs={"provider_id": "google"})


@dataclass
class FakeGoogleClients(FakeGoogle):
    """``FakeGoogle`` that knows its OAuth clients: a token or revocation request that
    does not authenticate as one of them is refused (``invalid_client``), as Google does;
    refresh grants are answered (Google sends no new refresh token)."""

    clients: dict[str, str] = field(default_factory=dict)
    # (grant type or "revoke", client_id) of every request that authenticated.
    used: list[tuple[str, str]] = field(default_factory=list)

    def _client(self, request) -> str | None:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        cid = form.get("client_id", "")
        return cid if cid and self.clients.get(cid) == form.get("client_secret") else None

    def _token(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        cid = self._client(request)
        if cid is None:
            return (401, {}, json.dumps({"error": "invalid_client"}))
        self.used.append((form["grant_type"], cid))
        if form["grant_type"] == "refresh_token":
            if form["refresh_token"] not in self.issued:
                return (400, {}, json.dumps({"error": "invalid_grant"}))
            access = "ya29.fake-" + secrets.token_urlsafe(24)
            self.issued.append(access)
            body = {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}
            return (200, {"Content-Type": "application/json"}, json.dumps(body))
        return super()._token(request)

    def _revoke(self, request):
        cid = self._client(request)
        if cid is None:
            return (401, {}, json.dumps({"error": "invalid_client"}))
        self.used.append(("revoke", cid))
        return super()._revoke(request)


@pytest.fixture
def google():
    platform = registry.provider_config("google")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGoogleClients(
            rsps, clients={platform.client_id: platform.client_secret, OWN_ID: OWN_SECRET}
        )


@pytest.fixture
def allowed(settings):
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = "allowed"


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def start(client: Client, caps: list[str], url: str = CONNECT) -> dict[str, str]:
    resp = client.post(url, {"capabilities": caps})
    assert resp.status_code == 302, resp.content
    assert "state=" in resp["Location"], texts(resp)
    return {k: v[0] for k, v in parse_qs(urlsplit(resp["Location"]).query).items()}


def connect(client: Client, google: FakeGoogle, caps: list[str]) -> dict[str, str]:
    params = start(client, caps)
    done = client.get(CALLBACK, {"state": params["state"], "code": google.authorize(params)})
    assert done.status_code == 302
    return params


def expire(conn: Connection) -> Connection:
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    return conn


def add_own_client(client: Client):
    resp = client.post(SET, {"client_id": OWN_ID, "client_secret": OWN_SECRET})
    assert resp.status_code == 302
    return resp


def test_allowed_the_page_offers_the_own_client_form_with_the_redirect_uri(alice_client, allowed):
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "Use your own Google OAuth client" in page
    assert f'<code class="copy">{REDIRECT_URI}</code>' in page
    assert "Web application" in page  # Google's own words for the client type
    assert f'action="{SET}"' in page
    # The platform's client still connects.
    assert f'action="{CONNECT}"' in page


def test_connect_refresh_and_disconnect_use_the_users_own_client(
    alice_client, alice, allowed, google, caplog, admin_client
):
    caplog.set_level(logging.DEBUG)
    resp = add_own_client(alice_client)
    assert "Saved your own Google client" in " ".join(texts(resp))
    own = UserOAuthClient.objects.get(user=alice, provider="google")
    assert OWN_SECRET.encode() not in bytes(own.client_secret_encrypted)

    params = connect(alice_client, google, ["google.sheets.readonly"])
    assert params["client_id"] == OWN_ID
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["code_challenge_method"] == "S256"
    assert params["access_type"] == "offline"
    assert google.used == [("authorization_code", OWN_ID)]  # authenticated with her secret
    conn = Connection.objects.get(user=alice, provider="google")
    assert conn.oauth_client_id == own.pk
    assert G + "spreadsheets.readonly" in conn.scopes

    connection_credentials(connection=expire(conn))
    assert google.used[-1] == ("refresh_token", OWN_ID)

    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert OWN_ID in page and OWN_SECRET not in page
    for url in (
        reverse("admin:integrations_useroauthclient_changelist"),
        reverse("admin:integrations_useroauthclient_change", args=[own.pk]),
        reverse("admin:integrations_connection_change", args=[conn.pk]),
        reverse("admin:integrations_auditevent_changelist"),
    ):
        assert OWN_SECRET not in admin_client.get(url).content.decode(), url
    assert OWN_SECRET not in repr(list(AuditEvent.objects.values()))
    assert OWN_SECRET not in repr(registry.connection_config(conn))

    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert google.used[-1] == ("revoke", OWN_ID)
    assert not Connection.objects.filter(pk=conn.pk).exists()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert OWN_SECRET not in logs


def test_another_users_client_is_never_used(alice_client, alice, bob, allowed, google):
    add_own_client(alice_client)
    bob_client = Client()
    bob_client.force_login(bob)
    platform = registry.provider_config("google")

    google.sub, google.email = "google-sub-bob", "bob@gmail.example"
    params = connect(bob_client, google, ["google.sheets.readonly"])
    assert params["client_id"] == platform.client_id
    conn = Connection.objects.get(user=bob)
    assert conn.oauth_client_id is None
    connection_credentials(connection=expire(conn))
    assert google.used == [
        ("authorization_code", platform.client_id),
        ("refresh_token", platform.client_id),
    ]
    # Bob can neither see nor remove Alice's client.
    page = bob_client.get(reverse("integrations:page")).content.decode()
    assert OWN_ID not in page
    delete = reverse("integrations:own_client_delete", kwargs={"provider_id": "google"})
    assert bob_client.post(delete).status_code == 404
    assert UserOAuthClient.objects.filter(user=alice).exists()


def test_removing_the_own_client_asks_its_connections_to_reconnect(
    alice_client, alice, allowed, google
):
    add_own_client(alice_client)
    connect(alice_client, google, ["google.sheets.readonly"])
    conn = Connection.objects.get(user=alice)

    resp = alice_client.post(
        reverse("integrations:own_client_delete", kwargs={"provider_id": "google"})
    )
    assert "1 connection(s) made with it need reconnecting" in " ".join(texts(resp))
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT and conn.oauth_client_id is None
    assert conn.last_error_code == "client_removed"
    # Platforms are told, as for any grant that died (the webhook outbox).
    (event,) = Event.objects.filter(type="connection.needs_reconnect")
    assert event.data["connection_id"] == conn.pk and event.data["previous_status"] == "active"
    assert event.data["error_code"] == "client_removed"
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "needs reconnecting" in page

    # Reconnect (allowed mode): through the platform's client now.
    params = start(alice_client, [], url=reverse("integrations:reconnect", kwargs={"id": conn.pk}))
    assert params["client_id"] == registry.provider_config("google").client_id


def test_required_connect_waits_for_the_users_own_client(alice_client, alice, settings, google):
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = "required"
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "first add your own Google app above" in page
    assert f'action="{CONNECT}"' not in page
    assert f'action="{SET}"' in page

    resp = alice_client.post(CONNECT, {"capabilities": ["google.sheets.readonly"]})
    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page") + "#provider-google"
    assert texts(resp) == [
        "To connect Google, first add your own Google app's client ID and secret below."
    ]
    assert google.used == []

    add_own_client(alice_client)
    params = connect(alice_client, google, ["google.sheets.readonly"])
    assert params["client_id"] == OWN_ID
    assert google.used == [("authorization_code", OWN_ID)]


def test_required_keeps_refreshing_platform_grants_but_asks_no_new_ones(
    alice_client, alice, settings, google
):
    connect(alice_client, google, ["google.sheets.readonly"])  # before the switch
    conn = Connection.objects.get(user=alice)
    platform = registry.provider_config("google").client_id
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = "required"

    connection_credentials(connection=expire(conn))
    assert google.used[-1] == ("refresh_token", platform)

    resp = alice_client.post(
        reverse("integrations:add_permissions", kwargs={"id": conn.pk}),
        {"capabilities": ["google.gmail.send"]},
    )
    assert resp["Location"] == reverse("integrations:page")
    assert texts(resp)[-1] == (
        "To connect Google, first add your own Google OAuth client's ID and secret on the "
        "Integrations page."
    )
    assert [u for u in google.used if u[0] == "authorization_code"] == [
        ("authorization_code", platform)
    ]


def test_off_has_no_form_and_refuses_a_posted_one(alice_client, alice, settings, google):
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = "off"
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "own Google OAuth client" not in page and f'action="{SET}"' not in page

    resp = alice_client.post(SET, {"client_id": OWN_ID, "client_secret": OWN_SECRET})
    assert resp.status_code == 404
    assert not UserOAuthClient.objects.exists()

    # A client saved while staff allowed them is not used for new grants.
    UserOAuthClient.objects.create(
        user=alice,
        provider="google",
        client_id=OWN_ID,
        client_secret_encrypted=crypto.encrypt(OWN_SECRET, keys=settings.INTEGRATIONS_TOKEN_KEYS),
    )
    params = connect(alice_client, google, ["google.sheets.readonly"])
    assert params["client_id"] == registry.provider_config("google").client_id
    assert Connection.objects.get(user=alice).oauth_client_id is None


def test_the_own_client_forms_need_csrf(alice, allowed):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(SET, {"client_id": OWN_ID, "client_secret": OWN_SECRET}).status_code == 403
    assert not UserOAuthClient.objects.exists()


@pytest.mark.parametrize("mode", ["off", "allowed", "required"])
def test_the_system_check_accepts_the_three_modes(settings, mode):
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = mode
    assert google_user_clients_check() == []


def test_the_system_check_refuses_anything_else(settings):
    settings.INTEGRATIONS_GOOGLE_USER_CLIENTS = "yes"
    (error,) = google_user_clients_check()
    assert error.id == "integrations.E004" and "'yes'" in error.msg


def test_a_refused_own_client_is_the_users_to_fix_not_a_provider_outage(
    alice_client, alice, allowed, google, mailoutbox, django_capture_on_commit_callbacks
):
    from integrations.errors import IntegrationError
    from integrations.models import ProviderHealth

    add_own_client(alice_client)
    connect(alice_client, google, ["google.sheets.readonly"])
    conn = Connection.objects.get(user=alice)
    del google.clients[OWN_ID]  # she deleted the client in the Cloud console

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(IntegrationError):
        connection_credentials(connection=expire(conn))
    conn.refresh_from_db()
    assert conn.status == Connection.Status.NEEDS_RECONNECT
    assert conn.last_error_code == "invalid_client"
    # Google is fine for everyone else: staff see no provider failure.
    assert not ProviderHealth.objects.filter(provider="google", ok=False).exists()
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    assert OWN_SECRET not in mailoutbox[0].body
