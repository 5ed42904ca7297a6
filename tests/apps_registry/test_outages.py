"""Readiness means a run would succeed now: one outage rule for the app page and the
run environment API (503/409 carry the page's facts), the one reconnect action shape,
and Retry now (POST, CSRF, owner only, rate limited, past the backoff once)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps_registry import services
from integrations.connections.store import connection_access_token
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import Connection, Secret
from integrations.providers import registry
from integrations.secrets import secret_set
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory

from .test_run_env import MANIFEST

pytestmark = pytest.mark.django_db
URL = "/api/v1/run-environments/"
PAGE = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "digest"})
SCOPES = ["openid", "email", G + "spreadsheets", G + "gmail.send"]


@pytest.fixture(autouse=True)
def _no_retry_limits_left_over():
    # Retry now's rate limit lives in the cache, which outlives a test's transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def runner() -> str:
    return services.runner_token_create(name="runner-test", all_namespaces=True)[1]


@pytest.fixture
def app(alice):
    return services.manifest_upload(user=alice, text=MANIFEST).app


def ask(token: str, **body: object):
    return Client().post(
        URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def token_url() -> str:
    return registry.provider_config("google").token_url


def failing(user, *, backoff: timedelta | None = timedelta(minutes=10), **fields) -> Connection:
    """Bob's connection as a failed refresh leaves it: expired token, Google did not
    answer, backing off (or not any more)."""
    conn = ConnectionFactory.create(user=user, is_default=True, scopes=SCOPES)
    secret_set(user=user, key="FAL_KEY", value="fal-secret-value")
    allow_declared(user, "acme/digest")
    now = timezone.now()
    values = {
        "status": "refresh_failing",
        "expires_at": now - timedelta(minutes=1),
        "backoff_until": now + backoff if backoff is not None else None,
        "last_error_code": "timeout",
        "refresh_failures": 1,
        **fields,
    }
    Connection.objects.filter(pk=conn.pk).update(**values)
    conn.refresh_from_db()
    return conn


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def hhmm(moment) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


# --- one rule: the page and the API ---------------------------------------------------


def test_page_and_api_agree_on_a_backing_off_connection(client, runner, app, bob):
    conn = failing(bob)
    client.force_login(bob)
    html = client.get(PAGE).content.decode()
    assert '<h2 id="readiness-heading">Temporarily unavailable</h2>' in html
    assert "Ready</h2>" not in html
    assert "Temporarily unavailable: Google did not answer" in html
    assert f"retrying at {hhmm(conn.backoff_until)}" in html
    retry = reverse("apps_registry:retry_now", args=["acme", "digest", conn.pk])
    assert f'action="{retry}"' in html and "Retry now</button>" in html

    with responses.RequestsMock() as rsps:  # no request while backing off
        resp = ask(runner, user="bob@example.com", app="acme/digest")
        assert len(rsps.calls) == 0
    assert resp.status_code == 503, resp.content
    body = resp.json()
    assert body["error"] == "provider_unavailable"
    assert (body["provider"], body["connection_id"], body["reason"]) == (
        "google",
        conn.pk,
        "timeout",
    )
    assert conn.backoff_until is not None
    assert body["retry_at"].startswith(conn.backoff_until.strftime("%Y-%m-%dT%H:%M"))
    assert body["unavailable"] == [
        {k: body[k] for k in ("provider", "connection_id", "reason", "retry_at")}
    ]
    assert 1 <= int(resp["Retry-After"]) <= 601
    assert "ya29" not in resp.content.decode()


def test_a_failed_refresh_on_the_run_path_answers_503_and_the_page_says_the_same(
    client, runner, app, bob
):
    conn = ConnectionFactory.create(user=bob, is_default=True, scopes=SCOPES)
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    allow_declared(bob, "acme/digest")
    Connection.objects.filter(pk=conn.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    client.force_login(bob)
    assert '<h2 id="readiness-heading">Ready to run</h2>' in client.get(PAGE).content.decode()

    with responses.RequestsMock() as rsps:
        rsps.add("POST", token_url(), status=503)
        resp = ask(runner, user="bob@example.com", app="acme/digest")
    assert resp.status_code == 503, resp.content
    conn.refresh_from_db()
    assert (conn.status, conn.last_error_code) == ("refresh_failing", "http_503")
    body = resp.json()
    assert (body["connection_id"], body["reason"]) == (conn.pk, "http_503")
    assert conn.backoff_until is not None
    assert body["retry_at"].startswith(conn.backoff_until.strftime("%Y-%m-%dT%H:%M"))
    html = client.get(PAGE).content.decode()
    assert '<h2 id="readiness-heading">Temporarily unavailable</h2>' in html
    assert f"retrying at {hhmm(conn.backoff_until)}" in html


def test_refresh_failing_with_a_valid_token_is_still_ready_and_runs(client, runner, app, bob):
    failing(bob, expires_at=timezone.now() + timedelta(hours=1))
    client.force_login(bob)
    assert '<h2 id="readiness-heading">Ready to run</h2>' in client.get(PAGE).content.decode()
    assert ask(runner, user="bob@example.com", app="acme/digest").status_code == 200


def test_409_carries_the_outage_facts_too(runner, app, bob):
    conn = failing(bob)
    Secret.objects.filter(user=bob).delete()
    resp = ask(runner, user="bob@example.com", app="acme/digest")
    assert resp.status_code == 409
    (fact,) = resp.json()["unavailable"]
    assert (fact["provider"], fact["connection_id"], fact["reason"]) == (
        "google",
        conn.pk,
        "timeout",
    )


def test_an_outage_on_an_optional_provider_does_not_fail_the_run(runner, alice, bob):
    services.manifest_upload(
        user=alice,
        text="namespace: acme\nname: opt\nintegrations:\n  - key: google.sheets.readonly\n"
        "    optional: true\n",
    )
    failing(bob)
    with responses.RequestsMock():
        resp = ask(runner, user="bob@example.com", app="acme/opt")
    assert resp.status_code == 200, resp.content
    assert resp.json()["env"] == {}


def test_the_page_query_count_is_the_same_with_an_outage(client, app, bob):
    client.force_login(bob)
    conn = ConnectionFactory.create(user=bob, is_default=True, scopes=SCOPES)
    client.get(PAGE)
    with CaptureQueriesContext(db) as fine:
        client.get(PAGE)
    Connection.objects.filter(pk=conn.pk).update(
        status="refresh_failing", expires_at=timezone.now() - timedelta(minutes=1)
    )
    with CaptureQueriesContext(db) as down:
        assert "Retry now" in client.get(PAGE).content.decode()
    assert len(down.captured_queries) == len(fine.captured_queries)


# --- one reconnect shape ----------------------------------------------------------------


def test_every_reconnect_action_has_one_shape(runner, app, bob):
    conn = ConnectionFactory.create(
        user=bob, is_default=True, scopes=SCOPES, status="needs_reconnect"
    )
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    allow_declared(bob, "acme/digest")
    known = ask(runner, user="bob@example.com", app="acme/digest").json()
    (a,) = [x for x in known["actions"] if x["kind"] == "reconnect"]

    # Found dead while building: the same keys and values.
    Connection.objects.filter(pk=conn.pk).update(
        status="active", expires_at=timezone.now() - timedelta(minutes=1)
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", token_url(), status=400, json={"error": "invalid_grant"})
        found = ask(runner, user="bob@example.com", app="acme/digest").json()
    (b,) = [x for x in found["actions"] if x["kind"] == "reconnect"]
    assert a == b
    assert a["connection_id"] == conn.pk
    assert a["capabilities"] == ["google.sheets.readonly", "google.gmail.send"]
    assert a["url"].endswith("/apps/acme/digest/")


# --- Retry now --------------------------------------------------------------------------


def retry_url(conn: Connection) -> str:
    return reverse("apps_registry:retry_now", args=["acme", "digest", conn.pk])


def test_retry_now_refreshes_past_the_backoff_once_a_minute(client, app, bob):
    conn = failing(bob)
    client.force_login(bob)
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            token_url(),
            json={"access_token": "ya29.fresh", "expires_in": 3600, "token_type": "Bearer"},
        )
        resp = client.post(retry_url(conn))
        assert len(rsps.calls) == 1
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert texts(resp) == ["Google answered: the connection works again."]
    conn.refresh_from_db()
    assert conn.status == "active" and conn.backoff_until is None
    assert connection_access_token(connection=conn) == "ya29.fresh"
    assert '<h2 id="readiness-heading">Ready to run</h2>' in client.get(PAGE).content.decode()

    # Asked again at once: no request, the row untouched.
    before = conn.attempts_in_window
    with responses.RequestsMock() as rsps:
        resp = client.post(retry_url(conn))
        assert len(rsps.calls) == 0
    assert resp.status_code == 302
    (message,) = texts(resp)
    assert message.startswith("You asked a moment ago: try again after ")
    conn.refresh_from_db()
    assert conn.attempts_in_window == before


def test_retry_now_still_failing_says_the_code_and_the_next_attempt(client, app, bob):
    conn = failing(bob)
    client.force_login(bob)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", token_url(), status=502)
        resp = client.post(retry_url(conn))
    conn.refresh_from_db()
    assert (conn.status, conn.last_error_code, conn.refresh_failures) == (
        "refresh_failing",
        "http_502",
        2,
    )
    assert texts(resp) == [
        f"Still failing: http_502; next attempt at {hhmm(conn.backoff_until)} UTC."
    ]
    assert "ya29" not in " ".join(texts(resp))


def test_retry_now_is_the_owners_only_post_only_with_csrf(client, app, alice, bob):
    conn = failing(bob)
    client.force_login(alice)
    with responses.RequestsMock():
        assert client.post(retry_url(conn)).status_code == 404
    unchanged = Connection.objects.get(pk=conn.pk)
    assert (unchanged.attempts_in_window, unchanged.backoff_until) == (0, conn.backoff_until)

    client.force_login(bob)
    assert client.get(retry_url(conn)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    assert strict.post(retry_url(conn)).status_code == 403
    anonymous = Client().post(retry_url(conn))
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert Connection.objects.get(pk=conn.pk).attempts_in_window == 0
    huge = reverse("apps_registry:app", args=["acme", "digest"]) + "retry/99999999999999999999/"
    assert client.post(huge).status_code == 404


def test_retry_now_on_an_app_with_a_dotted_name(client, alice, bob):
    """Real apps carry version numbers in their names: the page links Retry now, and
    the retry lands back on the page."""
    services.manifest_upload(user=alice, text=MANIFEST.replace("name: digest", "name: digest-2.5"))
    conn = failing(bob)
    client.force_login(bob)
    page = reverse("apps_registry:app", args=["acme", "digest-2.5"])
    html = client.get(page).content.decode()
    retry = reverse("apps_registry:retry_now", args=["acme", "digest-2.5", conn.pk])
    assert f'action="{retry}"' in html
    with responses.RequestsMock() as rsps:
        rsps.add("POST", token_url(), json={"error": "server_error"}, status=503)
        resp = client.post(retry)
    assert resp.status_code == 302 and resp["Location"] == page
