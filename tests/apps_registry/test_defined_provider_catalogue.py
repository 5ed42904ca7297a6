"""One catalogue: a provider staff define as data (the Slack preset) is known to the
upload (its capability keys are no unknown integrations) and named by the app page
and readiness as its definition names it and its capabilities, never by slug or key."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from apps_registry import selectors
from apps_registry.manifest import parse_manifest
from integrations.core.catalogue import BUILTIN
from integrations.core.provider_definitions import PRESETS
from integrations.models import Connection, ProviderDefinition
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

NOTIFY = """\
namespace: acme
name: notify
title: Notify
integrations:
  - key: slack.chat.write
    description: Post the summary
  - key: slack.channels.read
    description: Pick the channel
    optional: true
"""
PAGE = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "notify"})


@pytest.fixture
def slack() -> ProviderDefinition:
    definition = ProviderDefinition.objects.create(
        **PRESETS["slack"], client_id="slack-client", enabled=True, last_check_ok=True
    )
    provider_definition_set_secret(definition=definition, secret="slack-secret")
    registry.definitions_changed()
    return definition


def unknown_warnings(problems) -> list:
    return [p for p in problems if "unknown integration" in p["message"]]


def test_the_catalogue_knows_the_defined_provider(slack):
    cat = registry.catalogue()
    assert cat.provider_name("slack") == "Slack"
    assert cat.providers["slack"].env == {"access_token": "SLACK_BOT_TOKEN"}
    assert cat.label("slack.chat.write") == "Slack: post messages"
    assert cat.provider_name("google") == "Google"  # the built-in ones are still there
    assert BUILTIN.provider_name("slack") == "slack"  # BUILTIN stays built-in only


def test_upload_knows_the_defined_providers_capability_keys(alice, upload, slack):
    version = upload(alice, NOTIFY)
    assert version.valid
    assert unknown_warnings(version.warnings) == []
    # The validator alone stays pure: without the catalogue given, built-in keys only.
    assert [w.message for w in parse_manifest(NOTIFY).warnings] == [
        "unknown integration 'slack.chat.write'",
        "unknown integration 'slack.channels.read'",
    ]
    assert parse_manifest(NOTIFY, catalogue=registry.catalogue()).warnings == ()


def test_app_page_names_the_defined_provider_and_its_capabilities(
    client, alice, bob, upload, slack
):
    upload(alice, NOTIFY)
    client.force_login(bob)
    html = client.get(PAGE).content.decode()
    assert "Connect Slack</button>" in html
    assert "Asks Slack for: Slack: post messages, and allows Notify to use it." in html
    assert "Asks Slack for: Slack: post messages, Slack: list channels, and allows Notify" in html
    row = html.split('data-key="slack.chat.write"')[1].split("</li>")[0]
    assert "Slack: post messages" in row and "No Slack account connected" in row
    assert "Connect slack" not in html and "Asks slack" not in html


def test_readiness_names_the_defined_provider(alice, bob, upload, slack):
    upload(alice, NOTIFY)
    app = selectors.app_for_user(user=bob, namespace="acme", name="notify")
    readiness = selectors.readiness_for(user=bob, app=app)
    assert readiness is not None
    chat, channels = readiness.items
    assert (chat.label, chat.provider_name) == ("Slack: post messages", "Slack")
    assert chat.hint == "No Slack account connected"
    assert (channels.label, channels.provider_name) == ("Slack: list channels", "Slack")
    required, optional = readiness.actions
    assert (required.provider_name, required.labels) == ("Slack", ("Slack: post messages",))
    assert optional.labels == ("Slack: post messages", "Slack: list channels")


def failing_slack(user) -> Connection:
    """Bob's Slack connection as a failed refresh leaves it (backing off)."""
    conn = ConnectionFactory.create(
        user=user, provider="slack", account_email="", account_uid="T0001", scopes=["chat:write"]
    )
    now = timezone.now()
    Connection.objects.filter(pk=conn.pk).update(
        status="refresh_failing",
        expires_at=now - timedelta(minutes=1),
        backoff_until=now + timedelta(minutes=10),
        last_error_code="timeout",
    )
    conn.refresh_from_db()
    return conn


def test_an_outage_of_the_defined_provider_is_named(client, alice, bob, upload, slack):
    upload(alice, NOTIFY)
    failing_slack(bob)
    client.force_login(bob)
    html = client.get(PAGE).content.decode()
    assert "Temporarily unavailable: Slack did not answer" in html
    assert 'aria-label="Retry Slack"' in html


def test_retry_now_names_the_defined_provider(client, alice, bob, upload, slack):
    cache.clear()  # Retry now's rate limit lives in the cache
    upload(alice, NOTIFY)
    conn = failing_slack(bob)
    client.force_login(bob)
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            PRESETS["slack"]["token_url"],
            json={"ok": True, "access_token": "xoxb-2", "expires_in": 43200, "token_type": "bot"},
        )
        resp = client.post(reverse("apps_registry:retry_now", args=["acme", "notify", conn.pk]))
        assert len(rsps.calls) == 1
    cache.clear()
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert [str(m) for m in get_messages(resp.wsgi_request)] == [
        "Slack answered: the connection works again."
    ]
