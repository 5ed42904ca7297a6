"""A connection's card on the Integrations page: when it was connected and last used by
an app, a plain status line with its next step, and Retry now (a forced refresh). The
provider is faked at the HTTP edge (``responses``)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps_registry import services
from integrations.audit import audit_record
from integrations.models import AuditEvent, Connection
from integrations.selectors import APP_USE_WINDOW
from tests.authorization import allow_declared

from .factories import ConnectionFactory
from .test_refresh import TokenEndpoint

pytestmark = pytest.mark.django_db
PAGE = reverse("integrations:page")
MANIFEST = """\
namespace: acme
name: digest
integrations:
  - key: google.sheets.readonly
    description: Read the source sheet
"""


@pytest.fixture
def endpoint():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TokenEndpoint(rsps)


def card(html: str, account: str) -> str:
    return html.split(f'aria-label="Google connection {account}"')[1].split("</article>")[0]


def failing(user, *, account: str = "a@gmail.example", **fields) -> Connection:
    conn = ConnectionFactory.create(user=user, account_email=account)
    fields = {"status": "refresh_failing", "last_error_code": "http_500", **fields}
    Connection.objects.filter(pk=conn.pk).update(**fields)
    conn.refresh_from_db()
    return conn


def retry_url(conn: Connection) -> str:
    return reverse("integrations:retry_refresh", kwargs={"id": conn.pk})


# --- connected, last used ---------------------------------------------------------------


def test_a_new_connection_says_when_it_was_connected_and_that_no_app_used_it(alice_client, alice):
    conn = ConnectionFactory.create(user=alice, account_email="a@gmail.example")
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert f'Connected <time datetime="{conn.created_at.isoformat()}">' in html
    assert "Not used by an app yet." in html
    assert "No app is allowed to use it yet." in html


def test_last_used_names_the_app_whose_run_got_the_token(alice_client, alice):
    runner = services.runner_token_create(name="runner-test", all_namespaces=True)[1]
    services.manifest_upload(user=alice, text=MANIFEST)
    used = ConnectionFactory.create(user=alice, account_email="used@gmail.example", is_default=True)
    ConnectionFactory.create(user=alice, account_email="idle@gmail.example")
    allow_declared(alice, "acme/digest")
    resp = Client().post(
        "/api/v1/run-environments/",
        json.dumps({"user": alice.email, "app": "acme/digest"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {runner}",
    )
    assert resp.status_code == 200, resp.content

    html = alice_client.get(PAGE).content.decode()
    run = AuditEvent.objects.get(kind="run_environment")
    assert run.detail["connections"] == {"google": used.pk}
    used_card = card(html, "used@gmail.example")
    assert f'Last used <time datetime="{run.created_at.isoformat()}">' in used_card
    assert "(now) by <code>acme/digest</code>." in used_card
    assert "Not used by an app yet." in card(html, "idle@gmail.example")


def test_a_use_older_than_the_recent_runs_is_still_found(alice_client, alice):
    old = ConnectionFactory.create(user=alice, account_email="old@gmail.example")
    busy = ConnectionFactory.create(user=alice, account_email="busy@gmail.example")
    audit_record(
        kind=AuditEvent.Kind.RUN_ENVIRONMENT,
        provider="",
        user=alice,
        detail={"app": "acme/yearly", "connections": {"google": old.pk}},
    )
    for _ in range(APP_USE_WINDOW):
        audit_record(
            kind=AuditEvent.Kind.RUN_ENVIRONMENT,
            provider="",
            user=alice,
            detail={"app": "acme/hourly", "connections": {"google": busy.pk}},
        )
    html = alice_client.get(PAGE).content.decode()
    assert "by <code>acme/yearly</code>" in card(html, "old@gmail.example")
    assert "by <code>acme/hourly</code>" in card(html, "busy@gmail.example")


# --- the status line ----------------------------------------------------------------------


def test_active_with_a_refresh_token_is_renewed_automatically(alice_client, alice):
    ConnectionFactory.create(user=alice, account_email="a@gmail.example")
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Working. Renewed automatically." in html
    assert "Retry now" not in html and "Reconnect" not in html


def test_active_without_a_refresh_token_is_not_said_to_renew(alice_client, alice):
    conn = ConnectionFactory.create(user=alice, account_email="a@gmail.example")
    Connection.objects.filter(pk=conn.pk).update(refresh_token_encrypted=None)
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Working until <time" in html
    assert "gave no way to renew it: reconnect then." in html
    assert "Renewed automatically" not in html


def test_failing_says_what_google_did_when_we_retry_and_offers_retry_now(alice_client, alice):
    retry_at = timezone.now() + timedelta(minutes=10)
    conn = failing(alice, backoff_until=retry_at)
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Google did not answer our last renewal." in html
    assert "The current access works until <time" in html
    assert f'We retry automatically at <time datetime="{retry_at.isoformat()}">' in html
    assert f'action="{retry_url(conn)}"' in html and ">Retry now</button>" in html
    # The code is a detail for support, not the sentence.
    assert "http_500" not in html.split("Details for support")[0]
    assert "Renewed automatically" not in html


def test_failing_after_expiry_says_access_has_stopped(alice_client, alice):
    failing(alice, expires_at=timezone.now() - timedelta(minutes=5), last_error_code="timeout")
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Google did not answer our last renewal." in html
    assert "Access has stopped since <time" in html
    assert "until a renewal succeeds" in html
    assert "We retry automatically soon." in html
    assert "Retry now" in html
    assert "enewed automatically" not in html and "works until" not in html


def test_failing_without_a_stated_expiry_says_no_end_it_does_not_know(alice_client, alice):
    failing(alice, expires_at=None)
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Google did not answer our last renewal." in html
    assert "works until" not in html and "None" not in html
    assert "We retry automatically" in html and "Retry now" in html


def test_retry_now_when_the_token_key_is_gone_sends_the_user_to_staff(
    alice_client, alice, endpoint, settings, caplog
):
    conn = failing(alice)
    settings.INTEGRATIONS_TOKEN_KEYS = [
        "hDZ3GwRxd2m4vmL7UZd0i9Hk0fFsHxpJ8Yw3P4NK1n8="
    ]  # not its key
    resp = alice_client.post(retry_url(conn), follow=True)
    assert resp.status_code == 200
    assert "cannot be renewed until the server's staff fix its setup" in unescape(_messages(resp))
    assert not endpoint.calls
    assert any("Retry now cannot renew it" in r.getMessage() for r in caplog.records)


def test_a_refused_renewal_is_not_called_silence(alice_client, alice):
    failing(alice, last_error_code="invalid_client")
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Google refused our last renewal." in html


def test_needs_reconnect_offers_reconnect(alice_client, alice):
    conn = failing(alice, status="needs_reconnect", last_error_code="invalid_grant")
    html = card(alice_client.get(PAGE).content.decode(), "a@gmail.example")
    assert "Google no longer accepts this connection" in html
    reconnect = reverse("integrations:reconnect", kwargs={"id": conn.pk})
    assert f'action="{reconnect}"' in html and ">Reconnect</button>" in html
    assert "Retry now" not in html and "invalid_grant" not in html


# --- Retry now -------------------------------------------------------------------------


def _messages(resp) -> str:
    return resp.content.decode().split('<ul class="messages">')[1].split("</ul>")[0]


def test_retry_now_renews_a_failing_connection(alice_client, alice, endpoint):
    conn = failing(alice, backoff_until=timezone.now() + timedelta(hours=1))
    resp = alice_client.post(retry_url(conn), follow=True)
    assert resp.redirect_chain == [(PAGE + "#provider-google", 302)]
    assert "Renewed: Google answered and the connection works again." in _messages(resp)
    conn.refresh_from_db()
    assert conn.status == "active" and conn.last_error_code == ""
    assert len(endpoint.calls) == 1 and endpoint.calls[0]["grant_type"] == "refresh_token"
    event = AuditEvent.objects.get(kind="refresh_forced", connection_id=conn.pk)
    assert event.ok and event.detail == {"by": f"user:{alice.pk}", "via": "integrations_page"}
    assert "Working. Renewed automatically." in card(resp.content.decode(), "a@gmail.example")


def test_retry_now_twice_in_a_row_is_rate_limited(alice_client, alice, endpoint):
    endpoint.default = (503, {"error": "backend_error"})
    conn = failing(alice)
    first = alice_client.post(retry_url(conn), follow=True)
    assert "Google could not renew it this time. We keep retrying automatically." in _messages(
        first
    )
    second = alice_client.post(retry_url(conn), follow=True)
    assert re.search(
        r"A retry was made moments ago\. You can retry in (1 second|\d+ seconds);",
        _messages(second),
    )
    assert len(endpoint.calls) == 1
    conn.refresh_from_db()
    assert conn.status == "refresh_failing"


def test_retry_now_on_a_dead_grant_asks_to_reconnect(alice_client, alice, endpoint):
    endpoint.default = (400, {"error": "invalid_grant"})
    conn = failing(alice)
    resp = alice_client.post(retry_url(conn), follow=True)
    assert "Google no longer accepts this connection. Reconnect it" in _messages(resp)
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect"
    assert "invalid_grant" not in _messages(resp)


def test_retry_now_is_post_only_and_owned(alice_client, bob, endpoint):
    conn = failing(bob)
    assert alice_client.post(retry_url(conn)).status_code == 404
    assert alice_client.get(retry_url(conn)).status_code == 405
    conn.refresh_from_db()
    assert conn.last_forced_refresh_at is None and endpoint.calls == []


def test_retry_now_needs_the_csrf_token(alice, endpoint):
    conn = failing(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(retry_url(conn)).status_code == 403
    conn.refresh_from_db()
    assert conn.last_forced_refresh_at is None and endpoint.calls == []
    page = client.get(PAGE).content.decode()
    token = page.split(f'action="{retry_url(conn)}"')[1].split('value="')[1].split('"')[0]
    assert client.post(retry_url(conn), {"csrfmiddlewaretoken": token}).status_code == 302
    assert len(endpoint.calls) == 1


def test_retry_now_refused_by_the_provider_says_so(alice_client, alice, endpoint):
    endpoint.default = (401, {"error": "invalid_client"})
    conn = failing(alice)
    resp = alice_client.post(retry_url(conn), follow=True)
    assert "Google refused the renewal. We keep retrying automatically." in _messages(resp)
    assert "invalid_client" not in _messages(resp)


def test_retry_now_without_a_refresh_token_has_nothing_to_renew(alice_client, alice, endpoint):
    conn = failing(alice, refresh_token_encrypted=None)
    resp = alice_client.post(retry_url(conn), follow=True)
    assert "Nothing to renew with: Google gave this connection no way" in _messages(resp)
    assert endpoint.calls == []


def test_connections_past_the_recent_runs_cost_one_more_query_not_one_each(alice):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from integrations.selectors import last_app_use_by_connection

    old = [
        ConnectionFactory.create(user=alice, account_email=f"old{i}@gmail.example")
        for i in range(3)
    ]
    never = ConnectionFactory.create(user=alice, account_email="never@gmail.example")
    busy = ConnectionFactory.create(user=alice, account_email="busy@gmail.example")
    for i, conn in enumerate(old):
        audit_record(
            kind=AuditEvent.Kind.RUN_ENVIRONMENT,
            provider="",
            user=alice,
            detail={"app": f"acme/yearly-{i}", "connections": {"google": conn.pk}},
        )
    for _ in range(APP_USE_WINDOW):
        audit_record(
            kind=AuditEvent.Kind.RUN_ENVIRONMENT,
            provider="",
            user=alice,
            detail={"app": "acme/hourly", "connections": {"google": busy.pk}},
        )
    with CaptureQueriesContext(db) as ctx:
        uses = last_app_use_by_connection(user=alice, connections=[*old, never, busy])
    assert len(ctx.captured_queries) == 2
    assert {pk: use.app for pk, use in uses.items()} == {
        old[0].pk: "acme/yearly-0",
        old[1].pk: "acme/yearly-1",
        old[2].pk: "acme/yearly-2",
        busy.pk: "acme/hourly",
    }
