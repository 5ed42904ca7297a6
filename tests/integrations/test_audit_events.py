"""Disconnect leaves a "revocation" and a "disconnect" audit event, and no token in the
audit log."""

from __future__ import annotations

import pytest
import responses
from django.forms.models import model_to_dict
from django.urls import reverse

from integrations.models import AuditEvent, Connection

from .fakes import FakeGoogle
from .test_flows import connect

pytestmark = pytest.mark.django_db


@pytest.fixture
def google():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGoogle(rsps)


def audit_rows_as_text() -> str:
    return "\n".join(
        repr(model_to_dict(event) | {"created_at": event.created_at})
        for event in AuditEvent.objects.all()
    )


def test_disconnect_records_the_revocation_then_the_disconnect(alice_client, alice, google):
    conn = connect(alice_client, google, ["google.gmail.readonly", "google.sheets.readonly"])
    before = set(AuditEvent.objects.values_list("id", flat=True))

    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))

    assert resp.status_code == 302
    assert not Connection.objects.filter(pk=conn.pk).exists()
    new = list(AuditEvent.objects.exclude(id__in=before).order_by("id"))
    assert [e.kind for e in new] == [AuditEvent.Kind.REVOCATION, AuditEvent.Kind.DISCONNECT]
    revocation, disconnect = new
    assert revocation.ok is True and revocation.error_code == ""
    assert disconnect.ok is True and disconnect.error_code == ""
    for event in new:
        # The events outlive the connection and still say whose and which it was.
        assert event.connection_id == conn.pk
        assert event.user_id == alice.pk
        assert event.provider == "google"
        assert event.account == "alice@gmail.example"

    rows = audit_rows_as_text()
    assert google.issued and google.revoked
    for token in google.issued:
        assert token not in rows


@pytest.mark.parametrize("status", [400, 503])
def test_a_failed_revocation_is_recorded_and_the_disconnect_still_happens(
    alice_client, google, status
):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    google.revoke_status = status

    alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))

    revocation = AuditEvent.objects.get(kind=AuditEvent.Kind.REVOCATION)
    assert revocation.ok is False and revocation.error_code == "server_error"
    disconnect = AuditEvent.objects.get(kind=AuditEvent.Kind.DISCONNECT)
    assert disconnect.connection_id == conn.pk and disconnect.id > revocation.id
    assert not Connection.objects.filter(pk=conn.pk).exists()
    rows = audit_rows_as_text()
    for token in google.issued:
        assert token not in rows


def test_a_second_disconnect_records_nothing_more(alice_client, google):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    url = reverse("integrations:disconnect", kwargs={"id": conn.pk})
    alice_client.post(url)

    assert alice_client.post(url).status_code == 404

    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DISCONNECT).count() == 1
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REVOCATION).count() == 1
    assert len(google.revoked) == 1


def test_an_audit_event_cannot_be_changed_or_deleted_through_the_orm(alice):
    from integrations.audit import audit_record

    audit_record(kind=AuditEvent.Kind.SECRET_SET, provider="secrets", user=alice, account="K")
    event = AuditEvent.objects.get()
    event.ok = False
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.get().ok
