"""Scoped runner credentials (issue 11, point 3): a runner serves the apps of the
namespaces it names (or all, explicitly), its tokens may expire, record their last use,
and two may be live at once while rotating."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from apps_registry import selectors, services
from apps_registry.errors import RunnerTokenError
from apps_registry.models import Runner, RunnerToken
from apps_registry.tokens import hash_api_token, make_runner_token, runner_prefix_of
from integrations.models import AuditEvent

from ..authorization import allow_declared
from .test_run_env import MANIFEST, ask, ready_user

pytestmark = pytest.mark.django_db

SHEETS = "namespace: google\nname: sheets\nintegrations:\n  - key: google.sheets.readonly\n"


@pytest.fixture
def apps(alice, admin_user):
    """acme/digest (Alice's) and google/sheets (uploaded by staff into a reserved one)."""
    services.manifest_upload(user=alice, text=MANIFEST)
    services.manifest_upload(user=admin_user, text=SHEETS)


def test_a_runner_scoped_to_acme_gets_403_for_google_sheets(apps, bob):
    ready_user(bob)
    _, token = services.runner_token_create(name="acme-runner", namespaces=["acme"])

    resp = ask(token, user=str(bob.pk), app="google/sheets")
    assert resp.status_code == 403
    body = resp.json()
    assert body["error"] == "runner_scope"
    assert "namespace google" in body["detail"] and token not in resp.content.decode()
    # Refused before anything was looked up or handed out: no audit of a run.
    assert not AuditEvent.objects.filter(kind="run_environment").exists()
    # Nor is an unknown app of another namespace told apart from a known one.
    other = ask(token, user=str(bob.pk), app="google/no-such-app")
    assert other.status_code == 403 and other.json()["error"] == "runner_scope"

    assert ask(token, user=str(bob.pk), app="acme/digest").status_code == 200


def test_an_all_namespaces_runner_serves_every_namespace(apps, bob):
    ready_user(bob)
    allow_declared(bob, "google/sheets")
    _, token = services.runner_token_create(name="any", all_namespaces=True)
    assert ask(token, user=str(bob.pk), app="acme/digest").status_code == 200
    assert ask(token, user=str(bob.pk), app="google/sheets").status_code == 200


def test_an_expired_runner_token_gets_401_like_a_revoked_one(apps, bob):
    ready_user(bob)
    row, token = services.runner_token_create(
        name="short", namespaces=["acme"], expires_at=timezone.now() + timedelta(hours=1)
    )
    assert ask(token, user=str(bob.pk), app="acme/digest").status_code == 200
    # The clock passes its expiry (the row's, not a patched clock: the API reads now()).
    RunnerToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    resp = ask(token, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 401
    assert resp.json() == {"detail": "Invalid, expired or revoked runner token."}
    assert token not in resp.content.decode()
    services.runner_token_revoke(runner_token=row)
    assert ask(token, user=str(bob.pk), app="acme/digest").json() == resp.json()


def test_last_use_is_recorded(apps, bob):
    ready_user(bob)
    row, token = services.runner_token_create(name="r", namespaces=["acme"])
    assert row.last_used_at is None
    ask(token, user=str(bob.pk), app="acme/digest")
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_a_runner_holds_two_tokens_while_rotating_and_never_three(apps, bob):
    ready_user(bob)
    old_row, old = services.runner_token_create(name="eu-1", namespaces=["acme"])
    runner = old_row.runner
    new_row, new = services.runner_token_issue(runner=runner)

    # Both work until the old one is revoked.
    assert ask(old, user=str(bob.pk), app="acme/digest").status_code == 200
    assert ask(new, user=str(bob.pk), app="acme/digest").status_code == 200
    with pytest.raises(RunnerTokenError, match="has 2 live tokens already: revoke the old one"):
        services.runner_token_issue(runner=runner)
    assert runner.tokens.count() == 2

    services.runner_token_revoke(runner_token=old_row)
    assert ask(old, user=str(bob.pk), app="acme/digest").status_code == 401
    assert ask(new, user=str(bob.pk), app="acme/digest").status_code == 200
    services.runner_token_issue(runner=runner)  # a free slot again
    # An expired token no longer holds a slot either.
    RunnerToken.objects.filter(pk=new_row.pk).update(expires_at=timezone.now())
    services.runner_token_issue(runner=runner)


def test_the_audit_log_names_the_runner_and_its_token(apps, bob):
    ready_user(bob)
    row, token = services.runner_token_create(name="eu-1", namespaces=["acme"])
    second, _ = services.runner_token_issue(runner=row.runner)
    ask(token, user=str(bob.pk), app="acme/digest")
    event = AuditEvent.objects.get(kind="run_environment")
    assert event.detail["runner"] == f"eu-1 ({row.prefix}…)"
    assert second.prefix not in event.detail["runner"]
    assert token not in json.dumps(event.detail)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"namespaces": ["acme"], "all_namespaces": True}, {"namespaces": ["  "]}],
)
def test_a_scope_is_always_explicit(kwargs):
    with pytest.raises(RunnerTokenError, match="Give the runner a scope"):
        services.runner_token_create(name="r", **kwargs)
    assert not Runner.objects.exists() and not RunnerToken.objects.exists()


def test_a_runner_name_is_taken_once():
    services.runner_token_create(name="r", namespaces=["acme"])
    with pytest.raises(RunnerTokenError, match="A runner named r exists"):
        services.runner_token_create(name="r", all_namespaces=True)
    assert RunnerToken.objects.count() == 1


# --- manage.py create_runner_token --------------------------------------------------


def test_the_command_refuses_a_runner_without_a_scope():
    with pytest.raises(CommandError, match="Give the runner a scope: --namespace NS"):
        call_command("create_runner_token", "eu-1", stdout=StringIO())
    assert not Runner.objects.exists()


def test_the_command_makes_a_scoped_expiring_runner_and_rotates(apps, bob):
    ready_user(bob)
    out = StringIO()
    call_command(
        "create_runner_token",
        "eu-1",
        "--namespace",
        "acme",
        "--namespace",
        "beta",
        "--expires-in",
        "7",
        stdout=out,
    )
    token = out.getvalue().strip()
    runner = Runner.objects.get()
    assert runner.namespaces == ["acme", "beta"] and not runner.all_namespaces
    row = runner.tokens.get()
    assert row.expires_at is not None
    assert timedelta(days=6, hours=23) < row.expires_at - timezone.now() <= timedelta(days=7)
    assert ask(token, user=str(bob.pk), app="acme/digest").status_code == 200
    assert ask(token, user=str(bob.pk), app="google/sheets").status_code == 403

    out = StringIO()
    call_command("create_runner_token", "eu-1", "--rotate", stdout=out)
    second = out.getvalue().strip()
    assert second != token and runner.tokens.count() == 2
    assert ask(second, user=str(bob.pk), app="acme/digest").status_code == 200
    with pytest.raises(CommandError, match="has 2 live tokens already"):
        call_command("create_runner_token", "eu-1", "--rotate", stdout=StringIO())
    with pytest.raises(CommandError, match="--rotate keeps the runner's scope"):
        call_command("create_runner_token", "eu-1", "--rotate", "--all-namespaces")
    with pytest.raises(CommandError, match="No runner is named eu-2"):
        call_command("create_runner_token", "eu-2", "--rotate")


def test_the_command_makes_an_all_namespaces_runner():
    call_command("create_runner_token", "any", "--all-namespaces", stdout=StringIO())
    assert Runner.objects.get().all_namespaces


# --- the admin --------------------------------------------------------------------


def test_the_admin_lists_scope_expiry_and_last_use(admin_client, apps, bob):
    ready_user(bob)
    row, token = services.runner_token_create(
        name="eu-1", namespaces=["acme"], expires_at=timezone.now() + timedelta(days=3)
    )
    ask(token, user=str(bob.pk), app="acme/digest")
    html = admin_client.get(reverse("admin:apps_registry_runnertoken_changelist")).content.decode()
    assert "eu-1" in html and row.prefix in html and ">acme<" in html
    assert "live" in html
    assert token not in html and row.token_hash not in html
    row.refresh_from_db()
    assert row.last_used_at is not None
    runners = admin_client.get(reverse("admin:apps_registry_runner_changelist")).content.decode()
    assert "eu-1" in runners and "acme" in runners


def test_the_admin_issues_a_second_token_shown_once(admin_client):
    row, _ = services.runner_token_create(name="eu-1", namespaces=["acme"])
    runner = row.runner
    resp = admin_client.post(
        reverse("admin:apps_registry_runner_changelist"),
        {"action": "issue_token", "_selected_action": [runner.pk]},
    )
    assert resp.status_code == 302
    add = resp["Location"]
    assert add == f"{reverse('admin:apps_registry_runnertoken_add')}?runner={runner.pk}"
    page = admin_client.get(add).content.decode()
    assert f'<option value="{runner.pk}" selected>' in page

    resp = admin_client.post(add, {"runner": runner.pk, "expires_in_days": "30"})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"].startswith("max-age=0")
    token = resp.content.decode().split('value="ihub_run_')[1].split('"')[0]
    assert runner.tokens.count() == 2
    listing = admin_client.get(reverse("admin:apps_registry_runnertoken_changelist"))
    assert token not in listing.content.decode()

    # A third live one is refused on the page, with what to do.
    resp = admin_client.post(add, {"runner": runner.pk})
    assert resp.status_code == 200
    assert "revoke the old one first" in resp.content.decode()
    assert runner.tokens.count() == 2


def test_the_admin_changes_a_runners_scope(admin_client):
    row, _ = services.runner_token_create(name="eu-1", namespaces=["acme"])
    url = reverse("admin:apps_registry_runner_change", args=[row.runner.pk])
    resp = admin_client.post(url, {"namespaces_text": "acme, beta"})
    assert resp.status_code == 302
    row.runner.refresh_from_db()
    assert row.runner.namespaces == ["acme", "beta"]
    resp = admin_client.post(url, {"namespaces_text": "", "all_namespaces": ""})
    assert resp.status_code == 200 and "Give the runner a scope" in resp.content.decode()
    resp = admin_client.post(url, {"namespaces_text": "acme Bad/Name"})
    assert resp.status_code == 200 and "Not a namespace: bad/name." in resp.content.decode()
    resp = admin_client.post(
        reverse("admin:apps_registry_runnertoken_add"), {"name": "eu-2", "namespaces": "../x"}
    )
    assert resp.status_code == 200 and "Not a namespace: ../x." in resp.content.decode()
    assert not Runner.objects.filter(name="eu-2").exists()
    row.runner.refresh_from_db()
    assert row.runner.namespaces == ["acme", "beta"]


# --- the migration ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_existing_tokens_working_with_all_namespaces():
    """A token made before runners existed: after migrating, a runner of its name with
    an explicit all-namespaces scope holds it, and it still authenticates."""
    before = [("apps_registry", "0003_user_email_index")]
    executor = MigrationExecutor(db)
    leaves = executor.loader.graph.leaf_nodes()
    token = make_runner_token()
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("apps_registry", "RunnerToken")
        old.objects.create(
            name="legacy", prefix=runner_prefix_of(token), token_hash=hash_api_token(token)
        )
    finally:
        executor = MigrationExecutor(db)
        executor.migrate(leaves)
    row = selectors.runner_token_for(token=token)
    assert row is not None and row.runner.name == "legacy" and row.runner.all_namespaces
    assert row.runner.namespaces == [] and row.expires_at is None

    # And back: the token gets its runner's name again.
    try:
        executor = MigrationExecutor(db)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("apps_registry", "RunnerToken")
        assert list(old.objects.values_list("name", flat=True)) == ["legacy"]
    finally:
        MigrationExecutor(db).migrate(leaves)
