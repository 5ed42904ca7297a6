"""Per-app authorization (INTEGRATIONS_APP_AUTHORIZATION = "per_app", the default): a
run gets only what its user allowed the app, on the app page, once; Remove access takes
effect on the next run; a new version asks only for what is new; the run path keeps
its number of queries."""

from __future__ import annotations

import json

import pytest
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps_registry import services
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import AppAuthorization, AuditEvent, Connection, Secret
from integrations.secrets import secret_set
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/run-environments/"

MANIFEST = """\
namespace: acme
name: digest
integrations:
  - key: google.sheets.readonly
    description: Read the source sheet
  - key: google.drive.readonly
    description: Find attachments
    optional: true
secrets:
  - key: FAL_KEY
    description: fal.ai key
  - key: EXTRA_KEY
    description: Only if you have one
    optional: true
"""

GOOGLE_KEYS = {
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
    "GOOGLE_OAUTH_CREDENTIALS",
}
PAGE = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "digest"})
ALLOW = reverse("apps_registry:app_allow", kwargs={"namespace": "acme", "name": "digest"})


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


def ready(user, scopes=("spreadsheets.readonly", "drive.readonly")) -> Connection:
    conn = ConnectionFactory.create(
        user=user, is_default=True, scopes=["openid", "email", *(G + s for s in scopes)]
    )
    secret_set(user=user, key="FAL_KEY", value="fal-secret-value")
    return conn


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def allow_from_page(client: Client, page: str = PAGE, allow: str = ALLOW):
    """Press Allow as the page offers it: post back the items the form lists."""
    html = client.get(page).content.decode()
    items = [chunk.split('"')[0] for chunk in html.split('name="item" value="')[1:]]
    return client.post(allow, {"item": items}), items


def test_a_run_gets_nothing_until_the_app_is_allowed(runner, app, bob):
    conn = ready(bob)
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409
    body = resp.json()
    assert {(m["key"], m["reason"]) for m in body["missing"]} == {
        ("google.sheets.readonly", "not_allowed"),
        ("FAL_KEY", "not_allowed"),
    }
    action = next(a for a in body["actions"] if a["kind"] == "authorize_app")
    assert action["capabilities"] == ["google.sheets.readonly"]
    assert action["secrets"] == ["FAL_KEY"]
    assert action["url"].endswith(PAGE + "#allow") and action["url"].startswith("http")
    assert "fal-secret-value" not in resp.content.decode()

    client = signed_in(bob)
    html = client.get(PAGE).content.decode()
    assert "Allow <strong>digest</strong> to use:" in html
    sentence = html.split("Allow <strong>digest</strong> to use:")[1].split("</p>")[0]
    who = conn.account_email
    assert sentence.strip() == (
        f"Sheets: read ({who}), Drive: read ({who}) (optional), the secret FAL_KEY."
    )
    row = html.split('data-key="google.sheets.readonly"')[1].split("</li>")[0]
    assert "not allowed yet" in row
    resp, items = allow_from_page(client)
    assert resp.status_code == 302
    assert f"capability:google.sheets.readonly:{conn.pk}" in items
    assert AppAuthorization.objects.filter(user=bob, app="acme/digest").count() == 3

    data = ask(runner, user=str(bob.pk), app="acme/digest").json()
    assert set(data["env"]) == GOOGLE_KEYS | {"FAL_KEY"}
    assert "✓ Allowed" in client.get(PAGE).content.decode()


def test_optional_items_are_left_out_until_allowed(runner, app, bob):
    conn = ready(bob)
    AppAuthorization.objects.create(
        user=bob,
        app="acme/digest",
        kind="capability",
        key="google.sheets.readonly",
        connection=conn,
        version=1,
    )
    AppAuthorization.objects.create(
        user=bob, app="acme/digest", kind="secret", key="FAL_KEY", version=1
    )
    secret_set(user=bob, key="EXTRA_KEY", value="extra-value")
    data = ask(runner, user=str(bob.pk), app="acme/digest").json()
    assert set(data["env"]) == GOOGLE_KEYS | {"FAL_KEY"}
    _, items = allow_from_page(signed_in(bob))
    assert items == [f"capability:google.drive.readonly:{conn.pk}", "secret:EXTRA_KEY:"]
    data = ask(runner, user=str(bob.pk), app="acme/digest").json()
    assert set(data["env"]) == GOOGLE_KEYS | {"FAL_KEY", "EXTRA_KEY"}


def test_remove_access_takes_effect_on_the_next_run(runner, app, bob):
    conn = ready(bob)
    client = signed_in(bob)
    allow_from_page(client)
    assert ask(runner, user=str(bob.pk), app="acme/digest").status_code == 200

    remove = reverse("integrations:app_access_remove", kwargs={"id": conn.pk})
    resp = client.post(remove, {"app": "acme/digest"})
    assert resp.status_code == 302
    assert not AppAuthorization.objects.filter(connection=conn).exists()
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409
    assert [m["key"] for m in resp.json()["missing"]] == ["google.sheets.readonly"]

    secret = Secret.objects.get(user=bob, key="FAL_KEY")
    remove = reverse("integrations:secret_access_remove", kwargs={"id": secret.pk})
    assert client.post(remove, {"app": "acme/digest"}).status_code == 302
    assert not AppAuthorization.objects.filter(user=bob).exists()
    kinds = list(AuditEvent.objects.filter(user=bob).values_list("kind", flat=True))
    assert kinds.count("app_access_removed") == 2 and "app_allowed" in kinds
    removed = AuditEvent.objects.filter(kind="app_access_removed").first()
    assert removed is not None and removed.detail["app"] == "acme/digest"
    assert "fal-secret-value" not in json.dumps(removed.detail)


def test_a_new_version_asks_only_for_what_is_new(runner, app, alice, bob):
    conn = ready(bob, scopes=("spreadsheets.readonly", "drive.readonly", "gmail.send"))
    client = signed_in(bob)
    allow_from_page(client)
    assert ask(runner, user=str(bob.pk), app="acme/digest").status_code == 200

    services.manifest_upload(
        user=alice,
        text=MANIFEST.replace(
            "secrets:",
            "  - key: google.gmail.send\n    description: Send it\nsecrets:",
        ),
    )
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409
    assert [(m["key"], m["reason"]) for m in resp.json()["missing"]] == [
        ("google.gmail.send", "not_allowed")
    ]
    _, items = allow_from_page(client)
    assert items == [f"capability:google.gmail.send:{conn.pk}"]
    assert AppAuthorization.objects.get(key="google.gmail.send").version == 2
    assert ask(runner, user=str(bob.pk), app="acme/digest").status_code == 200


def test_a_runner_naming_another_connection_is_refused_for_it(runner, app, bob):
    ready(bob)
    client = signed_in(bob)
    allow_from_page(client)
    other = ConnectionFactory.create(
        user=bob, account_email="b2@example.com", scopes=["openid", G + "spreadsheets.readonly"]
    )
    resp = ask(runner, user=str(bob.pk), app="acme/digest", connections={"google": other.pk})
    assert resp.status_code == 409
    assert [m["reason"] for m in resp.json()["missing"]] == ["not_allowed"]
    (action,) = [a for a in resp.json()["actions"] if a["kind"] == "authorize_app"]
    assert action["connection_id"] == other.pk  # the named one, not the allowed one


def test_another_user_can_neither_remove_nor_allow(runner, app, alice, bob):
    conn = ready(bob)
    allow_from_page(signed_in(bob))
    secret = Secret.objects.get(user=bob, key="FAL_KEY")
    alice_client = signed_in(alice)
    for url in (
        reverse("integrations:app_access_remove", kwargs={"id": conn.pk}),
        reverse("integrations:secret_access_remove", kwargs={"id": secret.pk}),
    ):
        assert alice_client.post(url, {"app": "acme/digest"}).status_code == 404
    assert AppAuthorization.objects.filter(user=bob).count() == 3
    # Alice posts Bob's items to her own Allow: nothing of Bob's is allowed for her.
    resp = alice_client.post(ALLOW, {"item": [f"capability:google.sheets.readonly:{conn.pk}"]})
    assert resp.status_code == 302
    assert not AppAuthorization.objects.filter(user=alice).exists()


def test_allow_and_remove_need_csrf(app, bob):
    conn = ready(bob)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert (
        client.post(ALLOW, {"item": [f"capability:google.sheets.readonly:{conn.pk}"]}).status_code
        == 403
    )
    remove = reverse("integrations:app_access_remove", kwargs={"id": conn.pk})
    assert client.post(remove, {"app": "acme/digest"}).status_code == 403
    assert not AppAuthorization.objects.exists()


def test_hostile_input_is_refused_without_a_500(app, bob):
    conn = ready(bob)
    client = signed_in(bob)
    for item in (
        "",
        "x",
        "capability:google.sheets.readonly:abc",
        "secret::",
        "capability:k:99999999999999999999",
    ):
        assert client.post(ALLOW, {"item": [item]}).status_code == 302
    remove = reverse("integrations:app_access_remove", kwargs={"id": conn.pk})
    for app_name in ("", "../x", "a" * 500, "acme/digest/x", "ACME/digest"):
        resp = client.post(remove, {"app": app_name})
        assert resp.status_code == 404, app_name
    assert not AppAuthorization.objects.exists()


def test_deleting_a_secret_forgets_its_allowances(runner, app, bob):
    ready(bob)
    allow_from_page(signed_in(bob))
    secret = Secret.objects.get(user=bob, key="FAL_KEY")
    signed_in(bob).post(reverse("integrations:secret_delete", kwargs={"id": secret.pk}))
    secret_set(user=bob, key="FAL_KEY", value="a-new-value")
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409
    assert [m["key"] for m in resp.json()["missing"]] == ["FAL_KEY"]


def test_the_pages_list_the_apps_allowed(app, bob):
    conn = ready(bob)
    client = signed_in(bob)
    allow_from_page(client)
    page = client.get(reverse("integrations:page")).content.decode()
    assert "acme/digest" in page and "Remove access" in page
    secrets = client.get(reverse("integrations:secrets")).content.decode()
    assert "acme/digest" in secrets and "Remove access" in secrets
    confirm = client.get(
        reverse("integrations:disconnect", kwargs={"id": conn.pk})
    ).content.decode()
    assert "acme/digest" in confirm
    secret = Secret.objects.get(user=bob, key="FAL_KEY")
    deleting = client.get(reverse("integrations:secret_delete", kwargs={"id": secret.pk}))
    assert "and allow it again to acme/digest" in deleting.content.decode()


@pytest.mark.parametrize("mode", ["per_app", "declared"])
def test_the_run_path_keeps_its_query_count(runner, app, bob, settings, mode):
    settings.INTEGRATIONS_APP_AUTHORIZATION = mode
    ready(bob)
    allow_from_page(signed_in(bob))
    Connection.objects.filter(user=bob).update(last_used_at=None)
    ask(runner, user=str(bob.pk), app="acme/digest")  # warms the provider cache
    with CaptureQueriesContext(db) as ctx:
        resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 200, resp.content
    # runner token, app + version, connections with the user, secrets, audit
    assert len(ctx.captured_queries) == 5, [q["sql"] for q in ctx.captured_queries]


def test_declared_hands_out_everything_declared(runner, app, bob, settings):
    settings.INTEGRATIONS_APP_AUTHORIZATION = "declared"
    ready(bob)
    data = ask(runner, user=str(bob.pk), app="acme/digest").json()
    assert set(data["env"]) == GOOGLE_KEYS | {"FAL_KEY"}
    html = signed_in(bob).get(PAGE).content.decode()
    assert 'name="item"' not in html


def test_an_unknown_setting_is_a_check_error(settings):
    from integrations.checks import app_authorization_check

    settings.INTEGRATIONS_APP_AUTHORIZATION = "per-app"
    assert [e.id for e in app_authorization_check()] == ["integrations.E003"]
    settings.INTEGRATIONS_APP_AUTHORIZATION = "declared"
    assert app_authorization_check() == []


def test_a_deleted_app_takes_its_allowances_along(runner, app, alice, bob):
    ready(bob)
    allow_from_page(signed_in(bob))
    app.delete()
    assert not AppAuthorization.objects.filter(app="acme/digest").exists()
    # The name uploaded again (by whoever may): nothing is allowed to it.
    services.manifest_upload(user=alice, text=MANIFEST)
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409
    assert {m["reason"] for m in resp.json()["missing"]} == {"not_allowed"}


SA_APP = """\
namespace: acme
name: drive-writer
integrations:
  - key: google.sa
    description: Write to the shared drive
"""


def test_a_service_account_is_handed_out_only_while_allowed(runner, alice, bob):
    from integrations.models import ServiceAccountKey
    from integrations.service_accounts import service_account_key_delete, service_account_key_set
    from tests.integrations.gcp_fakes import key_json

    services.manifest_upload(user=alice, text=SA_APP)
    service_account_key_set(user=bob, purpose="google_sa", key_text=key_json())
    resp = ask(runner, user=str(bob.pk), app="acme/drive-writer")
    assert resp.status_code == 409
    assert [(m["key"], m["reason"]) for m in resp.json()["missing"]] == [
        ("google.sa", "not_allowed")
    ]
    page = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "drive-writer"})
    allow = reverse("apps_registry:app_allow", kwargs={"namespace": "acme", "name": "drive-writer"})
    _, items = allow_from_page(signed_in(bob), page, allow)
    assert items == ["capability:google.sa:"]
    env = ask(runner, user=str(bob.pk), app="acme/drive-writer").json()["env"]
    assert set(env) == {"GOOGLE_SA_CREDENTIALS"}

    # Remove access on the Service accounts page; then allowed again.
    key = ServiceAccountKey.objects.get(user=bob)
    remove = reverse("integrations:service_account_access_remove", kwargs={"id": key.pk})
    client = signed_in(bob)
    sa_page = client.get(reverse("integrations:service_accounts")).content.decode()
    assert "acme/drive-writer" in sa_page and "Remove access" in sa_page
    assert signed_in(alice).post(remove, {"app": "acme/drive-writer"}).status_code == 404
    assert client.post(remove, {"app": "acme/drive-writer"}).status_code == 302
    assert ask(runner, user=str(bob.pk), app="acme/drive-writer").status_code == 409
    assert client.post(remove, {"app": "acme/drive-writer"}).status_code == 404  # nothing left
    allow_from_page(client, page, allow)

    # Deleted and uploaded again: the app must be allowed again.
    service_account_key_delete(key=ServiceAccountKey.objects.get(user=bob))
    assert not AppAuthorization.objects.filter(user=bob).exists()
    service_account_key_set(user=bob, purpose="google_sa", key_text=key_json())
    assert ask(runner, user=str(bob.pk), app="acme/drive-writer").status_code == 409


def test_the_credential_path_keeps_its_query_count(runner, alice, bob, settings):
    """The service-account query carries the allowance too: per_app costs no query
    over declared."""
    from integrations.service_accounts import service_account_key_set
    from tests.integrations.gcp_fakes import key_json

    services.manifest_upload(user=alice, text=SA_APP)
    service_account_key_set(user=bob, purpose="google_sa", key_text=key_json())
    AppAuthorization.objects.create(
        user=bob, app="acme/drive-writer", kind="capability", key="google.sa", version=1
    )
    counts = {}
    for mode in ("declared", "per_app"):
        settings.INTEGRATIONS_APP_AUTHORIZATION = mode
        ask(runner, user=str(bob.pk), app="acme/drive-writer")
        with CaptureQueriesContext(db) as ctx:
            resp = ask(runner, user=str(bob.pk), app="acme/drive-writer")
        assert resp.status_code == 200, resp.content
        counts[mode] = len(ctx.captured_queries)
    assert counts["per_app"] == counts["declared"], counts


def test_staff_see_the_allowances_without_a_value(app, bob, admin_client):
    ready(bob)
    allow_from_page(signed_in(bob))
    changelist = reverse("admin:integrations_appauthorization_changelist")
    html = admin_client.get(changelist).content.decode()
    assert "acme/digest" in html and "google.sheets.readonly" in html and "FAL_KEY" in html
    row = AppAuthorization.objects.filter(kind="secret").get()
    change = reverse("admin:integrations_appauthorization_change", args=[row.pk])
    assert admin_client.get(change).status_code == 200
    assert "fal-secret-value" not in html + admin_client.get(change).content.decode()
    assert admin_client.post(change, {"key": "OTHER"}).status_code == 403


BOT_APP = """\
namespace: acme
name: notifier
integrations:
  - key: discord.bot
    description: Tell the channel
"""
BOT_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQz.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"


def test_the_bot_token_is_listed_and_removed_under_its_secret(runner, alice, bob):
    services.manifest_upload(user=alice, text=BOT_APP)
    secret_set(user=bob, key="DISCORD_BOT_TOKEN", value=BOT_TOKEN)
    assert ask(runner, user=str(bob.pk), app="acme/notifier").status_code == 409
    page = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "notifier"})
    allow = reverse("apps_registry:app_allow", kwargs={"namespace": "acme", "name": "notifier"})
    client = signed_in(bob)
    _, items = allow_from_page(client, page, allow)
    assert items == ["capability:discord.bot:"]
    assert ask(runner, user=str(bob.pk), app="acme/notifier").json()["env"] == {
        "DISCORD_BOT_TOKEN": BOT_TOKEN
    }
    secrets_page = client.get(reverse("integrations:secrets")).content.decode()
    assert "Used by <code>acme/notifier</code>" in secrets_page
    assert BOT_TOKEN not in secrets_page
    secret = Secret.objects.get(user=bob)
    remove = reverse("integrations:secret_access_remove", kwargs={"id": secret.pk})
    assert client.post(remove, {"app": "acme/notifier"}).status_code == 302
    assert ask(runner, user=str(bob.pk), app="acme/notifier").status_code == 409


def test_allowing_twice_is_allowing_once_and_never_on_anothers_connection(alice, bob):
    from integrations.app_authorization import AllowItem, app_authorization_allow

    conn = ready(bob)
    items = [AllowItem("secret", "FAL_KEY"), AllowItem("capability", "google.sa")]
    for _ in range(2):  # two tabs: the NULL-connection rows stay unique too
        app_authorization_allow(user=bob, app="acme/digest", version=1, items=items)
    assert AppAuthorization.objects.filter(user=bob).count() == 2
    stolen = AllowItem("capability", "google.sheets.readonly", conn.pk)
    assert app_authorization_allow(user=alice, app="acme/digest", version=1, items=[stolen]) == []
    assert not AppAuthorization.objects.filter(user=alice).exists()
    assert AuditEvent.objects.filter(kind="app_allowed").count() == 2  # the empty call: none


def test_staff_deleting_an_allowance_is_audited_and_the_run_asks_again(
    app, bob, admin_client, admin_user, runner
):
    ready(bob)
    allow_from_page(signed_in(bob))
    assert ask(runner, user=str(bob.pk), app="acme/digest").status_code == 200
    row = AppAuthorization.objects.filter(kind="secret").get()
    delete = reverse("admin:integrations_appauthorization_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    event = AuditEvent.objects.filter(kind="app_access_removed").get()
    assert event.detail["by_staff"] == admin_user.pk
    assert event.detail["items"] == [{"kind": "secret", "key": "FAL_KEY", "connection_id": None}]
    resp = ask(runner, user=str(bob.pk), app="acme/digest")
    assert resp.status_code == 409 and resp.json()["actions"][0]["kind"] == "authorize_app"
