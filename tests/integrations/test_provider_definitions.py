"""Providers defined as data: validation, presets, the admin (check before enabling,
write-only secret), the same flows and refresh for them, and users' own clients."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.app_authorization import AllowItem, app_authorization_allow
from integrations.connections.credentials import connection_credentials
from integrations.connections.own_clients import user_client_set
from integrations.core import crypto
from integrations.core.provider_definitions import PRESETS, DefinitionError, validate_definition
from integrations.errors import ReauthorizationRequiredError
from integrations.models import Connection, ProviderDefinition, UserOAuthClient
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret
from tests.authorization import allow_declared

pytestmark = pytest.mark.django_db

BASE = "https://auth.acme.example"
ACME = {
    "slug": "acme",
    "name": "Acme",
    "authorize_url": BASE + "/authorize",
    "token_url": BASE + "/token",
    "revocation_url": BASE + "/revoke",
    "userinfo_url": BASE + "/me",
    "scope_separator": ",",
    "client_auth": "basic",
    "uid_field": "user.id",
    "email_field": "user.handle",
    "identity_scopes": ["profile"],
    "auth_params": {"audience": "api"},
    "refresh_params": {"resource": "https://api.acme.example"},
    "capabilities": [
        {"key": "acme.read", "label": "Acme: read", "scopes": ["read"]},
        {"key": "acme.write", "label": "Acme: write", "scopes": ["write"], "covers": ["acme.read"]},
    ],
    "env": {"access_token": "ACME_TOKEN"},
    "allow_user_clients": True,
    "rotates_refresh_tokens": True,
    "default_lifetime": 600,
}


def make_acme(**overrides: object) -> ProviderDefinition:
    fields = {**ACME, "client_id": "platform-id", "enabled": True, "last_check_ok": True}
    fields.update(overrides)
    definition = ProviderDefinition.objects.create(**fields)
    provider_definition_set_secret(definition=definition, secret="platform-secret")
    return definition


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_valid_definitions(preset):
    validate_definition(PRESETS[preset])


@pytest.mark.parametrize(
    "change,message",
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "google"}, "built in"),
        ({"authorize_url": "", "token_url": ""}, "discovery URL"),
        ({"scope_separator": ";"}, "scope_separator"),
        ({"client_auth": "jwt"}, "client_auth"),
        ({"env": {"access_token": "lower"}}, "env.access_token"),
        ({"capabilities": [{"key": "other.read", "scopes": []}]}, "starting with 'acme.'"),
        ({"capabilities": [{"key": "acme.x", "scopes": "read"}]}, "scopes"),
        ({"capabilities": [{"key": "acme.x", "scopes": [], "covers": ["acme.nope"]}]}, "unknown"),
    ],
)
def test_broken_definitions_say_what_is_wrong(change, message):
    with pytest.raises(DefinitionError, match=message):
        validate_definition({**ACME, **change})


def test_definition_config_and_catalogue():
    make_acme()
    config = registry.provider_config("acme")
    assert config.client_id == "platform-id" and config.client_secret == "platform-secret"
    assert "platform-secret" not in repr(config)
    assert config.scope_separator == "," and config.client_auth == "basic"
    assert config.env == {"access_token": "ACME_TOKEN"}
    cat = registry.catalogue()
    assert cat.granted_capabilities("acme", ["write", "profile"]) == ["acme.write"]
    assert cat.is_satisfied("acme.read", ["acme.write"])
    assert "google.sheets" in cat.by_key  # the built-in ones are still there
    assert [c.id for c in registry.connectable_providers()] == ["google", "acme"]


def test_disabled_definitions_are_not_offered():
    make_acme(enabled=False)
    assert [c.id for c in registry.connectable_providers()] == ["google"]


class FakeAcme:
    """Acme's authorization server at the HTTP edge."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.token_requests: list[tuple[dict[str, str], str]] = []
        self.revoked: list[str] = []
        self.n = 0
        self.on_revoke: list = []  # called while the revocation request is in flight
        rsps.add_callback(responses.POST, BASE + "/token", callback=self.token)
        rsps.add_callback(responses.GET, BASE + "/me", callback=self.me)
        rsps.add_callback(responses.POST, BASE + "/revoke", callback=self.revoke)

    def token(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.token_requests.append((form, request.headers.get("Authorization", "")))
        self.n += 1
        body = {"access_token": f"acme-at-{self.n}", "refresh_token": f"acme-rt-{self.n}"}
        if form["grant_type"] == "authorization_code":
            body["scope"] = "profile,read"  # comma-separated, like Slack and GitHub
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    def me(self, request):
        return (200, {}, json.dumps({"user": {"id": 4242, "handle": "@ada"}}))

    def revoke(self, request):
        for hook in self.on_revoke:
            hook()
        self.revoked.append(parse_qs(request.body)["token"][0])
        return (200, {}, "")


@pytest.fixture
def acme_server():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeAcme(rsps)


def connect_acme(client: Client, server: FakeAcme) -> dict[str, str]:
    resp = client.post(
        reverse("integrations:connect", kwargs={"provider_id": "acme"}),
        {"capabilities": ["acme.read"]},
    )
    assert resp.status_code == 302, resp.content
    params = {k: v[0] for k, v in parse_qs(urlsplit(resp["Location"]).query).items()}
    assert resp["Location"].startswith(BASE + "/authorize?")
    done = client.get(
        reverse("integrations:oauth_callback", kwargs={"provider_id": "acme"}),
        {"state": params["state"], "code": "the-code"},
    )
    assert done.status_code == 302
    return params


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_the_same_machinery_for_a_provider_defined_as_data(alice_client, alice, acme_server):
    make_acme()
    params = connect_acme(alice_client, acme_server)

    assert params["client_id"] == "platform-id"
    assert sorted(params["scope"].split(",")) == ["profile", "read"]  # comma-separated
    assert params["audience"] == "api"
    assert params["code_challenge_method"] == "S256"
    form, auth = acme_server.token_requests[0]
    assert auth == basic("platform-id", "platform-secret")
    assert "client_secret" not in form
    conn = Connection.objects.get(user=alice, provider="acme")
    assert conn.account_uid == "4242" and conn.account_email == "@ada"
    assert conn.scopes == ["profile", "read"]
    assert conn.is_default
    assert conn.expires_at is not None  # default_lifetime: the response had no expires_in

    # Refresh: the provider's refresh parameters and client authentication.
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    assert connection_credentials(connection=conn).access_token == "acme-at-2"
    form, auth = acme_server.token_requests[1]
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "acme-rt-1"
    assert form["resource"] == "https://api.acme.example"
    assert auth == basic("platform-id", "platform-secret")

    # Disconnect revokes at the provider's endpoint.
    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert acme_server.revoked == ["acme-rt-2"]


def test_disabled_provider_takes_no_new_flows_but_its_connections_keep_working(
    alice_client, alice, acme_server
):
    definition = make_acme()
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    definition.enabled = False
    definition.save()
    registry.definitions_changed()

    # No Connect, no Add Permissions, no callback: a disabled provider takes no grant.
    connect_url = reverse("integrations:connect", kwargs={"provider_id": "acme"})
    assert alice_client.post(connect_url, {"capabilities": ["acme.read"]}).status_code == 404
    add_url = reverse("integrations:add_permissions", kwargs={"id": conn.pk})
    assert alice_client.post(add_url, {"capabilities": ["acme.write"]}).status_code == 404
    callback = reverse("integrations:oauth_callback", kwargs={"provider_id": "acme"})
    assert alice_client.get(callback, {"state": "x", "code": "y"}).status_code == 404
    assert len(acme_server.token_requests) == 1  # the first connect only

    # What was granted before still refreshes and disconnects.
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    assert connection_credentials(connection=conn).access_token == "acme-at-2"
    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert acme_server.revoked == ["acme-rt-2"]
    assert not Connection.objects.filter(pk=conn.pk).exists()


def test_disconnect_without_a_revocation_endpoint_says_so(alice_client, alice, acme_server):
    make_acme(revocation_url="")
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert acme_server.revoked == []  # no request to an empty URL
    assert not Connection.objects.filter(pk=conn.pk).exists()
    message = [str(m) for m in get_messages(resp.wsgi_request)][-1]
    assert "offers no way to revoke" in message


def test_disconnect_after_the_definition_was_deleted(alice_client, alice, acme_server):
    definition = make_acme()
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    definition.delete()
    registry.definitions_changed()
    url = reverse("integrations:disconnect", kwargs={"id": conn.pk})
    assert alice_client.get(url).status_code == 200
    alice_client.post(url)
    assert not Connection.objects.filter(pk=conn.pk).exists()


def test_no_token_is_served_while_the_revocation_is_in_flight(alice_client, alice, acme_server):
    make_acme()
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    seen: list[str] = []

    def ask_for_a_token():
        # A run asking for a token while Disconnect is revoking: refused, no refresh.
        try:
            connection_credentials(connection=Connection.objects.get(pk=conn.pk))
        except ReauthorizationRequiredError:
            seen.append("refused")

    acme_server.on_revoke.append(ask_for_a_token)
    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert seen == ["refused"]
    assert len(acme_server.token_requests) == 1


def test_own_client_is_used_for_flows_and_refreshes_and_never_shown(
    alice_client, alice, acme_server, caplog
):
    caplog.set_level(logging.DEBUG)
    make_acme(client_id="", enabled=True)
    ProviderDefinition.objects.filter(slug="acme").update(client_secret_encrypted=None)
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "first add your own Acme app" in page
    assert "http://127.0.0.1:8000/integrations/oauth/acme/callback/" in page

    resp = alice_client.post(
        reverse("integrations:own_client_set", kwargs={"provider_id": "acme"}),
        {"client_id": "alice-app", "client_secret": "alice-very-secret"},
    )
    assert resp.status_code == 302
    stored = UserOAuthClient.objects.get(user=alice)
    assert b"alice-very-secret" not in bytes(stored.client_secret_encrypted)

    params = connect_acme(alice_client, acme_server)
    assert params["client_id"] == "alice-app"
    assert acme_server.token_requests[0][1] == basic("alice-app", "alice-very-secret")
    conn = Connection.objects.get(user=alice, provider="acme")
    assert conn.oauth_client_id == stored.pk

    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    connection_credentials(connection=conn)
    assert acme_server.token_requests[1][1] == basic("alice-app", "alice-very-secret")

    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "alice-app" in page and "alice-very-secret" not in page
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice-very-secret" not in logs

    # Replacing the client: grants of the old one need reconnecting.
    user_client_set(user=alice, provider="acme", client_id="alice-app-2", client_secret="s2")
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect" and conn.oauth_client_id is None


def test_a_grant_made_with_the_platform_client_stops_using_the_own_one(
    alice_client, alice, acme_server
):
    make_acme()
    user_client_set(user=alice, provider="acme", client_id="alice-app", client_secret="s1")
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    assert conn.oauth_client_id is not None
    # Staff stop taking users' own clients: the next grant is the platform client's,
    # and its refreshes must use the platform client too.
    ProviderDefinition.objects.filter(slug="acme").update(allow_user_clients=False)
    registry.definitions_changed()
    connect_acme(alice_client, acme_server)
    conn.refresh_from_db()
    assert conn.oauth_client_id is None
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    conn.refresh_from_db()
    connection_credentials(connection=conn)
    assert acme_server.token_requests[-1][1] == basic("platform-id", "platform-secret")


def test_an_own_client_secret_that_no_longer_decrypts_neither_blocks_disconnect_nor_replacing(
    alice_client, alice, acme_server, settings
):
    from cryptography.fernet import Fernet

    make_acme()
    user_client_set(user=alice, provider="acme", client_id="alice-app", client_secret="s1")
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    # The keys lost the one the own client was written under (tokens re-encrypted).
    client = UserOAuthClient.objects.get(user=alice)
    client.client_secret_encrypted = crypto.encrypt("s1", keys=[Fernet.generate_key().decode()])
    client.save()

    # Replacing it works (the old secret is never decrypted).
    resp = alice_client.post(
        reverse("integrations:own_client_set", kwargs={"provider_id": "acme"}),
        {"client_id": "alice-app-2", "client_secret": "s2"},
    )
    assert resp.status_code == 302
    assert UserOAuthClient.objects.get(user=alice).client_id == "alice-app-2"

    # Disconnect still deletes the tokens, saying the revocation was not confirmed.
    conn.refresh_from_db()
    url = reverse("integrations:disconnect", kwargs={"id": conn.pk})
    assert alice_client.get(url).status_code == 200
    alice_client.post(url)
    assert not Connection.objects.filter(pk=conn.pk).exists()


def test_a_platform_secret_that_no_longer_decrypts_does_not_break_pages(
    alice_client, alice, acme_server
):
    from cryptography.fernet import Fernet

    make_acme()
    connect_acme(alice_client, acme_server)
    ProviderDefinition.objects.filter(slug="acme").update(
        client_secret_encrypted=crypto.encrypt("x", keys=[Fernet.generate_key().decode()])
    )
    registry.definitions_changed()
    assert alice_client.get(reverse("integrations:page")).status_code == 200
    conn = Connection.objects.get(user=alice, provider="acme")
    assert (
        alice_client.get(reverse("integrations:disconnect", kwargs={"id": conn.pk})).status_code
        == 200
    )


def test_connect_without_an_own_client_says_to_add_one(alice_client):
    make_acme(client_id="")
    ProviderDefinition.objects.filter(slug="acme").update(client_secret_encrypted=None)
    registry.definitions_changed()
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "acme"}),
        {"capabilities": ["acme.read"]},
    )
    assert resp.status_code == 302 and resp["Location"].endswith("#provider-acme")
    (message,) = [str(m) for m in get_messages(resp.wsgi_request)]
    assert "first add your own Acme app" in message


def test_a_double_submitted_disconnect_revokes_once(alice_client, alice, acme_server):
    make_acme()
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    from integrations.connections.disconnect import connection_disconnect

    # The second submit arrives while the first is revoking.
    acme_server.on_revoke.append(lambda: connection_disconnect(connection=conn))
    connection_disconnect(connection=conn)
    assert len(acme_server.revoked) == 1
    assert not Connection.objects.filter(pk=conn.pk).exists()


def test_a_reconnect_that_lands_during_disconnect_is_kept(alice_client, alice, acme_server):
    make_acme()
    connect_acme(alice_client, acme_server)
    conn = Connection.objects.get(user=alice, provider="acme")
    from integrations.connections.disconnect import connection_disconnect

    # The callback of a Reconnect re-activates the row while Disconnect revokes.
    acme_server.on_revoke.append(
        lambda: Connection.objects.filter(pk=conn.pk).update(status="active")
    )
    connection_disconnect(connection=conn)
    assert Connection.objects.filter(pk=conn.pk, status="active").exists()


def test_own_client_is_refused_where_the_provider_does_not_take_them(alice_client):
    make_acme(allow_user_clients=False)
    resp = alice_client.post(
        reverse("integrations:own_client_set", kwargs={"provider_id": "acme"}),
        {"client_id": "x", "client_secret": "y"},
    )
    assert resp.status_code == 404
    assert not UserOAuthClient.objects.exists()


def test_own_client_forms_need_csrf(alice):
    make_acme()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    for name in ("own_client_set", "own_client_delete"):
        resp = client.post(reverse(f"integrations:{name}", kwargs={"provider_id": "acme"}))
        assert resp.status_code == 403


def admin_form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {}
    for key, value in {**ACME, **overrides}.items():
        if isinstance(value, (list, dict)):
            data[key] = json.dumps(value)
        elif isinstance(value, bool):
            if value:
                data[key] = "on"
        else:
            data[key] = value
    data.setdefault("pkce", "on")
    return data


def test_admin_add_from_preset_check_then_enable(admin_client):
    page = admin_client.get(reverse("admin:integrations_providerdefinition_changelist"))
    assert "?preset=x" in page.content.decode()
    add = admin_client.get(reverse("admin:integrations_providerdefinition_add") + "?preset=x")
    assert "https://api.x.com/2/oauth2/token" in add.content.decode()

    url = reverse("admin:integrations_providerdefinition_add")
    refused = admin_client.post(
        url, admin_form(enabled=True, client_id="cid", client_secret="csec")
    )
    assert refused.status_code == 200
    assert "run “Check” on it" in refused.content.decode()
    assert not ProviderDefinition.objects.exists()

    resp = admin_client.post(url, admin_form(client_id="cid", client_secret="csec"))
    assert resp.status_code == 302, resp.content.decode()[:3000]
    definition = ProviderDefinition.objects.get(slug="acme")
    assert registry.provider_config("acme").client_secret == "csec"
    change = admin_client.get(
        reverse("admin:integrations_providerdefinition_change", args=[definition.pk])
    ).content.decode()
    assert "csec" not in change
    assert "/integrations/oauth/acme/callback/" in change

    with responses.RequestsMock() as rsps:
        for method, path in (("GET", "/authorize"), ("POST", "/token"), ("POST", "/revoke")):
            rsps.add(method, BASE + path, status=400)
        rsps.add("GET", BASE + "/me", status=401)
        resp = admin_client.post(
            reverse("admin:integrations_providerdefinition_changelist"),
            {"action": "run_check", "_selected_action": [definition.pk]},
            follow=True,
        )
    text = " ".join(str(m) for m in get_messages(resp.wsgi_request))
    assert "token" in text and "answered 400" in text
    definition.refresh_from_db()
    assert definition.last_check_ok

    change_url = reverse("admin:integrations_providerdefinition_change", args=[definition.pk])
    resp = admin_client.post(change_url, admin_form(enabled=True, client_id="cid"))
    assert resp.status_code == 302
    definition.refresh_from_db()
    assert definition.enabled
    assert registry.provider_config("acme").client_secret == "csec"  # kept


def test_check_fails_on_an_unreachable_endpoint_and_keeps_it_disabled(admin_client):
    definition = make_acme(enabled=False, last_check_ok=False)
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/authorize", status=400)
        rsps.add("POST", BASE + "/token", body=requests.ConnectionError("refused"))
        rsps.add("POST", BASE + "/revoke", status=503)
        rsps.add("GET", BASE + "/me", status=401)
        from integrations.providers.definitions import provider_definition_check

        report = provider_definition_check(definition=definition)
    assert not report.ok
    assert any("revocation" in line and "503" in line for line in report.lines)
    definition.refresh_from_db()
    assert not definition.enabled and not definition.last_check_ok


def test_check_fills_endpoints_from_discovery():
    definition = make_acme(
        enabled=False,
        authorize_url="",
        token_url="",
        revocation_url="",
        userinfo_url="",
        discovery_url=BASE + "/.well-known/openid-configuration",
        client_auth="post",
    )
    meta = {
        "issuer": BASE,
        "authorization_endpoint": BASE + "/authorize",
        "token_endpoint": BASE + "/token",
        "revocation_endpoint": BASE + "/revoke",
        "userinfo_endpoint": BASE + "/me",
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }
    with responses.RequestsMock() as rsps:
        rsps.add("GET", BASE + "/.well-known/openid-configuration", json=meta)
        rsps.add("GET", BASE + "/authorize", status=400)
        rsps.add("POST", BASE + "/token", status=400)
        rsps.add("POST", BASE + "/revoke", status=400)
        rsps.add("GET", BASE + "/me", status=401)
        from integrations.providers.definitions import provider_definition_check

        report = provider_definition_check(definition=definition)
    assert report.ok, report.lines
    definition.refresh_from_db()
    assert definition.token_url == BASE + "/token" and definition.userinfo_url == BASE + "/me"


def acme_connection(user) -> Connection:
    """A connection to Acme granting read and write, with a token good for an hour."""
    from integrations.connections.store import store_tokens
    from integrations.core.tokens import TokenSet

    conn = Connection(
        user=user, provider="acme", account_uid="4242", scopes=["profile", "read", "write"]
    )
    store_tokens(
        conn,
        TokenSet(
            access_token="acme-full",
            refresh_token="acme-rt-0",
            expires_at=timezone.now() + timedelta(hours=1),
            scopes=None,
        ),
    )
    conn.save()
    return conn


@pytest.mark.parametrize("rotates", [False, True])
def test_runs_get_tokens_narrowed_where_the_provider_allows(alice, acme_server, rotates):
    from integrations.connections.credentials import connection_narrowed_credentials
    from integrations.connections.store import connection_access_token

    make_acme(narrow_scope_on_refresh=True, rotates_refresh_tokens=rotates)
    conn = acme_connection(alice)

    creds = connection_narrowed_credentials(connection=conn, scopes=["read"])

    if rotates:  # each run would replace the stored grant: not narrowed
        assert creds.access_token == "acme-full"
        assert acme_server.token_requests == []
        return
    ((form, _),) = acme_server.token_requests
    assert form["grant_type"] == "refresh_token" and form["scope"] == "read"
    assert creds.access_token == "acme-at-1"
    conn.refresh_from_db()
    assert connection_access_token(connection=conn) == "acme-full"  # not stored


def test_the_run_api_hands_out_the_narrowed_token_and_google_is_not_narrowed(
    alice, bob, acme_server
):
    import json as _json

    from apps_registry import services as apps

    make_acme(narrow_scope_on_refresh=True, rotates_refresh_tokens=False)
    assert not registry.provider_config("google").narrow_scope_on_refresh
    conn = acme_connection(bob)
    apps.manifest_upload(
        user=alice,
        text="namespace: acme\nname: reader\nintegrations:\n  - key: acme.read\n"
        "  - key: acme.write\n    optional: true\n",
    )
    # Bob allowed the app to read only (per-app authorization): the optional write is
    # granted on the connection, and left out of the token.
    app_authorization_allow(
        user=bob,
        app="acme/reader",
        version=1,
        items=[AllowItem(kind="capability", key="acme.read", connection_id=conn.pk)],
    )
    runner = apps.runner_token_create(name="r", all_namespaces=True)[1]
    resp = Client().post(
        "/api/v1/run-environments/",
        _json.dumps({"user": str(bob.pk), "app": "acme/reader"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {runner}",
    )
    assert resp.status_code == 200, resp.content
    # The app is allowed acme.read only: its token was asked for with scope=read.
    assert resp.json()["env"] == {"ACME_TOKEN": "acme-at-1"}
    ((form, _),) = acme_server.token_requests
    assert form["scope"] == "read"


def test_pkce_off_and_extra_token_parameters(alice_client, alice, acme_server):
    make_acme(pkce=False, token_params={"audience": "api-token"})
    params = connect_acme(alice_client, acme_server)
    assert "code_challenge" not in params and "code_challenge_method" not in params
    form, _ = acme_server.token_requests[0]
    assert form["grant_type"] == "authorization_code"
    assert form["audience"] == "api-token" and "code_verifier" not in form
    assert Connection.objects.filter(user=alice, provider="acme").exists()


def test_own_client_secrets_never_reach_the_admin_the_audit_log_or_the_database_in_clear(
    alice_client, alice, acme_server, admin_client
):
    from django.db import connection as db

    from integrations.models import AuditEvent

    make_acme()
    alice_client.post(
        reverse("integrations:own_client_set", kwargs={"provider_id": "acme"}),
        {"client_id": "alice-app", "client_secret": "alice-very-secret"},
    )
    connect_acme(alice_client, acme_server)
    client = UserOAuthClient.objects.get(user=alice)
    for url in (
        reverse("admin:integrations_useroauthclient_changelist"),
        reverse("admin:integrations_useroauthclient_change", args=[client.pk]),
        reverse(
            "admin:integrations_providerdefinition_change",
            args=[ProviderDefinition.objects.get(slug="acme").pk],
        ),
        reverse("admin:integrations_auditevent_changelist"),
    ):
        html = admin_client.get(url).content.decode()
        assert "alice-very-secret" not in html and "platform-secret" not in html, url
    assert "alice-very-secret" not in repr(list(AuditEvent.objects.values()))
    with db.cursor() as cur:
        for table in ("integrations_useroauthclient", "integrations_providerdefinition"):
            cur.execute(f"SELECT * FROM {table}")
            dump = repr(cur.fetchall())
            assert "alice-very-secret" not in dump and "platform-secret" not in dump


def test_a_run_with_an_own_client_connection_costs_no_extra_query(alice, bob, acme_server):
    import json as _json

    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from apps_registry import services as apps

    make_acme()
    user_client_set(user=bob, provider="acme", client_id="bob-app", client_secret="s")
    conn = acme_connection(bob)
    Connection.objects.filter(pk=conn.pk).update(
        oauth_client=UserOAuthClient.objects.get(user=bob), last_used_at=timezone.now()
    )
    apps.manifest_upload(
        user=alice, text="namespace: acme\nname: reader\nintegrations:\n  - key: acme.read\n"
    )
    allow_declared(bob, "acme/reader")
    runner = apps.runner_token_create(name="r", all_namespaces=True)[1]

    def ask():
        return Client().post(
            "/api/v1/run-environments/",
            _json.dumps({"user": str(bob.pk), "app": "acme/reader"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {runner}",
        )

    assert ask().status_code == 200  # warms the provider cache
    with CaptureQueriesContext(db) as ctx:
        assert ask().json()["env"] == {"ACME_TOKEN": "acme-full"}
    # runner token, app + version, connections with the user and their client, secrets
    # (none declared: no query), audit
    assert len(ctx.captured_queries) == 4, [q["sql"] for q in ctx.captured_queries]


def test_configurations_are_built_once_per_read_of_the_definitions(alice):
    # The run and refresh paths ask for them on every call: no decryption each time.
    make_acme()
    first = registry.provider_config("acme")
    assert registry.provider_config("acme") is first
    user_client_set(user=alice, provider="acme", client_id="a", client_secret="s1")
    client = UserOAuthClient.objects.get(user=alice)
    own = registry.provider_config("acme", client=client)
    assert registry.provider_config("acme", client=client) is own
    assert own.client_secret == "s1"
    user_client_set(user=alice, provider="acme", client_id="a", client_secret="s2")
    replaced = UserOAuthClient.objects.get(user=alice)
    assert registry.provider_config("acme", client=replaced).client_secret == "s2"
    registry.definitions_changed()
    assert registry.provider_config("acme") is not first
