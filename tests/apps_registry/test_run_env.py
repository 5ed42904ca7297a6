"""The run environment API: only what the manifest declares, fresh tokens, a clear
409, runner authentication, the audit log, and a pinned number of queries."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta

import pytest
import responses
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps_registry import services
from apps_registry.models import RunnerToken
from integrations.connections.store import connection_access_token
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import AuditEvent, Connection
from integrations.providers import registry
from integrations.secrets import secret_set
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory
from tests.processes import needs_postgres

pytestmark = pytest.mark.django_db
URL = "/api/v1/run-environments/"

MANIFEST = """\
namespace: acme
name: digest
integrations:
  - key: google.sheets.readonly
    description: Read the source sheet
  - key: google.gmail.send
    description: Send the digest
  - key: google.drive.readonly
    description: Find attachments
    optional: true
secrets:
  - key: FAL_KEY
    description: fal.ai key
  - key: OPTIONAL_KEY
    description: Only if you have one
    optional: true
"""

GOOGLE_KEYS = {
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
    "GOOGLE_OAUTH_CREDENTIALS",
}


@pytest.fixture
def runner() -> str:
    return services.runner_token_create(name="runner-test", all_namespaces=True)[1]


@pytest.fixture
def app(alice):
    return services.manifest_upload(user=alice, text=MANIFEST).app


def ask(token: str, **body: object):
    return Client().post(
        URL,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def ready_user(user) -> Connection:
    conn = ConnectionFactory.create(
        user=user,
        is_default=True,
        scopes=["openid", "email", G + "spreadsheets", G + "gmail.send"],
    )
    secret_set(user=user, key="FAL_KEY", value="fal-secret-value")
    secret_set(user=user, key="UNDECLARED_KEY", value="must-not-leak")
    allow_declared(user, "acme/digest")
    return conn


def test_only_the_declared_keys_with_fresh_tokens(runner, app, bob):
    conn = ready_user(bob)
    resp = ask(runner, user="bob@example.com", app="acme/digest")

    assert resp.status_code == 200, resp.content
    data = resp.json()
    assert set(data["env"]) == GOOGLE_KEYS | {"FAL_KEY"}
    assert data["keys"] == sorted(data["env"])
    assert data["env"]["FAL_KEY"] == "fal-secret-value"
    assert data["env"]["GOOGLE_OAUTH_ACCESS_TOKEN"] == connection_access_token(connection=conn)
    creds = json.loads(data["env"]["GOOGLE_OAUTH_CREDENTIALS"])
    assert set(creds) == {"token", "expiry", "scopes", "token_type"}
    assert G + "spreadsheets" in creds["scopes"]
    assert data["env"]["GOOGLE_OAUTH_TOKEN_EXPIRES_AT"].endswith("Z")
    assert data["app"] == "acme/digest" and data["version"] == 1
    event = AuditEvent.objects.get(kind="run_environment")
    assert event.user == bob and event.detail["keys"] == data["keys"]
    # The runner and which of its tokens: its name and the token's prefix, never the token.
    token = RunnerToken.objects.get()
    assert event.detail["runner"] == f"runner-test ({token.prefix}…)"
    assert runner not in json.dumps(event.detail)
    assert "fal-secret-value" not in json.dumps(event.detail)
    assert "must-not-leak" not in resp.content.decode()


def test_optional_items_come_when_available(runner, app, bob):
    ready_user(bob)
    secret_set(user=bob, key="OPTIONAL_KEY", value="opt")
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert set(resp.json()["env"]) == GOOGLE_KEYS | {"FAL_KEY", "OPTIONAL_KEY"}


def test_not_ready_lists_what_is_missing_and_the_actions(runner, app, bob):
    conn = ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "gmail.send"])
    resp = ask(runner, user="bob@example.com", app="acme/digest")

    assert resp.status_code == 409
    body = resp.json()
    missing = {(m["kind"], m["key"], m["reason"]) for m in body["missing"]}
    assert missing == {
        ("capability", "google.sheets.readonly", "not_granted"),
        ("secret", "FAL_KEY", "secret_not_set"),
    }
    (add,) = [a for a in body["actions"] if a["kind"] == "add_permissions"]
    assert add["connection_id"] == conn.pk
    assert add["capabilities"] == ["google.sheets.readonly"]
    assert add["url"].endswith("/apps/acme/digest/")
    assert any(a["kind"] == "set_secret" for a in body["actions"])
    assert not AuditEvent.objects.filter(kind="run_environment").exists()


def test_a_dead_grant_answers_409_with_reconnect_not_a_dead_token(runner, app, bob):
    conn = ready_user(bob)
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            registry.provider_config("google").token_url,
            status=400,
            json={"error": "invalid_grant"},
        )
        resp = ask(runner, user="bob@example.com", app="acme/digest")
    assert resp.status_code == 409
    body = resp.json()
    assert {"kind": "capability", "key": "google.sheets.readonly"}.items() <= body["missing"][
        0
    ].items()
    (reconnect,) = [a for a in body["actions"] if a["kind"] == "reconnect"]
    assert reconnect["provider"] == "google"
    assert [m["key"] for m in body["missing"]].count("google") == 0  # no duplicate entry
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect"
    # And stays so without another call to Google.
    assert ask(runner, user="bob@example.com", app="acme/digest").status_code == 409


def test_an_expiring_token_is_refreshed_first(runner, app, bob):
    conn = ready_user(bob)
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() + timedelta(minutes=2))
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            registry.provider_config("google").token_url,
            json={"access_token": "ya29.fresh", "expires_in": 3599},
        )
        resp = ask(runner, user="bob@example.com", app="acme/digest")
    assert resp.json()["env"]["GOOGLE_OAUTH_ACCESS_TOKEN"] == "ya29.fresh"


def test_a_named_connection_is_used(runner, app, bob, alice):
    ready_user(bob)
    other = ConnectionFactory.create(
        user=bob, scopes=["openid", "email", G + "spreadsheets.readonly", G + "gmail.send"]
    )
    allow_declared(bob, "acme/digest")  # on the new connection too
    resp = ask(runner, user="bob@example.com", app="acme/digest", connections={"google": other.pk})
    assert resp.json()["env"]["GOOGLE_OAUTH_ACCESS_TOKEN"] == connection_access_token(
        connection=other
    )
    alices = ConnectionFactory.create(user=alice)
    resp = ask(runner, user="bob@example.com", app="acme/digest", connections={"google": alices.pk})
    assert resp.status_code == 404


@pytest.mark.parametrize(
    "body,status",
    [
        ({"user": "nobody@example.com", "app": "acme/digest"}, 404),
        ({"user": "bob@example.com", "app": "acme/nope"}, 404),
        ({"user": "bob@example.com", "app": "acme/digest", "version": 9}, 404),
        ({"user": "bob@example.com", "app": "not-a-slug"}, 400),
        ({"app": "acme/digest"}, 400),
    ],
)
def test_unknown_targets(runner, app, bob, body, status):
    ready_user(bob)
    assert ask(runner, **body).status_code == status


def test_runner_authentication(runner, app, bob, alice, monkeypatch):
    ready_user(bob)
    body = {"user": "bob@example.com", "app": "acme/digest"}
    assert Client().post(URL, body, content_type="application/json").status_code == 401
    assert ask("ihub_run_" + "x" * 43, **body).status_code == 401
    api_token = services.api_token_create(user=alice, name="ci")[1]
    assert ask(api_token, **body).status_code == 401  # an uploader's token is not a runner's

    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert ask(runner, **body).status_code == 200
    assert compared and all(a == b for a, b in compared)  # the hashes, in constant time

    services.runner_token_revoke(runner_token=RunnerToken.objects.get())
    assert ask(runner, **body).status_code == 401


@pytest.mark.parametrize("extra_connections", [0, 19])
@pytest.mark.parametrize("by", ["id", "email"])
def test_query_count_does_not_grow_with_the_connections(runner, app, bob, extra_connections, by):
    ready_user(bob)
    for _ in range(extra_connections):
        ConnectionFactory.create(user=bob, last_used_at=timezone.now())
    Connection.objects.filter(user=bob).update(last_used_at=timezone.now())
    name = str(bob.pk) if by == "id" else "bob@example.com"
    ask(runner, user=name, app="acme/digest")  # warms the provider cache
    with CaptureQueriesContext(db) as ctx:
        resp = ask(runner, user=name, app="acme/digest")
    assert resp.status_code == 200
    # runner token, app + version, connections with the user, secrets, audit
    assert len(ctx.captured_queries) == 5, [q["sql"] for q in ctx.captured_queries]


def test_an_email_two_accounts_share_is_refused(runner, app, alice, bob):
    ready_user(bob)
    alice.email = "BOB@example.com"
    alice.save()
    resp = ask(runner, user="bob@example.com", app="acme/digest")
    assert resp.status_code == 404
    assert "by id" in resp.json()["detail"]
    assert ask(runner, user=str(bob.pk), app="acme/digest").status_code == 200


def test_admin_makes_a_runner_token_and_shows_it_once(admin_client):
    resp = admin_client.post(
        reverse("admin:apps_registry_runnertoken_add"),
        {"name": "runner-eu-1", "namespaces": "acme"},
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    token = html.split('value="ihub_run_')[1].split('"')[0]
    row = RunnerToken.objects.get()
    assert row.runner.namespaces == ["acme"] and not row.runner.all_namespaces
    assert token not in row.token_hash and row.prefix.startswith("ihub_run_")
    listing = admin_client.get(reverse("admin:apps_registry_runnertoken_changelist"))
    assert token not in listing.content.decode()


def test_the_environment_is_never_cached(runner, app, bob):
    ready_user(bob)
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 200
    assert "no-store" in resp["Cache-Control"] and "private" in resp["Cache-Control"]


def test_a_connection_whose_provider_was_deleted_does_not_break_runs(runner, app, bob):
    ready_user(bob)
    ConnectionFactory.create(user=bob, provider="gone", scopes=["read"])
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 200, resp.content
    assert set(resp.json()["env"]) == GOOGLE_KEYS | {"FAL_KEY"}


def test_a_token_no_key_decrypts_is_a_clear_503_not_a_500(runner, app, bob, settings):
    from cryptography.fernet import Fernet

    conn = ready_user(bob)
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    # The keys were replaced without `rotate_token_keys`: nothing stored decrypts.
    settings.INTEGRATIONS_TOKEN_KEYS = [Fernet.generate_key().decode()]
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 503, resp.content
    assert resp.json() == {
        "error": "undecryptable",
        "detail": "a stored credential does not decrypt with the configured keys",
    }


@needs_postgres
def test_naming_a_user_by_email_is_an_index_lookup(bob):
    """Both lookups of the email in the service's one query (the join, and the count of
    accounts sharing it) use the index on UPPER(email), and so does the lookup of a
    user without connections."""
    from apps_registry.run_env import _user_and_connections

    INDEX = "apps_registry_auth_user_upper_email_idx"
    ready_user(bob)
    with CaptureQueriesContext(db) as with_connections:
        _user_and_connections("BOB@example.com")
    Connection.objects.filter(user=bob).delete()
    with CaptureQueriesContext(db) as without:
        _user_and_connections("BOB@example.com")
    (joined,) = with_connections.captured_queries
    *_, alone = without.captured_queries  # the joined query found none; then the user
    with db.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")  # a small table: ask for the plan
        cur.execute("EXPLAIN " + joined["sql"])
        plan = "\n".join(row[0] for row in cur.fetchall())
        assert plan.count(INDEX) == 2, plan
        cur.execute("EXPLAIN " + alone["sql"])
        plan = "\n".join(row[0] for row in cur.fetchall())
        assert INDEX in plan, plan


def test_other_refusals_of_a_refresh_are_a_502_with_the_code_only(runner, app, bob):
    conn = ready_user(bob)
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            registry.provider_config("google").token_url,
            status=400,
            json={"error": "invalid_scope", "error_description": "echoes 1//secret-ish"},
        )
        resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 502, resp.content
    assert resp.json() == {"error": "provider_error", "detail": "invalid_scope"}


@pytest.mark.parametrize("name", ["²", "١٢", "12a", "bob"])
def test_odd_user_names_are_a_404(runner, app, name):
    assert ask(runner, user=name, app="acme/digest").status_code == 404
