"""Namespaces owned by their publisher (issue 11, point 2): claimed by the first
uploader, reserved names for staff, co-owners by email, the publisher on the app page,
and the data migration that gave existing namespaces to their earliest uploaders."""

from __future__ import annotations

import importlib
import threading

import pytest
from django.apps import apps as django_apps
from django.db import connections, transaction
from django.test import Client, override_settings
from django.urls import reverse

from apps_registry import services
from apps_registry.errors import NamespaceOwnedError, NamespaceReservedError
from apps_registry.models import App, ManifestVersion, Namespace
from integrations.models import AuditEvent
from tests.processes import a_lock_is_waited_for, needs_postgres

from .conftest import REPORT, bearer

pytestmark = pytest.mark.django_db

UPLOAD_API = reverse("apps_registry:api_manifest_upload")
UPLOAD_PAGE = reverse("apps_registry:upload")
OTHER = "namespace: acme\nname: other\ntitle: Bob's app\n"
SHEETS = "namespace: google\nname: sheets\nintegrations:\n  - key: google.sheets.readonly\n"


def page(name: str) -> str:
    return reverse("apps_registry:namespace", args=[name])


# --- claiming and refusing ----------------------------------------------------------


def test_the_first_uploader_claims_a_new_namespace(alice, upload):
    upload(alice)
    namespace = Namespace.objects.get(name="acme")
    assert list(namespace.owners.all()) == [alice]
    assert namespace.created_by == alice and not namespace.reserved


def test_bob_cannot_publish_into_adas_namespace(alice, bob, upload, api):
    upload(alice)
    with pytest.raises(NamespaceOwnedError, match=r"Ask alice@example\.com to add you"):
        upload(bob, OTHER)

    token = services.api_token_create(user=bob, name="ci")[1]
    resp = api.post(UPLOAD_API, OTHER, content_type="text/plain", **bearer(token))
    assert resp.status_code == 403
    assert resp.json()["error"] == "namespace_owned"
    assert "alice@example.com" in resp.json()["detail"]

    client = Client()
    client.force_login(bob)
    resp = client.post(UPLOAD_PAGE, {"text": OTHER})
    assert resp.status_code == 403
    html = resp.content.decode()
    assert "The namespace acme belongs to another publisher" in html
    assert "Bob&#x27;s app" in html  # the text stays in the form, to fix and send again
    assert not App.objects.filter(name="other").exists()
    assert ManifestVersion.objects.count() == 1


def test_bob_cannot_publish_into_a_reserved_namespace(bob, admin_user, upload, api):
    with pytest.raises(NamespaceReservedError, match="Ask the platform's staff"):
        upload(bob, SHEETS)
    assert not Namespace.objects.filter(name="google").exists()  # not claimed either

    token = services.api_token_create(user=bob, name="ci")[1]
    resp = api.post(UPLOAD_API, SHEETS, content_type="text/plain", **bearer(token))
    assert resp.status_code == 403 and resp.json()["error"] == "namespace_reserved"

    # Staff upload there; the namespace they make stays reserved.
    assert upload(admin_user, SHEETS).valid
    google = Namespace.objects.get(name="google")
    assert google.reserved and list(google.owners.all()) == [admin_user]
    with pytest.raises(NamespaceReservedError):
        upload(bob, SHEETS.replace("sheets", "sheets2"))


def test_a_namespace_staff_reserved_in_the_admin_is_refused(bob, upload):
    Namespace.objects.create(name="acme", reserved=True)
    with pytest.raises(NamespaceReservedError):
        upload(bob)
    assert not App.objects.exists()


@override_settings(APPS_RESERVED_NAMESPACES=["acme"])
def test_the_reserved_names_come_from_the_setting(alice, upload):
    with pytest.raises(NamespaceReservedError):
        upload(alice)
    assert upload(alice, SHEETS).valid  # google is no longer reserved by this setting


def test_an_owner_staff_assigned_to_a_reserved_namespace_publishes(bob, upload):
    google = Namespace.objects.create(name="google", reserved=True)
    google.owners.add(bob)
    assert upload(bob, SHEETS).valid


def test_staff_upload_into_anyones_namespace(alice, admin_user, upload):
    upload(alice)
    assert upload(admin_user, OTHER).valid
    assert list(Namespace.objects.get(name="acme").owners.all()) == [alice]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_uploads_at_once_exactly_one_claims(alice, bob):
    """Alice's upload creates acme and holds its transaction open; Bob's waits on the
    unique name, then finds acme Alice's and is refused. Nothing of Bob's is stored."""
    created, go, outcomes = threading.Event(), threading.Event(), {}

    def alices() -> None:
        try:
            with transaction.atomic():
                services.manifest_upload(user=alice, text=REPORT)
                created.set()
                go.wait(10)
            outcomes["alice"] = "ok"
        finally:
            connections.close_all()

    def bobs() -> None:
        try:
            services.manifest_upload(user=bob, text=OTHER)
            outcomes["bob"] = "ok"
        except NamespaceOwnedError:
            outcomes["bob"] = "namespace_owned"
        finally:
            connections.close_all()

    first = threading.Thread(target=alices)
    first.start()
    assert created.wait(10)
    second = threading.Thread(target=bobs)
    second.start()
    # Bob's INSERT waits on Alice's uncommitted row (a lock wait, seen by PostgreSQL).
    if not a_lock_is_waited_for():
        pytest.fail("Bob's upload never waited on Alice's")
    go.set()
    first.join(10)
    second.join(10)
    assert outcomes == {"alice": "ok", "bob": "namespace_owned"}
    namespace = Namespace.objects.get(name="acme")
    assert list(namespace.owners.all()) == [alice]
    assert list(App.objects.values_list("name", flat=True)) == ["report"]


# --- co-owners ----------------------------------------------------------------------


def test_the_namespace_page_is_for_its_owners_only(client, alice, bob, upload):
    upload(alice)
    assert client.get(page("acme")).status_code == 302  # sign in first
    client.force_login(bob)
    assert client.get(page("acme")).status_code == 404
    assert client.post(page("acme"), {"email": "bob@example.com"}).status_code == 404
    assert client.get(page("nothing")).status_code == 404
    assert list(Namespace.objects.get(name="acme").owners.all()) == [alice]


def test_an_owner_adds_a_co_owner_who_then_publishes(alice, bob, upload):
    upload(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(page("acme"), {"email": "bob@example.com"}).status_code == 403  # CSRF
    html = client.get(page("acme")).content.decode()
    csrf = client.cookies["csrftoken"].value
    assert "alice@example.com" in html

    resp = client.post(page("acme"), {"email": "BOB@example.com", "csrfmiddlewaretoken": csrf})
    assert resp.status_code == 302
    namespace = Namespace.objects.get(name="acme")
    assert set(namespace.owners.all()) == {alice, bob}
    event = AuditEvent.objects.get(kind="namespace_owner_added")
    assert event.user == bob and event.detail == {
        "namespace": "acme",
        "by": alice.pk,
        "by_email": "alice@example.com",
    }

    assert upload(bob, OTHER).valid  # a new app in the namespace
    assert upload(bob, REPORT.replace("Weekly", "Daily")).number == 2  # and Alice's app


def test_adding_an_email_without_an_account_says_so(alice_client, alice, upload):
    upload(alice)
    resp = alice_client.post(page("acme"), {"email": "nobody@example.com"})
    assert resp.status_code == 400
    assert "No account has the email nobody@example.com: ask them to sign up first" in (
        resp.content.decode()
    )
    assert 'value="nobody@example.com"' in resp.content.decode()  # kept in the form
    assert Namespace.objects.get(name="acme").owners.count() == 1
    resp = alice_client.post(page("acme"), {"email": "not an email"})
    assert resp.status_code == 400


def test_the_last_owner_cannot_be_removed(alice_client, alice, bob, upload):
    upload(alice)
    resp = alice_client.post(page("acme"), {"remove": str(alice.pk)})
    assert resp.status_code == 400
    assert "You are the last owner of acme: add another owner first" in resp.content.decode()
    assert list(Namespace.objects.get(name="acme").owners.all()) == [alice]
    for bad in ("", "x", "9" * 30, str(bob.pk)):
        assert alice_client.post(page("acme"), {"remove": bad}).status_code == 400

    alice_client.post(page("acme"), {"email": "bob@example.com"})
    resp = alice_client.post(page("acme"), {"remove": str(bob.pk)})
    assert resp.status_code == 302
    assert list(Namespace.objects.get(name="acme").owners.all()) == [alice]
    removed = AuditEvent.objects.get(kind="namespace_owner_removed")
    assert removed.user == bob and removed.detail["by"] == alice.pk


# --- the app page -------------------------------------------------------------------


def test_the_app_page_names_the_publisher(client, alice, bob, upload):
    upload(alice)
    url = reverse("apps_registry:app", args=["acme", "report"])
    html = client.get(url).content.decode()
    assert "Published by <strong>acme</strong>" in html
    assert alice.get_username() in html and "alice@example.com" not in html  # anonymous
    assert "verified" not in html and page("acme") not in html

    client.force_login(bob)
    html = client.get(url).content.decode()
    assert "Published by <strong>acme</strong>" in html and "alice@example.com" in html
    assert page("acme") not in html  # only owners manage owners

    Namespace.objects.filter(name="acme").update(verified=True)
    client.force_login(alice)
    html = client.get(url).content.decode()
    assert "✓ verified" in html
    assert f'<a href="{page("acme")}">Manage owners</a>' in html


# --- the admin ----------------------------------------------------------------------


def test_the_admin_lists_namespaces_and_audits_owner_changes(
    admin_client, admin_user, alice, bob, upload
):
    upload(alice)
    upload(alice, OTHER)
    html = admin_client.get(reverse("admin:apps_registry_namespace_changelist")).content.decode()
    assert "acme" in html and "alice@example.com" in html
    assert '<td class="field-app_count">2</td>' in html

    namespace = Namespace.objects.get(name="acme")
    url = reverse("admin:apps_registry_namespace_change", args=[namespace.pk])
    resp = admin_client.post(url, {"owners": [bob.pk], "reserved": "on", "verified": "on"})
    assert resp.status_code == 302
    namespace.refresh_from_db()
    assert list(namespace.owners.all()) == [bob] and namespace.reserved and namespace.verified
    kinds = set(AuditEvent.objects.values_list("kind", "user_id"))
    assert kinds == {("namespace_owner_added", bob.pk), ("namespace_owner_removed", alice.pk)}

    # Staff reserve a new name.
    resp = admin_client.post(
        reverse("admin:apps_registry_namespace_add"), {"name": "platform-x", "reserved": "on"}
    )
    assert resp.status_code == 302
    assert Namespace.objects.get(name="platform-x").created_by == admin_user
    resp = admin_client.post(reverse("admin:apps_registry_namespace_add"), {"name": "Not/A Slug"})
    assert resp.status_code == 200 and "A namespace is 1 to 64 lowercase" in resp.content.decode()
    assert not Namespace.objects.filter(name="Not/A Slug").exists()


# --- the data migration -------------------------------------------------------------


def test_the_migration_gives_each_namespace_to_its_earliest_uploader(alice, bob, make_user):
    carol = make_user("carol@example.com")
    migration = importlib.import_module(
        "apps_registry.migrations.0004_namespaces_and_runner_scopes"
    )
    # Rows as they were before namespaces: apps and versions only.
    report = App.objects.create(namespace="acme", name="report", owner=bob)
    ManifestVersion.objects.create(app=report, number=1, raw_text="", valid=False, uploaded_by=bob)
    older = App.objects.create(namespace="acme", name="older", owner=alice)
    ManifestVersion.objects.create(app=older, number=1, raw_text="", valid=False, uploaded_by=alice)
    ManifestVersion.objects.filter(app=older).update(
        created_at=report.created_at.replace(year=2020)
    )
    lonely = App.objects.create(namespace="google", name="sheets", owner=carol)
    ManifestVersion.objects.create(app=lonely, number=1, raw_text="", valid=False, uploaded_by=None)

    migration.assign_namespaces(django_apps, None)

    acme = Namespace.objects.get(name="acme")
    assert list(acme.owners.all()) == [alice] and not acme.reserved  # the earliest version's
    google = Namespace.objects.get(name="google")
    assert list(google.owners.all()) == [carol] and google.reserved  # the app's owner
    migration.assign_namespaces(django_apps, None)  # again: nothing changes
    assert Namespace.objects.count() == 2


def test_the_admin_pages_of_namespaces_and_runners_render(admin_client, alice, upload):
    upload(alice)
    namespace = Namespace.objects.get(name="acme")
    row, token = services.runner_token_create(name="eu-1", namespaces=["acme"])
    pages = [
        reverse("admin:apps_registry_namespace_change", args=[namespace.pk]),
        reverse("admin:apps_registry_namespace_add"),
        reverse("admin:apps_registry_runner_change", args=[row.runner.pk]),
        reverse("admin:apps_registry_runnertoken_change", args=[row.pk]),
        reverse("admin:apps_registry_runnertoken_add"),
    ]
    for url in pages:
        resp = admin_client.get(url)
        assert resp.status_code == 200, url
        html = resp.content.decode()
        assert token not in html and row.token_hash not in html
    runner_page = admin_client.get(pages[2]).content.decode()
    assert f"<code>{row.prefix}…</code> live" in runner_page
