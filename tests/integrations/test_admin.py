import pytest
from django.urls import reverse

from integrations.models import AuditEvent

from .factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def test_connection_admin_lists_searches_and_filters(admin_client, alice):
    conn = ConnectionFactory.create(user=alice, account_email="findme@gmail.example")
    ConnectionFactory.create(
        user=alice, account_email="other@gmail.example", status="needs_reconnect"
    )
    url = reverse("admin:integrations_connection_changelist")

    html = admin_client.get(url, {"q": "findme"}).content.decode()
    assert "findme@gmail.example" in html and "other@gmail.example" not in html
    assert conn.token_fingerprint in html
    html = admin_client.get(url, {"status__exact": "needs_reconnect"}).content.decode()
    assert "other@gmail.example" in html and "findme@gmail.example" not in html

    detail = admin_client.get(reverse("admin:integrations_connection_change", args=[conn.pk]))
    text = detail.content.decode()
    assert "google.sheets.readonly" in text
    assert "factory-access" not in text and "factory-refresh" not in text
    assert "access_token_encrypted" not in text


def test_audit_log_is_read_only(admin_client, alice):
    event = AuditEvent.objects.create(kind="connect", provider="google", user=alice)
    assert admin_client.get(reverse("admin:integrations_auditevent_changelist")).status_code == 200
    resp = admin_client.post(
        reverse("admin:integrations_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert resp.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert admin_client.get(reverse("admin:integrations_auditevent_add")).status_code == 403


def test_audit_filters_name_the_empty_value(admin_client, alice):
    """An event without a provider or an error code: its filter link says so (an empty
    link is unusable and fails axe's link-name rule)."""
    AuditEvent.objects.create(kind="run_environment", provider="", user=alice)
    AuditEvent.objects.create(kind="connect", provider="google", user=alice)
    html = admin_client.get(reverse("admin:integrations_auditevent_changelist")).content.decode()
    assert '<a href="?provider="></a>' not in html
    assert '<a href="?provider=">(none)</a>' in html
    assert '<a href="?provider=google">google</a>' in html


def test_admin_is_branded_and_lists_no_unused_models(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Integrations Hub admin" in html
    assert "css/admin-brand.css" in html
    for name in (
        "Social accounts",
        "Social application",
        "Social application tokens",
        "Access tokens",
        "Refresh tokens",
        "Grants",
        "Id tokens",
    ):
        assert f">{name}<" not in html
    assert ">Audit events<" in html


def test_audit_list_says_what_happened(admin_client, alice):
    AuditEvent.objects.create(
        kind="refresh_succeeded", provider="google", user=alice, account="ada@example.com"
    )
    AuditEvent.objects.create(
        kind="refresh_failed", provider="google", user=alice, ok=False, error_code="http_500"
    )
    AuditEvent.objects.create(
        kind="disconnect", provider="google", user=alice, ok=False, error_code="timeout"
    )
    resp = admin_client.get(reverse("admin:integrations_auditevent_changelist"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Refreshed Google token for ada@example.com" in html
    assert "Refresh failed: provider answered 500" in html
    assert "Disconnected; revoke failed (timeout)" in html
