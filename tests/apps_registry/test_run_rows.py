"""The run's statements composed once (``apps_registry.run_rows``) give the rows the
querysets they replace gave: the same instances, their relations, the same filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps_registry import run_rows, services
from apps_registry.models import App, ManifestVersion, RunnerToken
from apps_registry.tokens import hash_api_token
from integrations.models import Connection
from tests.integrations.factories import ConnectionFactory

from .test_run_env import MANIFEST

pytestmark = pytest.mark.django_db


def fields(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_the_current_version_and_a_numbered_one_come_with_their_app(alice):
    first = services.manifest_upload(user=alice, text=MANIFEST)
    second = services.manifest_upload(user=alice, text=MANIFEST + "\n# v2\n")
    app = App.objects.get(pk=first.app.pk)
    current = run_rows.version_with_app(namespace="acme", name="digest", number=None)
    assert current is not None
    assert fields(current) == fields(ManifestVersion.objects.get(pk=second.pk))
    assert fields(current.app) == fields(app)
    assert current.parsed["name"] == "digest"
    numbered = run_rows.version_with_app(namespace="acme", name="digest", number=1)
    assert numbered is not None and numbered.pk == first.pk and numbered.app.pk == app.pk
    assert run_rows.version_with_app(namespace="acme", name="digest", number=3) is None
    assert run_rows.version_with_app(namespace="acme", name="other", number=None) is None
    ManifestVersion.objects.filter(pk=first.pk).update(valid=False)
    assert run_rows.version_with_app(namespace="acme", name="digest", number=1) is None


def test_the_connections_of_an_active_user_by_id_or_email(alice, bob):
    older = ConnectionFactory.create(user=alice, account_uid="a-1")
    newer = ConnectionFactory.create(user=alice, account_uid="a-2", is_default=True)
    ConnectionFactory.create(user=bob)
    expected = list(
        Connection.objects.select_related("user", "oauth_client")
        .filter(user=alice)
        .order_by("created_at", "id")
    )
    assert [c.pk for c in expected] == [older.pk, newer.pk]
    for found in (
        run_rows.connections_of(user_id=alice.pk),
        run_rows.connections_of(email="ALICE@example.com"),
    ):
        assert [fields(c) for c in found] == [fields(c) for c in expected]
        assert all(fields(c.user) == fields(alice) for c in found)
        assert all(c.oauth_client is None for c in found)
    (by_email, _) = run_rows.connections_of(email="alice@example.com")
    assert getattr(by_email, "accounts", None) == 1
    assert run_rows.connections_of(email="ali_e@example.com") == []  # no wildcard
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert run_rows.connections_of(user_id=alice.pk) == []


def test_only_a_live_runner_token_is_found():
    row, token = services.runner_token_create(name="ci", all_namespaces=True)
    digest, now = hash_api_token(token), timezone.now()
    found = run_rows.live_runner_token(token_hash=digest, now=now)
    assert found is not None and fields(found) == fields(RunnerToken.objects.get(pk=row.pk))
    assert found.runner.name == "ci" and found.runner.all_namespaces is True
    assert run_rows.live_runner_token(token_hash=hash_api_token(token + "x"), now=now) is None
    RunnerToken.objects.filter(pk=row.pk).update(expires_at=now + timedelta(minutes=1))
    assert run_rows.live_runner_token(token_hash=digest, now=now) is not None
    assert run_rows.live_runner_token(token_hash=digest, now=now + timedelta(minutes=2)) is None
    RunnerToken.objects.filter(pk=row.pk).update(expires_at=None, revoked_at=now)
    assert run_rows.live_runner_token(token_hash=digest, now=now) is None
