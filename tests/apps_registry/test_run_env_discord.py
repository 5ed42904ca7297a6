"""An app declaring Discord's OAuth capabilities (and the bot token, as the real
``discord/message-send`` does): the manifest uploads, the app page and the run API say
what is missing, and the run environment hands ``DISCORD_ACCESS_TOKEN`` (refreshed
first, with Discord's rotated refresh token kept), never the refresh token."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps_registry import services
from apps_registry.manifest import parse_manifest
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.models import Connection
from integrations.secrets import secret_set
from tests.authorization import allow_declared
from tests.integrations.discord_fakes import discord_connect, discord_fake

pytestmark = pytest.mark.django_db

# Modelled on the published discord/message-send manifest (tests/fixtures/manifests/).
MANIFEST = """\
namespace: acme
name: guild-digest
description: Post a daily digest to each Discord server you are in, through your bot.
metadata: {}
category: social
kernel: python-3.11
integrations:
    - key: discord.guilds
      description: List the servers you are in
    - key: discord.bot
      description: Post the digest via your bot
      optional: true
resources:
    gpu:
        count: 0
        vram: 0
        type: none
    ram: 2000000000
"""
BOT_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQz.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture
def discord(settings):
    yield from discord_fake(settings)


@pytest.fixture
def runner() -> str:
    return services.runner_token_create(name="r", all_namespaces=True)[1]


def ask(token: str, **body: object):
    return Client().post(
        "/api/v1/run-environments/",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_the_manifest_declares_known_capabilities():
    parsed = parse_manifest(MANIFEST)
    assert [e.key for e in parsed.integrations] == ["discord.guilds", "discord.bot"]
    assert not [w for w in parsed.warnings if "discord" in str(w)]


def test_a_run_gets_discord_access_token(client, alice, bob, discord, runner):
    services.manifest_upload(user=alice, text=MANIFEST)

    body = ask(runner, user="bob@example.com", app="acme/guild-digest").json()
    assert body["error"] == "not_ready"
    assert [(m["key"], m["reason"]) for m in body["missing"]] == [
        ("discord.guilds", "not_connected")
    ]
    (action,) = [a for a in body["actions"] if a["kind"] == "connect"]
    assert action["provider"] == "discord" and action["capabilities"] == ["discord.guilds"]

    client.force_login(bob)
    discord_connect(client, discord, ["discord.guilds"])
    secret_set(user=bob, key="DISCORD_BOT_TOKEN", value=BOT_TOKEN)
    allow_declared(bob, "acme/guild-digest")
    conn = Connection.objects.get(user=bob, provider="discord")

    resp = ask(runner, user="bob@example.com", app="acme/guild-digest")
    assert resp.status_code == 200, resp.content
    env = resp.json()["env"]
    assert env == {
        "DISCORD_ACCESS_TOKEN": connection_access_token(connection=conn),
        "DISCORD_BOT_TOKEN": BOT_TOKEN,
    }
    assert connection_refresh_token(connection=conn) not in resp.content.decode()

    # Within the margin of its expiry: refreshed first, the rotated refresh token kept.
    before = connection_refresh_token(connection=conn)
    now = timezone.now()
    Connection.objects.filter(pk=conn.pk).update(
        last_refreshed_at=now - timedelta(days=7), expires_at=now + timedelta(minutes=5)
    )
    env = ask(runner, user="bob@example.com", app="acme/guild-digest").json()["env"]
    conn.refresh_from_db()
    assert discord.token_requests[-1]["refresh_token"] == before
    assert env["DISCORD_ACCESS_TOKEN"] == connection_access_token(connection=conn)
    assert connection_refresh_token(connection=conn) != before
    assert set(env) == {"DISCORD_ACCESS_TOKEN", "DISCORD_BOT_TOKEN"}


def test_an_identify_grant_does_not_serve_an_app_needing_guilds(
    client, alice, bob, discord, runner
):
    services.manifest_upload(user=alice, text=MANIFEST)
    client.force_login(bob)
    discord_connect(client, discord, ["discord.identify"])
    allow_declared(bob, "acme/guild-digest")

    body = ask(runner, user="bob@example.com", app="acme/guild-digest").json()
    assert body["error"] == "not_ready"
    assert [(m["key"], m["reason"]) for m in body["missing"]] == [("discord.guilds", "not_granted")]
    (action,) = [a for a in body["actions"] if a["provider"] == "discord"]
    assert action["capabilities"] == ["discord.guilds"]
