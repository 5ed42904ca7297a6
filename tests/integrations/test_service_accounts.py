"""Settings → Secrets → Service accounts: a Google service-account key and the user's
own GCP project; key files checked, stored encrypted, never shown again."""

from __future__ import annotations

import json
import logging
from html import unescape
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection as db
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from integrations.core import crypto
from integrations.core.service_account_keys import (
    MAX_KEY_BYTES,
    parse_project_number,
    parse_service_account_key,
)
from integrations.errors import InvalidServiceAccountKeyError
from integrations.models import AuditEvent, ServiceAccountKey
from integrations.providers import registry
from integrations.service_accounts import google_sa_credentials_json, service_account_key_set

from .gcp_fakes import KEY_ID, key_info, key_json, pem_body_fragment, rsa_key
from .test_no_leaks import dump_every_table

PAGE = reverse("integrations:service_accounts")
UPLOAD_SA = reverse("integrations:service_account_upload", kwargs={"purpose": "google-sa"})
UPLOAD_GCP = reverse("integrations:service_account_upload", kwargs={"purpose": "gcp"})
EMAIL = "runner@my-project.iam.gserviceaccount.com"


def delete_url(key: ServiceAccountKey) -> str:
    return reverse("integrations:service_account_delete", kwargs={"id": key.pk})


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def key_file(text: str | bytes, name: str = "my-project-0123456789ab.json") -> SimpleUploadedFile:
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="application/json")


# --- the key file rules (pure) ---------------------------------------------------------


def test_a_console_key_file_is_accepted():
    info = parse_service_account_key(key_json())
    assert (info.client_email, info.project_id, info.private_key_id) == (
        EMAIL,
        "my-project",
        KEY_ID,
    )
    assert info.token_uri == "https://oauth2.googleapis.com/token"
    assert "PRIVATE KEY" not in repr(info)
    # A BOM (Windows editors) is tolerated.
    assert parse_service_account_key(b"\xef\xbb\xbf" + key_json().encode()).project_id


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _encrypted_pem() -> str:
    return (
        rsa_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        .decode()
    )


TRUNCATED_PEM_MARK = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-secret-ish-content\n"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Upload the key file or paste its JSON."),
        ("{" + " " * MAX_KEY_BYTES + "}", "larger than 16 KiB"),
        (b"\xff\xfe{}", "not a text file"),
        ('{"type": "service_account",', "not valid JSON (line 1, column 28)"),
        ("[" * 5000 + "]" * 5000, "JSON"),
        ('["service_account"]', "must be a JSON object"),
        (key_json(type="authorized_user-sensitive-marker"), '"type" must be "service_account"'),
        (key_json(client_email="not-an-email"), '"client_email" is not an email address'),
        (key_json(client_email=None), 'The key has no "client_email"'),
        (key_json(private_key=TRUNCATED_PEM_MARK), '"private_key" is not a readable PEM'),
        (key_json(private_key=_encrypted_pem()), "protected by a password"),
        (key_json(private_key=_ec_pem()), "must be an RSA key"),
        (key_json(private_key=None), 'The key has no "private_key"'),
        (key_json(private_key_id="../../etc"), '"private_key_id" is not a key id'),
        (key_json(token_uri="http://oauth2.googleapis.com/token"), "must be an https:// URL"),
        (key_json(token_uri="http://127.0.0.1:8000/token"), "must be an https:// URL"),
        (key_json(token_uri="ftp://example.com/token"), "must be an https:// URL"),
        # Any other https host would let a user aim the server's POST anywhere (SSRF).
        (key_json(token_uri="https://metadata.internal/token"), "must be Google's token endpoint"),
        (key_json(token_uri="https://oauth2.googleapis.com.evil.example/token"), "Google's"),
        (key_json(token_uri="https://oauth2.googleapis.com/token?x=1"), "Google's"),
        (key_json(token_uri="https://user:pw@example.com/t"), '"token_uri" is not a valid URL'),
        (key_json(token_uri="https:///token"), '"token_uri" is not a valid URL'),
        (key_json(project_id=None), 'The key has no "project_id"'),
        (key_json(project_id="Has Spaces"), '"project_id" is not a Google Cloud project id'),
        (key_json(universe_domain="example.com"), '"universe_domain" must be'),
    ],
)
def test_malformed_keys_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(InvalidServiceAccountKeyError) as exc_info:
        parse_service_account_key(raw)
    text = str(exc_info.value)
    assert message in text
    for never in ("sensitive-marker", "MIIEvQ", "PRIVATE KEY", "not-an-email", "../../etc"):
        assert never not in text
    # Nothing of the parser's own error (which could quote the input) is chained.
    assert exc_info.value.__cause__ is None
    assert exc_info.value.__context__ is None or exc_info.value.__suppress_context__


def test_loopback_http_only_when_allowed():
    local = key_json(token_uri="http://127.0.0.1:8123/token")
    assert parse_service_account_key(local, allow_loopback_http=True).token_uri.startswith("http:")
    assert parse_service_account_key(
        key_json(token_uri="http://localhost/token"), allow_loopback_http=True
    )
    with pytest.raises(InvalidServiceAccountKeyError):
        parse_service_account_key(
            key_json(token_uri="http://10.0.0.1/token"), allow_loopback_http=True
        )
    with pytest.raises(InvalidServiceAccountKeyError):
        parse_service_account_key(local, allow_loopback_http=False)


@pytest.mark.parametrize("raw", ["123456789012", " 42 "])
def test_project_numbers(raw):
    assert parse_project_number(raw) == raw.strip()


@pytest.mark.parametrize("raw", ["", "my-project", "12 34", "-1", "1" * 21, "١٢٣"])
def test_project_numbers_refused(raw):
    with pytest.raises(InvalidServiceAccountKeyError, match="digits only"):
        parse_project_number(raw)


# --- the page --------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_needs_login(client):
    resp = client.get(PAGE)
    assert resp.status_code == 302 and resp["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db
def test_empty_page_offers_both_uploads_without_javascript(alice_client):
    resp = alice_client.get(PAGE)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'href="/settings/secrets/service-accounts/" aria-current="page">Service accounts' in html
    assert html.count('aria-current="page"') == 1
    assert "No Google service account uploaded." in html
    assert "No GCP project set up." in html
    assert html.count('enctype="multipart/form-data"') == 2
    assert html.count('name="csrfmiddlewaretoken"') >= 3  # two uploads, sign out
    for label in ('for="google-sa-file"', 'for="google-sa-json"', 'for="gcp-number"'):
        assert label in html
    assert f'action="{UPLOAD_SA}"' in html and f'action="{UPLOAD_GCP}"' in html
    assert "<script" not in html


@pytest.mark.django_db
def test_upload_a_google_service_account_file(alice_client, alice):
    resp = alice_client.post(UPLOAD_SA, {"key_file": key_file(key_json())})
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert texts(resp) == [f"Added the Google service account ({EMAIL})."]
    key = ServiceAccountKey.objects.get(user=alice)
    assert key.purpose == "google_sa"
    assert (key.client_email, key.project_id, key.private_key_id) == (EMAIL, "my-project", KEY_ID)
    assert key.project_number == ""
    assert google_sa_credentials_json(user=alice) == key_json()
    assert key.fingerprint == crypto.fingerprint(key_json())
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.SERVICE_ACCOUNT_SET)
    assert event.user == alice and event.account == EMAIL and event.provider == "google"

    html = alice_client.get(PAGE).content.decode()
    assert EMAIL in html and "Share your files" in html and "my-project" in html
    assert f'href="{delete_url(key)}"' in html
    assert "PRIVATE KEY" not in html and pem_body_fragment(rsa_key()) not in html


@pytest.mark.django_db
def test_paste_and_replace(alice_client, alice):
    alice_client.post(UPLOAD_SA, {"key_json": key_json()})
    first = ServiceAccountKey.objects.get(user=alice)
    other = key_json(client_email="other@my-project.iam.gserviceaccount.com")
    resp = alice_client.post(UPLOAD_SA, {"key_json": other})
    assert texts(resp)[-1:] == [
        "Replaced the Google service account (other@my-project.iam.gserviceaccount.com)."
    ]
    (key,) = ServiceAccountKey.objects.filter(user=alice)
    assert key.pk != first.pk and key.client_email.startswith("other@")
    assert AuditEvent.objects.filter(kind="service_account_set").latest("id").detail["replaced"]


@pytest.mark.django_db
def test_set_up_a_gcp_project(alice_client, alice):
    resp = alice_client.post(
        UPLOAD_GCP, {"project_number": "123456789012", "key_file": key_file(key_json())}
    )
    assert resp.status_code == 302
    assert texts(resp) == [f"Added the GCP project ({EMAIL})."]
    key = ServiceAccountKey.objects.get(user=alice, purpose="gcp")
    assert key.project_number == "123456789012"
    html = alice_client.get(PAGE).content.decode()
    assert "123456789012" in html and EMAIL in html and "Vertex AI User" in html
    assert "No Google service account uploaded." in html  # the two are separate


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("purpose_url", "data", "message"),
    [
        (UPLOAD_GCP, {"project_number": "my-project", "key_json": key_json()}, "digits only"),
        (UPLOAD_GCP, {"project_number": "", "key_json": key_json()}, "Give the project number"),
        (UPLOAD_SA, {}, "Upload the key file or paste its JSON."),
        (UPLOAD_SA, {"key_json": "{not json"}, "not valid JSON"),
        (UPLOAD_SA, {"key_json": key_json(type="authorized_user")}, '"type" must be'),
        (UPLOAD_SA, {"key_json": key_json(private_key=TRUNCATED_PEM_MARK)}, "readable PEM"),
        (UPLOAD_SA, {"key_json": key_json(token_uri="http://evil.example/t")}, "https://"),
    ],
)
def test_refused_uploads_say_why_and_never_echo_the_key(
    alice_client, alice, purpose_url, data, message
):
    resp = alice_client.post(purpose_url, data)
    html = unescape(resp.content.decode())
    assert resp.status_code == 200
    assert message in html
    assert "The key was not saved" in html
    assert not ServiceAccountKey.objects.exists()
    assert "MIIEvQ" not in html and "PRIVATE KEY" not in html
    assert pem_body_fragment(rsa_key()) not in html
    textarea = html.split('id="google-sa-json"')[1].split("</textarea>")[0]
    assert textarea.strip().endswith(">")  # rendered empty


@pytest.mark.django_db
def test_error_reports_mask_the_pasted_key(alice_client):
    resp = alice_client.post(UPLOAD_SA, {"key_json": key_json()})
    params = SafeExceptionReporterFilter().get_post_parameters(resp.wsgi_request)
    assert set(params["key_json"]) == {"*"}


@pytest.mark.django_db
def test_oversized_file_is_refused_before_reading(alice_client):
    big = key_file(b"{" + b" " * (MAX_KEY_BYTES + 10) + b"}")
    resp = alice_client.post(UPLOAD_SA, {"key_file": big})
    assert "larger than 16 KiB" in resp.content.decode()
    assert not ServiceAccountKey.objects.exists()


@pytest.mark.django_db
def test_file_and_paste_together_are_refused(alice_client):
    resp = alice_client.post(UPLOAD_SA, {"key_file": key_file(key_json()), "key_json": key_json()})
    assert "not both" in resp.content.decode()
    assert not ServiceAccountKey.objects.exists()


@pytest.mark.django_db
def test_unknown_purpose_is_404(alice_client):
    url = reverse("integrations:service_account_upload", kwargs={"purpose": "other"})
    assert alice_client.post(url, {"key_json": key_json()}).status_code == 404
    assert alice_client.get(UPLOAD_SA).status_code == 405
    assert not ServiceAccountKey.objects.exists()


@pytest.mark.django_db
def test_delete_asks_then_deletes(alice_client, alice):
    key = service_account_key_set(
        user=alice, purpose="gcp", key_text=key_json(), project_number="42"
    ).key
    html = alice_client.get(delete_url(key)).content.decode()
    assert "Delete the GCP project?" in html and EMAIL in html and 'method="post"' in html
    assert ServiceAccountKey.objects.filter(pk=key.pk).exists()
    resp = alice_client.post(delete_url(key))
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert texts(resp) == [f"Deleted the GCP project ({EMAIL})."]
    assert not ServiceAccountKey.objects.exists()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.SERVICE_ACCOUNT_DELETED)
    assert event.user == alice and event.provider == "gcp" and event.account == EMAIL


@pytest.mark.django_db
def test_another_users_key_is_404(alice_client, bob):
    key = service_account_key_set(user=bob, purpose="google_sa", key_text=key_json()).key
    assert alice_client.get(delete_url(key)).status_code == 404
    assert alice_client.post(delete_url(key)).status_code == 404
    assert ServiceAccountKey.objects.filter(pk=key.pk).exists()
    assert EMAIL not in alice_client.get(PAGE).content.decode()


@pytest.mark.django_db
def test_posts_need_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(UPLOAD_SA, {"key_json": key_json()}).status_code == 403
    assert not ServiceAccountKey.objects.exists()
    key = service_account_key_set(user=alice, purpose="google_sa", key_text=key_json()).key
    assert client.post(delete_url(key)).status_code == 403
    assert ServiceAccountKey.objects.filter(pk=key.pk).exists()


def _queries(client) -> int:
    with CaptureQueriesContext(db) as ctx:
        assert client.get(PAGE).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_page_query_count_is_pinned(alice_client, alice):
    # The page's Content-Security-Policy names the providers' origins, read from the
    # provider definitions cached per process (config/csp.py): warm, as in production.
    registry.authorization_origins()
    empty = _queries(alice_client)
    service_account_key_set(user=alice, purpose="google_sa", key_text=key_json())
    service_account_key_set(user=alice, purpose="gcp", key_text=key_json(), project_number="1")
    # session, user, keys, the apps allowed to use them
    assert _queries(alice_client) == empty == 4


# --- never in clear --------------------------------------------------------------------


@pytest.mark.django_db
def test_key_never_in_db_logs_audit_or_admin(alice_client, alice, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    alice_client.post(UPLOAD_SA, {"key_file": key_file(key_json())})
    alice_client.post(UPLOAD_GCP, {"project_number": "77", "key_json": key_json()})
    alice_client.post(UPLOAD_SA, {"key_json": key_json(client_email="bad")})  # refused
    key = ServiceAccountKey.objects.get(purpose="gcp")
    admin_html = "".join(
        admin_client.get(url).content.decode()
        for url in (
            reverse("admin:integrations_serviceaccountkey_changelist"),
            reverse("admin:integrations_serviceaccountkey_change", args=[key.pk]),
            reverse("admin:integrations_auditevent_changelist"),
        )
    )
    assert EMAIL in admin_html and "77" in admin_html and "GCP project" in admin_html
    assert "key_encrypted" not in admin_html
    dump = dump_every_table()
    assert EMAIL in dump  # the scan did see the table
    logs = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    for text in (dump, logs, admin_html):
        assert pem_body_fragment(rsa_key()) not in text
        assert "PRIVATE KEY" not in text
    assert "PRIVATE KEY" not in str(key) + repr(key)


@pytest.mark.django_db
def test_admin_cannot_add_or_change_keys(admin_client, alice):
    key = service_account_key_set(user=alice, purpose="google_sa", key_text=key_json()).key
    assert admin_client.get(reverse("admin:integrations_serviceaccountkey_add")).status_code == 403
    resp = admin_client.post(
        reverse("admin:integrations_serviceaccountkey_change", args=[key.pk]),
        {"client_email": "changed@example.com"},
    )
    assert resp.status_code == 403
    key.refresh_from_db()
    assert key.client_email == EMAIL


KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.mark.django_db
def test_rotate_token_keys_covers_service_account_keys(alice):
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_A]):
        key = service_account_key_set(user=alice, purpose="google_sa", key_text=key_json()).key
        before = bytes(key.key_encrypted)
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_B, KEY_A]):
        out = StringIO()
        call_command("rotate_token_keys", stdout=out)
        assert "1 service account keys" in out.getvalue()
        key.refresh_from_db()
        assert bytes(key.key_encrypted) != before
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_B]):
        assert json.loads(google_sa_credentials_json(user=alice)) == key_info()
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_A]), pytest.raises(crypto.DecryptionError):
        google_sa_credentials_json(user=alice)
