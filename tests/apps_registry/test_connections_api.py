"""The connections API (issue 12, point 2): a platform credential with scopes, or a
user's personal token over their own connections, lists, gets, refreshes (rate
limited per connection) and disconnects connections; never a token value. Google is
faked at the HTTP edge (``responses``); the clock of the rate limit is the database's
column, set back in the tests that need time to pass."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import connection as db
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps_registry import services
from apps_registry.errors import PlatformCredentialError
from apps_registry.models import PlatformCredential
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.models import AuditEvent, Connection
from integrations.providers import registry
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

READ, WRITE = "connections:read", "connections:write"
LIST = "/api/v1/connections/"


def one(conn: Connection) -> str:
    return f"/api/v1/connections/{conn.pk}/"


def refresh_url(conn: Connection) -> str:
    return f"/api/v1/connections/{conn.pk}/refresh/"


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def platform(*scopes: str, **kwargs) -> str:
    return services.platform_credential_create(
        name=f"backend-{'-'.join(scopes) or 'none'}-{PlatformCredential.objects.count()}",
        scopes=list(scopes),
        **kwargs,
    )[1]


@pytest.fixture
def api() -> Client:
    return Client()


@pytest.fixture
def both() -> str:
    return platform(READ, WRITE)


@pytest.fixture
def alice_conn(alice) -> Connection:
    return ConnectionFactory.create(user=alice, is_default=True)


@pytest.fixture
def bob_conn(bob) -> Connection:
    return ConnectionFactory.create(user=bob, is_default=True)


@pytest.fixture
def alice_token(alice) -> str:
    return services.api_token_create(user=alice, name="mine")[1]


class Google:
    """Google's token and revoke endpoints, scripted."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        config = registry.provider_config("google")
        self.refreshes: list[dict[str, str]] = []
        self.revoked: list[str] = []
        self.token_answer: tuple[int, dict] = (
            200,
            {"access_token": "ya29.refreshed-by-api", "expires_in": 3599},
        )
        self.revoke_status = 200
        rsps.add_callback(responses.POST, config.token_url, callback=self._token)
        rsps.add_callback(responses.POST, config.revoke_url, callback=self._revoke)

    def _token(self, request):
        self.refreshes.append({k: v[0] for k, v in parse_qs(request.body).items()})
        status, body = self.token_answer
        return (status, {"Content-Type": "application/json"}, json.dumps(body))

    def _revoke(self, request):
        self.revoked.append(parse_qs(request.body)["token"][0])
        return (self.revoke_status, {}, "" if self.revoke_status == 200 else '{"error":"x"}')


@pytest.fixture
def google():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield Google(rsps)


def assert_no_token_values(body: bytes, *conns: Connection) -> None:
    """No access token, refresh token or client secret of these connections."""
    text = body.decode()
    for conn in conns:
        assert connection_access_token(connection=conn) not in text
        refresh = connection_refresh_token(connection=conn)
        assert refresh and refresh not in text
    assert "client_secret" not in text and "encrypted" not in text
    for word in ("ya29.", "1//", "ihp_", "ihub_"):
        assert word not in text


# --- authentication and ownership ---------------------------------------------------


def test_a_personal_token_lists_its_own_connections_only(api, alice, bob, alice_conn, bob_conn):
    token = services.api_token_create(user=alice, name="mine")[1]

    resp = api.get(LIST, **auth(token))

    assert resp.status_code == 200
    (item,) = resp.json()["connections"]
    assert item["id"] == alice_conn.pk
    assert item["user"] == {"id": alice.pk, "email": "alice@example.com"}
    assert item["provider"] == "google"
    assert item["account"] == {
        "email": alice_conn.account_email,
        "subject": alice_conn.account_uid,
    }
    assert item["capabilities"] == ["google.gmail.send", "google.sheets.readonly"]
    assert item["status"] == "active" and item["error_code"] == ""
    assert item["is_default"] is True and item["expires_at"] and item["connected_at"]
    assert resp["Cache-Control"].startswith("max-age=0")
    assert_no_token_values(resp.content, alice_conn, bob_conn)
    # Naming itself works; naming anyone else is 404, as a user who does not exist.
    assert api.get(LIST, {"user": "ALICE@example.com"}, **auth(token)).status_code == 200
    assert api.get(LIST, {"user": str(alice.pk)}, **auth(token)).status_code == 200
    for other in ("bob@example.com", str(bob.pk), "nobody@example.com"):
        resp = api.get(LIST, {"user": other}, **auth(token))
        assert resp.status_code == 404 and resp.json()["error"] == "user_not_found"


def test_a_personal_token_gets_404_for_another_users_connection(
    api, alice_token, alice_conn, bob_conn, google
):
    for method, url in (
        ("get", one(bob_conn)),
        ("delete", one(bob_conn)),
        ("post", refresh_url(bob_conn)),
        ("get", "/api/v1/connections/99999999/"),
        ("get", f"/api/v1/connections/{2**64}/"),
    ):
        resp = getattr(api, method)(url, **auth(alice_token))
        assert resp.status_code == 404, (method, url)
        assert resp.json()["error"] == "not_found"
    # Bob's connection is untouched: not refreshed, not revoked, still there.
    assert google.refreshes == [] and google.revoked == []
    assert Connection.objects.filter(pk=bob_conn.pk, status="active").exists()
    bob_conn.refresh_from_db()
    assert bob_conn.last_forced_refresh_at is None
    assert api.get(one(alice_conn), **auth(alice_token)).json()["id"] == alice_conn.pk


def test_a_platform_credential_lists_the_named_users_connections(
    api, both, alice, bob, alice_conn, bob_conn
):
    other = ConnectionFactory.create(
        user=bob, provider="x", scopes=["tweet.read", "users.read", "offline.access"]
    )

    resp = api.get(LIST, {"user": "bob@example.com"}, **auth(both))
    assert resp.status_code == 200
    assert [c["id"] for c in resp.json()["connections"]] == [bob_conn.pk, other.pk]
    assert_no_token_values(resp.content, bob_conn, other)

    by_id = api.get(LIST, {"user": str(bob.pk), "provider": "x"}, **auth(both)).json()
    assert [c["id"] for c in by_id["connections"]] == [other.pk]
    assert by_id["connections"][0]["capabilities"] == ["x.tweet.read", "x.user.read"]

    resp = api.get(LIST, **auth(both))
    assert resp.status_code == 400 and resp.json()["error"] == "user_required"
    for nobody in ("nobody@example.com", "123456789", str(2**70), "bob"):
        resp = api.get(LIST, {"user": nobody}, **auth(both))
        assert resp.status_code == 404 and resp.json()["error"] == "user_not_found"
    resp = api.get(LIST, {"user": "bob@example.com", "provider": "x" * 65}, **auth(both))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    # Any user's connection by id.
    assert api.get(one(alice_conn), **auth(both)).json()["user"]["id"] == alice.pk


def test_list_reads_in_a_fixed_number_of_queries(
    api, both, bob, bob_conn, django_assert_num_queries
):
    for n in range(5):
        ConnectionFactory.create(user=bob, provider="x", account_uid=f"x-{n}", scopes=[])
    api.get(LIST, {"user": "bob@example.com"}, **auth(both))  # last_used_at written

    # The credential, the user, the connections with their user; no token column.
    with django_assert_num_queries(3) as ctx:
        resp = api.get(LIST, {"user": "bob@example.com"}, **auth(both))
    assert len(resp.json()["connections"]) == 6
    listed = ctx.captured_queries[-1]["sql"]
    assert "access_token_encrypted" not in listed and "refresh_token_encrypted" not in listed


@pytest.mark.parametrize(
    ("scopes", "method", "path", "needed"),
    [
        ((WRITE,), "get", "list", READ),
        ((WRITE,), "get", "one", READ),
        ((READ,), "post", "refresh", WRITE),
        ((READ,), "delete", "one", WRITE),
    ],
)
def test_a_platform_credential_without_the_scope_gets_403(
    api, bob_conn, google, scopes, method, path, needed
):
    token = platform(*scopes)
    url = {"list": LIST + "?user=bob@example.com", "one": one(bob_conn)}.get(
        path, refresh_url(bob_conn)
    )

    resp = getattr(api, method)(url, **auth(token))

    assert resp.status_code == 403
    assert resp.json()["error"] == "scope_missing" and resp.json()["scope"] == needed
    assert needed in resp.json()["detail"]
    assert google.refreshes == [] and google.revoked == []
    assert Connection.objects.filter(pk=bob_conn.pk).exists()
    assert not AuditEvent.objects.filter(kind__in=["refresh_forced", "api_disconnect"]).exists()


def test_revoked_expired_unknown_and_runner_tokens_get_401(api, bob_conn):
    row, revoked = services.platform_credential_create(name="gone", scopes=[READ])
    services.platform_credential_revoke(credential=row)
    row, expired = services.platform_credential_create(
        name="old", scopes=[READ], expires_at=timezone.now() + timedelta(days=1)
    )
    PlatformCredential.objects.filter(pk=row.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    unknown = "ihp_" + "x" * 43

    for token in (revoked, expired, runner, unknown):
        for url in (LIST + "?user=bob@example.com", one(bob_conn)):
            resp = api.get(url, **auth(token))
            assert resp.status_code == 401, token[:8]
            assert token not in resp.content.decode()
    assert api.get(one(bob_conn)).status_code == 401
    # A platform credential is no personal token elsewhere in the API.
    platform_token = platform(READ, WRITE)
    assert api.get("/api/v1/apps/acme/x/", **auth(platform_token)).status_code == 401


def test_last_use_is_recorded(api, both, bob_conn):
    assert PlatformCredential.objects.get().last_used_at is None
    api.get(one(bob_conn), **auth(both))
    assert PlatformCredential.objects.get().last_used_at is not None


# --- refresh ------------------------------------------------------------------------


def test_a_forced_refresh_refreshes_now_and_is_audited(api, both, bob_conn, google):
    resp = api.post(refresh_url(bob_conn), **auth(both))

    assert resp.status_code == 200
    body = resp.json()
    assert body["refreshed"] is True and body["connection"]["id"] == bob_conn.pk
    # A token valid for the hour was refreshed anyway, with the stored refresh token.
    (sent,) = google.refreshes
    assert sent["grant_type"] == "refresh_token"
    assert sent["refresh_token"] == f"1//factory-refresh-{bob_conn.account_uid}"
    bob_conn.refresh_from_db()
    assert connection_access_token(connection=bob_conn) == "ya29.refreshed-by-api"
    assert body["connection"]["last_refreshed_at"] is not None
    assert "ya29.refreshed-by-api" not in resp.content.decode()
    assert_no_token_values(resp.content, bob_conn)
    event = AuditEvent.objects.get(kind="refresh_forced")
    assert event.ok and event.connection_id == bob_conn.pk and event.user_id == bob_conn.user_id
    assert event.detail == {
        "by": PlatformCredential.objects.get().name,
        "via": "platform_credential",
    }


def test_a_second_forced_refresh_within_the_interval_is_429(
    api, both, alice_token, alice_conn, google, settings
):
    settings.INTEGRATIONS_FORCED_REFRESH_INTERVAL = 60
    assert api.post(refresh_url(alice_conn), **auth(both)).status_code == 200

    # Whoever asks: the limit is the connection's.
    for token in (both, alice_token):
        resp = api.post(refresh_url(alice_conn), **auth(token))
        assert resp.status_code == 429
        assert resp.json()["error"] == "rate_limited"
        assert 1 <= int(resp["Retry-After"]) <= 60
        assert resp.json()["retry_after"] == int(resp["Retry-After"])
    assert len(google.refreshes) == 1

    # Once the interval has passed, another is made.
    Connection.objects.filter(pk=alice_conn.pk).update(
        last_forced_refresh_at=timezone.now() - timedelta(seconds=61)
    )
    resp = api.post(refresh_url(alice_conn), **auth(alice_token))
    assert resp.status_code == 200 and len(google.refreshes) == 2
    actors = [e.detail for e in AuditEvent.objects.filter(kind="refresh_forced")]
    assert {"by": f"user:{alice_conn.user_id}", "via": "api_token"} in actors


def test_a_connection_without_refresh_token_stays_as_it_is(api, both, bob_conn, google):
    """A provider that issues no refresh token (or tokens without expiry): nothing to
    refresh with, and the grant is not marked dead for it."""
    Connection.objects.filter(pk=bob_conn.pk).update(refresh_token_encrypted=None)

    resp = api.post(refresh_url(bob_conn), **auth(both))

    assert resp.status_code == 200 and resp.json()["refreshed"] is False
    assert resp.json()["connection"]["status"] == "active"
    assert google.refreshes == []
    bob_conn.refresh_from_db()
    assert bob_conn.status == "active"


@pytest.mark.django_db(transaction=True)
def test_racing_forced_refreshes_make_one_refresh(api, both, bob_conn, google):
    """Eight requests at once, each on its own database connection (as many web
    processes would be): the column's conditional UPDATE lets one through."""
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def ask() -> None:
        try:
            barrier.wait()
            client = Client(headers={"Authorization": f"Bearer {both}"})
            statuses.append(client.post(refresh_url(bob_conn)).status_code)
        finally:
            db.close()

    pool = [threading.Thread(target=ask) for _ in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert sorted(statuses) == [200] + [429] * 7
    assert len(google.refreshes) == 1
    assert AuditEvent.objects.filter(kind="refresh_forced").count() == 1


def test_a_dead_grant_is_409_needs_reconnect(api, both, bob_conn, google):
    google.token_answer = (400, {"error": "invalid_grant"})

    resp = api.post(refresh_url(bob_conn), **auth(both))

    assert resp.status_code == 409
    assert resp.json()["error"] == "needs_reconnect" and resp.json()["reason"] == "invalid_grant"
    bob_conn.refresh_from_db()
    assert bob_conn.status == "needs_reconnect"
    event = AuditEvent.objects.get(kind="refresh_forced")
    assert not event.ok and event.error_code == "invalid_grant"
    # The listing says so too.
    item = api.get(one(bob_conn), **auth(both)).json()
    assert item["status"] == "needs_reconnect" and item["error_code"] == "invalid_grant"


def test_a_provider_outage_is_503_with_retry_after(api, both, bob_conn, google):
    google.token_answer = (503, {"error": "server_error"})

    resp = api.post(refresh_url(bob_conn), **auth(both))

    assert resp.status_code == 503
    assert resp.json() == {"error": "provider_unavailable", "detail": "server_error"}
    assert resp["Retry-After"] == "60"
    bob_conn.refresh_from_db()
    assert bob_conn.status == "refresh_failing"


# --- disconnect ---------------------------------------------------------------------


def test_delete_revokes_at_the_provider_and_deletes(api, alice_token, alice_conn, google):
    refresh = connection_refresh_token(connection=alice_conn)

    resp = api.delete(one(alice_conn), **auth(alice_token))

    assert resp.status_code == 200
    assert resp.json() == {"deleted": True, "revocation": "revoked"}
    assert google.revoked == [refresh]
    assert not Connection.objects.filter(pk=alice_conn.pk).exists()
    event = AuditEvent.objects.get(kind="api_disconnect")
    assert event.ok and event.connection_id == alice_conn.pk
    assert event.detail == {"by": f"user:{alice_conn.user_id}", "via": "api_token"}
    assert AuditEvent.objects.filter(kind="disconnect", connection_id=alice_conn.pk).exists()
    assert api.get(one(alice_conn), **auth(alice_token)).status_code == 404


def test_a_failed_revocation_still_deletes_and_says_so(api, both, bob_conn, google):
    google.revoke_status = 503

    resp = api.delete(one(bob_conn), **auth(both))

    assert resp.status_code == 200
    assert resp.json()["deleted"] is True and resp.json()["revocation"] != "revoked"
    assert not Connection.objects.filter(pk=bob_conn.pk).exists()
    event = AuditEvent.objects.get(kind="api_disconnect")
    assert not event.ok and event.error_code == resp.json()["revocation"]


def test_no_answer_holds_a_token_value(api, both, alice, alice_token, alice_conn, google):
    """Every endpoint, with either credential, errors included: no access token, refresh
    token, client secret or credential of ours in the body or the headers."""
    spare = ConnectionFactory.create(user=alice, provider="x", scopes=["users.read"])
    conns = (alice_conn, spare)
    secrets = {both, alice_token} | {connection_access_token(connection=c) for c in conns}
    for conn in conns:
        refresh = connection_refresh_token(connection=conn)
        assert refresh
        secrets.add(refresh)
    answers = []
    for token in (both, alice_token):
        answers += [
            api.get(LIST, {"user": "alice@example.com"}, **auth(token)),
            api.get(one(alice_conn), **auth(token)),
            api.post(refresh_url(alice_conn), **auth(token)),  # 200, then 429
        ]
    google.token_answer = (400, {"error": "invalid_grant"})
    Connection.objects.filter(pk=spare.pk).update(provider="google")
    answers.append(api.post(refresh_url(spare), **auth(both)))  # 409
    answers += [api.delete(one(c), **auth(alice_token)) for c in conns]
    assert sorted({a.status_code for a in answers}) == [200, 409, 429]
    for answer in answers:
        seen = answer.content.decode() + repr(sorted(answer.items()))
        assert not [s for s in secrets if s in seen]
        assert "ya29." not in seen and "1//" not in seen and "client_secret" not in seen


# --- issuing credentials ------------------------------------------------------------


def test_create_platform_credential_prints_the_token_once():
    out = StringIO()
    call_command(
        "create_platform_credential",
        "acme-backend",
        "--scope",
        READ,
        "--scope",
        WRITE,
        "--expires-in",
        "30",
        stdout=out,
    )
    token = out.getvalue().strip()
    assert token.startswith("ihp_")
    row = PlatformCredential.objects.get()
    assert row.scopes == [READ, WRITE] and row.expires_at is not None
    assert token not in row.token_hash and row.prefix == token[:10]
    with pytest.raises(CommandError, match="exists"):
        call_command("create_platform_credential", "acme-backend", "--scope", READ)
    with pytest.raises(CommandError, match="scopes"):
        call_command("create_platform_credential", "other")


def test_a_credential_needs_a_known_scope():
    with pytest.raises(PlatformCredentialError):
        services.platform_credential_create(name="x", scopes=[])
    with pytest.raises(PlatformCredentialError):
        services.platform_credential_create(name="x", scopes=["connections:admin"])


def test_staff_create_a_credential_in_the_admin_shown_once(admin_client):
    url = reverse("admin:apps_registry_platformcredential_add")
    assert admin_client.get(url).status_code == 200

    resp = admin_client.post(url, {"name": "acme", "scopes": [READ], "expires_in_days": ""})

    assert resp.status_code == 200
    row = PlatformCredential.objects.get()
    token = resp.context["token"]
    assert token.startswith("ihp_") and token in resp.content.decode()
    assert row.scopes == [READ] and row.created_by is not None
    assert "no-store" in resp["Cache-Control"]
    # Never again: not on the list, not on the row's page.
    listing = admin_client.get(reverse("admin:apps_registry_platformcredential_changelist"))
    page = admin_client.get(reverse("admin:apps_registry_platformcredential_change", args=[row.pk]))
    for later in (listing, page):
        assert later.status_code == 200
        assert token not in later.content.decode() and row.token_hash not in later.content.decode()
    # Revoked by the list's action.
    admin_client.post(
        reverse("admin:apps_registry_platformcredential_changelist"),
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.revoked_at is not None
