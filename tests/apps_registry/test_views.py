"""The app page (with readiness), the upload page and the apps list: responses,
database, pinned query counts, and the security cases (CSRF, another user's app)."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.messages import get_messages
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps_registry.manifest import MAX_MANIFEST_BYTES
from apps_registry.models import App, ManifestVersion
from integrations.core.catalogue import BUILTIN as catalogue
from integrations.models import AuditEvent, Secret
from integrations.secrets import secret_set, secret_value
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory

from .conftest import REAL, REPORT, own_namespaces

pytestmark = pytest.mark.django_db

UPLOAD = reverse("apps_registry:upload")
REPORT_URL = reverse("apps_registry:app", kwargs={"namespace": "acme", "name": "report"})


def google_scopes(*keys: str) -> list[str]:
    return ["openid", "email", *catalogue.scopes_for(keys)]


def forms_of(html: str) -> list[dict]:
    """Each Add Permissions / Connect form of the page: its action and hidden inputs."""
    found = []
    for match in re.finditer(
        r'<form method="post"[^>]*?action="([^"]+)"[^>]*>(.*?)</form>', html, re.S
    ):
        inputs = [
            (name, value)
            for name, value in re.findall(
                r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2)
            )
            if name != "csrfmiddlewaretoken"
        ]
        if any(name == "capabilities" for name, _ in inputs):
            found.append({"action": match.group(1), "inputs": inputs, "html": match.group(2)})
    return found


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


# --- the app page ---------------------------------------------------------------------


def test_app_page_for_anyone_shows_the_manifest_without_readiness(client, alice, upload):
    upload(alice)
    resp = client.get(REPORT_URL)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "<h1>Weekly report</h1>" in html
    assert "Builds a report from a spreadsheet" in html
    assert "google.sheets.readonly" in html and "Read the source spreadsheet" in html
    assert "Sign in</a> to see what you have already granted" in html
    assert "Add Permissions" not in html


def step_of(html: str, key: str) -> str:
    """The checklist's row of ``key`` (``allow`` for the Allow step)."""
    marker = 'data-step="allow"' if key == "allow" else f'data-key="{key}"'
    return html.split(marker)[1].split("</li>")[0]


def test_app_page_shows_readiness_with_exact_add_permissions(client, alice, bob, upload):
    upload(alice)
    conn = ConnectionFactory.create(
        user=bob, account_email="bob@gmail.example", scopes=google_scopes("google.gmail.readonly")
    )
    client.force_login(bob)

    html = client.get(REPORT_URL).content.decode()

    # The count is what the required buttons ask: one permission (the optional one aside).
    assert '<h2 id="readiness-heading">Not ready: needs 1 permission</h2>' in html
    required, optional, together = forms_of(html)
    add_url = reverse("integrations:add_permissions", kwargs={"id": conn.pk})
    # Each missing capability's row has its button, asking for exactly that capability.
    assert required["action"] == add_url
    # Started from the app page: on return the app is allowed what was asked and granted.
    assert required["inputs"] == [
        ("capabilities", "google.sheets.readonly"),
        ("next", REPORT_URL),
        ("app", "acme/report"),
        ("app_version", "1"),
    ]
    assert required["html"] in step_of(html, "google.sheets.readonly")
    assert '<button type="submit" class="primary">Add Permissions</button>' in required["html"]
    assert (
        "Asks Google (bob@gmail.example) for: Sheets: read, and allows Weekly report to use it."
        in required["html"]
    )
    assert optional["html"] in step_of(html, "google.drive.readonly")
    assert optional["inputs"][0] == ("capabilities", "google.drive.readonly")
    assert '<button type="submit" class="secondary">Add Permissions</button>' in optional["html"]
    # And both in one consent, below the list.
    assert together["action"] == add_url
    assert together["inputs"] == [
        ("capabilities", "google.sheets.readonly"),
        ("capabilities", "google.drive.readonly"),
        ("next", REPORT_URL),
        ("app", "acme/report"),
        ("app_version", "1"),
    ]
    assert "Add Permissions, including optional" in together["html"]
    # Each need with the manifest's description and its state.
    row = step_of(html, "google.sheets.readonly")
    assert "Read the source spreadsheet" in row and "Not granted yet on bob@gmail.example" in row
    assert 'class="badge required">required' in row and ">missing</span>" in row
    row = step_of(html, "google.drive.readonly")
    assert "optional" in row and "Find the spreadsheet in Drive" in row
    # Nothing is there to allow yet: the Allow step waits.
    assert "Once you have granted or set what it needs" in step_of(html, "allow")
    assert 'action="/apps/acme/report/allow/"' not in html


def test_app_page_when_ready(client, alice, bob, upload):
    upload(alice)
    ConnectionFactory.create(user=bob, scopes=google_scopes("google.sheets", "google.drive"))
    client.force_login(bob)
    html = client.get(REPORT_URL).content.decode()
    assert '<h2 id="readiness-heading">Not allowed yet</h2>' in html
    assert html.count('class="step step-done"') == 2
    allow = step_of(html, "allow")
    assert 'action="/apps/acme/report/allow/"' in allow and ">missing</span>" in allow
    assert 'not allowed yet: <a href="#allow">Allow</a>' in step_of(html, "google.drive.readonly")
    allow_declared(bob, "acme/report")
    html = client.get(REPORT_URL).content.decode()
    assert '<h2 id="readiness-heading">Ready to run</h2>' in html
    assert "✓ Allowed" in step_of(html, "allow")
    assert forms_of(html) == []
    assert html.count('class="step step-done"') == 3  # the two items, and the Allow
    assert "not allowed yet" not in html


def test_app_page_offers_connect_without_a_connection_and_names_secrets(client, alice, bob, upload):
    own_namespaces(alice, "google")
    upload(alice, REAL["api-falai-dia-tts.inf.yml"])
    upload(alice, REAL["api-google-sheets.inf.yml"])
    client.force_login(bob)

    html = client.get(reverse("apps_registry:app", args=["google", "sheets"])).content.decode()
    connect, *_ = forms_of(html)
    assert connect["action"] == reverse("integrations:connect", kwargs={"provider_id": "google"})
    assert ("capabilities", "google.sheets") in connect["inputs"]
    assert "Connect Google</button>" in connect["html"]

    url = reverse("apps_registry:app", args=["falai", "dia-tts"])
    html = client.get(url).content.decode()
    assert "Not set yet" in step_of(html, "FAL_KEY")
    assert '<h2 id="readiness-heading">Not ready: needs 1 secret</h2>' in html
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    html = client.get(url).content.decode()
    assert '<h2 id="readiness-heading">Not allowed yet</h2>' in html
    allow_declared(bob, "falai/dia-tts")
    html = client.get(url).content.decode()
    assert '<h2 id="readiness-heading">Ready to run</h2>' in html
    assert 'class="secret-add"' not in html
    assert "fal-secret-value" not in html


def test_app_page_says_reconnect_for_an_ended_grant(client, alice, bob, upload):
    own_namespaces(alice, "google")
    upload(alice, REAL["api-google-sheets.inf.yml"])
    ConnectionFactory.create(
        user=bob,
        account_email="bob@gmail.example",
        scopes=google_scopes("google.sheets"),
        status="needs_reconnect",
    )
    client.force_login(bob)
    html = client.get(reverse("apps_registry:app", args=["google", "sheets"])).content.decode()
    assert "The Google access for bob@gmail.example has ended: reconnect" in html
    action, *_ = forms_of(html)
    assert "Reconnect Google</button>" in action["html"]
    assert action["action"].endswith("/google/connect/")


def test_app_page_of_a_credential_app_says_what_to_bring(client, alice, upload):
    own_namespaces(alice, "google")
    upload(alice, REAL["api-google-gcp-vertex-veo-3.inf.yml"])
    client.force_login(alice)
    html = client.get(reverse("apps_registry:app", args=["google", "veo-3-1"])).content.decode()
    assert "upload a service-account key of that project" in html
    assert forms_of(html) == []
    # No button can bring a credential: the heading counts it apart.
    assert "credential" in html.split('<h2 id="readiness-heading">')[1].split("</h2>")[0]


def test_unknown_app_is_404(client):
    assert client.get(reverse("apps_registry:app", args=["no", "app"])).status_code == 404


def test_app_without_valid_version_is_404_for_others_and_shown_to_its_owner(
    client, alice, bob, upload
):
    upload(alice, REPORT.replace("optional: true", "optional: 1"))
    client.force_login(bob)
    assert client.get(REPORT_URL).status_code == 404
    client.force_login(alice)
    html = client.get(REPORT_URL).content.decode()
    assert "no valid version yet" in html
    assert "invalid: 1 problem" in html


def test_owner_sees_versions(client, alice, upload):
    upload(alice)
    upload(alice, REPORT.replace("Weekly", "Daily"))
    client.force_login(alice)
    html = client.get(REPORT_URL).content.decode()
    assert '<h2 id="versions-heading">Versions</h2>' in html
    assert ">current</span>" in html


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(db) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_app_page_query_count_is_pinned(client, alice, bob, upload):
    upload(alice)
    client.force_login(bob)
    ConnectionFactory.create(user=bob)
    _queries(client, REPORT_URL)  # warms what integrations caches (provider definitions)
    one = _queries(client, REPORT_URL)
    ConnectionFactory.create_batch(9, user=bob)
    for i in range(5):
        secret_set(user=bob, key=f"KEY_{i}", value="v")
    many = _queries(client, REPORT_URL)
    # Session, user, the app (with its current version and owner), its namespace and
    # the namespace's owners (the publisher line), connections, secrets, what the user
    # allowed the app, and whatever integrations reads to know the connectable providers.
    assert one == many
    assert one <= 8
    client.force_login(alice)  # the owner also reads the versions
    assert _queries(client, REPORT_URL) == one + 1


# --- the upload page ------------------------------------------------------------------


def test_upload_page_needs_login(client):
    resp = client.get(UPLOAD)
    assert resp.status_code == 302 and resp["Location"].startswith(reverse("account_login"))
    resp = client.post(UPLOAD, {"text": REPORT})
    assert resp.status_code == 302 and not App.objects.exists()


def test_paste_a_valid_manifest_goes_to_the_app_page_with_warnings(alice_client, alice):
    text = REPORT + "homepage: https://example.com\n"
    resp = alice_client.post(UPLOAD, {"text": text})

    assert resp.status_code == 302 and resp["Location"] == REPORT_URL
    version = ManifestVersion.objects.get()
    assert version.valid and version.uploaded_by == alice and version.app.owner == alice
    assert texts(resp) == [
        "Uploaded acme/report: version 1.",
        "Warning: Line 11, column 1: homepage: unknown field 'homepage' (kept)",
    ]


def test_upload_a_file(alice_client, alice):
    own_namespaces(alice, "google")
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = REAL["api-google-gmail.inf.yml"].encode()
    resp = alice_client.post(UPLOAD, {"file": SimpleUploadedFile("inf.yml", data)})
    assert resp.status_code == 302
    assert App.objects.get().slug == "google/gmail"


def test_invalid_upload_shows_problems_beside_their_lines_and_keeps_the_version(alice_client):
    text = REPORT.replace("optional: true", "optional: yes").replace(
        "key: google.sheets.readonly", "key: google.sheetz"
    )
    resp = alice_client.post(UPLOAD, {"text": text})
    html = resp.content.decode()

    assert resp.status_code == 200
    version = ManifestVersion.objects.get()
    assert not version.valid and App.objects.get().current_version is None
    assert "Kept as version 1 of" in html
    assert '<h2 id="problems-heading">1 problem</h2>' in html
    line = html.split('<tr id="line-10" class="has-problem">')[1].split("</tr>")[0]
    assert "<code>    optional: <mark>y</mark>es</code>" in line
    assert "column 15" in line and "must be true or false" in line
    assert 'href="#line-10"' in html
    assert '<tr id="line-1">' in html  # every line is listed
    # The text is back in the form, to fix and send again.
    assert "optional: yes\n</textarea>" in html


def test_refused_upload_shows_the_problem_and_stores_nothing(alice_client):
    resp = alice_client.post(UPLOAD, {"text": "name: [oops\n"})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "a list opened with &#x27;[&#x27; here is never closed" in html
    assert '<tr id="line-1" class="has-problem">' in html
    assert not ManifestVersion.objects.exists()


def test_a_yaml_syntax_error_is_said_in_plain_words_beside_its_line(alice_client):
    text = "name: report\nsecrets:\n  - key: FAL_KEY\n - key: OTHER_KEY\ntitle: Report\n"
    resp = alice_client.post(UPLOAD, {"text": text})
    html = resp.content.decode()

    assert resp.status_code == 200
    assert '<h2 id="problems-heading">1 problem</h2>' in html
    assert (
        '<a href="#line-4">Line 4, column 2</a>: '
        "a list item is not indented like the lines before it</li>"
    ) in html
    line = html.split('<tr id="line-4" class="has-problem">')[1].split("</tr>")[0]
    assert '<th scope="row" data-label="Line">4</th>' in line
    assert "<code> <mark>-</mark> key: OTHER_KEY</code>" in line
    assert "column 2: a list item is not indented like the lines before it" in line
    assert '<tr id="line-3">' in html and '<tr id="line-5">' in html
    # Nothing typed is lost: the whole text is back in the form.
    assert ">\n" + text + "</textarea>" in html
    assert not ManifestVersion.objects.exists()


def test_empty_form_and_both_inputs_are_refused(alice_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    assert "Paste the manifest or choose a file." in alice_client.post(UPLOAD, {}).content.decode()
    resp = alice_client.post(
        UPLOAD, {"text": REPORT, "file": SimpleUploadedFile("a.yml", b"name: a\n")}
    )
    assert "not both" in resp.content.decode()
    assert not ManifestVersion.objects.exists()


def test_another_users_app_is_refused(client, alice, bob, upload):
    upload(alice)
    client.force_login(bob)
    resp = client.post(UPLOAD, {"text": REPORT.replace("Weekly", "Hijacked")})
    assert resp.status_code == 403
    html = resp.content.decode()
    assert "The namespace acme belongs to another publisher" in html
    assert "Ask alice@example.com to add you as a co-owner" in html
    assert "Hijacked" in html  # what was typed stays in the form
    assert ManifestVersion.objects.count() == 1


def test_upload_form_needs_a_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    resp = client.post(UPLOAD, {"text": REPORT})
    assert resp.status_code == 403
    assert not App.objects.exists()
    # With the token from the page, it goes through.
    client.get(UPLOAD)
    token = client.cookies["csrftoken"].value
    resp = client.post(UPLOAD, {"text": REPORT, "csrfmiddlewaretoken": token})
    assert resp.status_code == 302 and App.objects.exists()


def test_a_too_large_file_is_refused_unread(alice_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = b"name: big\n#" + b"x" * MAX_MANIFEST_BYTES
    resp = alice_client.post(UPLOAD, {"file": SimpleUploadedFile("big.yml", data)})
    assert resp.status_code == 200
    assert "over 65,536 bytes" in resp.content.decode()
    assert not ManifestVersion.objects.exists()


def test_a_pasted_text_over_64_kib_is_refused_and_not_echoed(alice_client):
    text = "name: big\n#" + "x" * MAX_MANIFEST_BYTES
    resp = alice_client.post(UPLOAD, {"text": text})
    html = resp.content.decode()
    assert "too large" in html
    assert "x" * 1000 not in html
    assert not ManifestVersion.objects.exists()


def test_a_huge_body_is_refused_before_it_is_read(alice):
    # CSRF checks on: the body is refused before the CSRF check would parse it.
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = "text=" + "x" * (10 * 1024 * 1024)
    start = time.perf_counter()
    resp = client.post(UPLOAD, body, content_type="application/x-www-form-urlencoded")
    elapsed = time.perf_counter() - start
    assert resp.status_code == 413
    assert "too large" in resp.content.decode()
    assert not resp.wsgi_request._read_started  # type: ignore[attr-defined]
    assert elapsed < 1.0
    assert not ManifestVersion.objects.exists()


# --- the apps list --------------------------------------------------------------------


def test_apps_list_shows_only_my_apps(client, alice, bob, upload):
    own_namespaces(bob, "google")
    upload(alice)
    upload(bob, REAL["api-google-sheets.inf.yml"])
    upload(alice, "namespace: acme\nname: broken\nsecrets: 1\n")
    client.force_login(alice)
    html = client.get(reverse("apps_registry:list")).content.decode()
    assert "acme/report" in html and "Weekly report" in html
    assert "acme/broken" in html and "no valid version" in html
    assert "google/sheets" not in html
    assert 'Your namespaces: <a href="/namespaces/acme/">acme</a> (' in html


def test_apps_list_query_count_is_pinned(client, alice, upload):
    client.force_login(alice)
    upload(alice)
    _queries(client, reverse("apps_registry:list"))
    one = _queries(client, reverse("apps_registry:list"))
    for i in range(5):
        upload(alice, REPORT.replace("name: report", f"name: report-{i}"))
    # Session, user, the apps, the namespaces the user owns.
    assert _queries(client, reverse("apps_registry:list")) == one == 4


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRsecretpixels",
        b"name: a\n\x00\x00tail-bytes\n",
        b"name: caf\xe9-bytes\n",
    ],
    ids=["png", "nul", "undecodable"],
)
def test_a_binary_file_is_refused_plainly_without_echoing_it(alice_client, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    resp = alice_client.post(UPLOAD, {"file": SimpleUploadedFile("inf.yml", data)})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "That file is not a text file" in html
    assert "secretpixels" not in html and "tail-bytes" not in html and "caf" not in html
    assert 'class="listing"' not in html
    assert not ManifestVersion.objects.exists()


def test_the_upload_page_example_is_a_valid_manifest_and_links_the_format(alice_client):
    import html as html_lib

    page = alice_client.get(UPLOAD).content.decode()
    fmt = reverse("apps_registry:manifest_format")
    assert f'href="{fmt}">docs/manifests.md</a>' in page
    example = html_lib.unescape(page.split('<code id="example-manifest">')[1].split("</code>")[0])
    resp = alice_client.post(UPLOAD, {"text": example})
    assert resp.status_code == 302
    version = ManifestVersion.objects.get()
    assert version.valid and version.app.slug == "acme/report"

    with CaptureQueriesContext(db) as queries:
        doc = alice_client.get(fmt)
    assert doc.status_code == 200 and "App manifests (`inf.yml`)" in doc.content.decode()
    assert len(queries) == 2  # the session and its user


CHECKLIST = """\
namespace: acme
name: report
title: Weekly report
secrets:
  - key: FAL_KEY
    description: fal.ai API key
integrations:
  - key: google.gmail.send
    description: Mail it
  - key: google.gmail.modify
    description: Label it
"""


def test_the_app_page_is_a_checklist_titled_from_the_manifest(client, alice, bob, upload):
    upload(alice, CHECKLIST)
    client.force_login(bob)
    with CaptureQueriesContext(db) as queries:
        resp = client.get(REPORT_URL)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "<title>Weekly report" in html and "<h1>Weekly report</h1>" in html
    # The one capability asked for covers the other missing one, and the page says so.
    modify, send = catalogue.label("google.gmail.modify"), catalogue.label("google.gmail.send")
    # The heading counts what the one button asks, and what that covers.
    assert "Not ready: needs 1 permission (covers 2) and 1 secret</h2>" in html
    (form,) = forms_of(html)
    assert form["inputs"][0] == ("capabilities", "google.gmail.modify")
    assert form["html"] in step_of(html, "google.gmail.modify")
    assert f"{modify} also covers {send}." in form["html"]
    # The covered need has no button of its own: it says what covers it.
    covered = step_of(html, "google.gmail.send")
    assert "<form" not in covered and f"Covered by {modify}" in covered
    # The missing secret: an inline form, and the way to Settings → Secrets.
    secret = step_of(html, "FAL_KEY")
    secrets = reverse("integrations:secrets")
    assert f'action="{reverse("apps_registry:app_secret_add", args=["acme", "report"])}"' in secret
    assert '<input type="password" id="secret-FAL_KEY" name="value"' in secret
    assert f'<a href="{secrets}">Settings → Secrets</a>' in secret
    assert len(queries) == 8
    assert not ManifestVersion.objects.filter(app__name="report").exclude(number=1).exists()
    listing = client.get(reverse("apps_registry:list"))
    assert listing.status_code == 200


# --- the checklist's inline secret form -----------------------------------------------

SECRET_ADD = reverse("apps_registry:app_secret_add", args=["acme", "report"])
VALUE = "fal-value-that-must-never-be-shown"


def test_a_missing_secret_is_added_inline_and_never_echoed(client, alice, bob, upload):
    upload(alice, CHECKLIST)
    client.force_login(bob)

    resp = client.post(SECRET_ADD, {"key": "FAL_KEY", "value": VALUE})

    assert resp.status_code == 302 and resp["Location"] == REPORT_URL
    assert texts(resp) == ["Added FAL_KEY."]
    secret = Secret.objects.get(user=bob, key="FAL_KEY")
    assert VALUE.encode() not in bytes(secret.value_encrypted)
    assert secret_value(secret=secret) == VALUE
    assert AuditEvent.objects.filter(kind="secret_set", user=bob, account="FAL_KEY").exists()
    html = client.get(REPORT_URL).content.decode()
    assert VALUE not in html
    row = step_of(html, "FAL_KEY")
    assert 'class="step step-done"' in html and "<form" not in row
    # Set, not allowed yet: the Allow step offers it.
    assert "the secret FAL_KEY" in step_of(html, "allow")
    assert "Not ready: needs 1 permission (covers 2) and your Allow</h2>" in html


def test_the_inline_secret_form_needs_a_csrf_token(alice, bob, upload):
    upload(alice, CHECKLIST)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(bob)
    resp = csrf_client.post(SECRET_ADD, {"key": "FAL_KEY", "value": VALUE})
    assert resp.status_code == 403
    assert not Secret.objects.exists()


def test_the_inline_secret_form_writes_only_the_users_own_declared_secret(
    client, alice, bob, upload
):
    upload(alice, CHECKLIST)
    secret_set(user=alice, key="FAL_KEY", value="alice's own")
    client.force_login(bob)

    # A key the app does not declare is refused, whatever the form says.
    resp = client.post(SECRET_ADD, {"key": "OTHER_KEY", "value": VALUE})
    assert resp.status_code == 302 and resp["Location"] == REPORT_URL
    assert texts(resp) == ["acme/report declares no such secret: nothing was saved."]
    assert not Secret.objects.filter(user=bob).exists()

    # Bob's FAL_KEY is his: Alice's stays as it was.
    client.post(SECRET_ADD, {"key": "FAL_KEY", "value": VALUE})
    assert secret_value(secret=Secret.objects.get(user=bob)) == VALUE
    assert secret_value(secret=Secret.objects.get(user=alice)) == "alice's own"

    # A stale page never replaces a secret that is set: that is Settings → Secrets' job.
    resp = client.post(SECRET_ADD, {"key": "FAL_KEY", "value": "replaced"})
    assert texts(resp)[-1] == "FAL_KEY is already set; replace it under Settings → Secrets."
    assert secret_value(secret=Secret.objects.get(user=bob)) == VALUE

    # An app Bob cannot see (no valid version, not his) is a 404.
    upload(alice, REPORT.replace("name: report", "name: hidden").replace("true", "1"))
    hidden = reverse("apps_registry:app_secret_add", args=["acme", "hidden"])
    assert client.post(hidden, {"key": "FAL_KEY", "value": VALUE}).status_code == 404


def test_the_inline_secret_form_refuses_a_too_long_or_empty_value_without_echoing_it(
    client, alice, bob, upload
):
    upload(alice, CHECKLIST)
    client.force_login(bob)
    long_value = "s" * (16 * 1024) + "!"

    resp = client.post(SECRET_ADD, {"key": "FAL_KEY", "value": long_value})
    assert resp.status_code == 302 and resp["Location"] == REPORT_URL
    assert texts(resp) == ["FAL_KEY was not saved: The value is longer than 16 KiB."]
    resp = client.post(SECRET_ADD, {"key": "FAL_KEY", "value": ""})
    assert texts(resp)[-1] == "FAL_KEY was not saved: The value is empty."
    assert not Secret.objects.exists()
    html = client.get(REPORT_URL).content.decode()
    assert long_value not in html and 'class="secret-add"' in html


def test_the_inline_secret_form_is_post_only_for_signed_in_users(client, alice, bob, upload):
    upload(alice, CHECKLIST)
    resp = client.post(SECRET_ADD, {"key": "FAL_KEY", "value": VALUE})
    assert resp.status_code == 302 and resp["Location"].startswith(reverse("account_login"))
    client.force_login(bob)
    assert client.get(SECRET_ADD).status_code == 405
    assert not Secret.objects.exists()
