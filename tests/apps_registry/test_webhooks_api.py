"""``/api/v1/webhook-endpoints/``: staff's, with a staff member's personal API token; a
non-staff token is 403 ``staff_only``; the secret only in the create and rotate answers."""

from __future__ import annotations

import pytest
from django.test import Client

from apps_registry import services
from integrations.events.endpoints import webhook_endpoint_secret
from integrations.models import AuditEvent, WebhookEndpoint

pytestmark = pytest.mark.django_db

LIST = "/api/v1/webhook-endpoints/"


@pytest.fixture
def staff(make_user):
    user = make_user("staff@example.com")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def api(user) -> Client:
    token = services.api_token_create(user=user, name="t")[1]
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_staff_registers_lists_changes_rotates_and_deletes(staff):
    client = api(staff)
    made = client.post(
        LIST,
        {"url": "https://hooks.example.com/in", "event_types": ["connection.deleted"]},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["secret"].startswith("whsec_") and "no-store" in made["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert webhook_endpoint_secret(endpoint=endpoint) == body["secret"]
    assert body["event_types"] == ["connection.deleted"] and body["enabled"] is True

    listed = client.get(LIST)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()] == [endpoint.pk]
    one = f"{LIST}{endpoint.pk}/"
    for answer in (listed, client.get(one)):
        assert body["secret"] not in answer.content.decode()
        assert "secret" not in str(answer.json())

    changed = client.patch(one, {"enabled": False}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["event_types"] == ["connection.deleted"]  # unchanged

    rotated = client.post(f"{one}rotate-secret/")
    assert rotated.status_code == 200
    endpoint.refresh_from_db()
    assert webhook_endpoint_secret(endpoint=endpoint) == rotated.json()["secret"]
    assert rotated.json()["secret"] != body["secret"]

    assert client.delete(one).status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert client.get(one).status_code == 404
    actions = list(
        AuditEvent.objects.filter(kind="webhook_endpoint", user=staff)
        .order_by("id")
        .values_list("detail__action", flat=True)
    )
    assert actions == ["created", "updated", "secret_rotated", "deleted"]


def test_a_non_staff_token_is_refused_with_a_code(alice, staff):
    made = api(staff).post(
        LIST, {"url": "https://hooks.example.com/in"}, content_type="application/json"
    )
    one = f"{LIST}{made.json()['id']}/"
    client = api(alice)
    for answer in (
        client.get(LIST),
        client.post(LIST, {"url": "https://x.example/"}, content_type="application/json"),
        client.get(one),
        client.patch(one, {"enabled": False}, content_type="application/json"),
        client.delete(one),
        client.post(f"{one}rotate-secret/"),
    ):
        assert answer.status_code == 403
        assert answer.json()["error"] == "staff_only"
    assert WebhookEndpoint.objects.get().enabled is True
    assert Client().get(LIST).status_code == 401


def test_bad_input_is_400_and_unknown_ids_404(staff):
    client = api(staff)
    for body in (
        {"url": "ftp://example.com/"},
        {"url": "https://user:pw@example.com/"},
        {"url": "https://example.com/", "event_types": ["nope"]},
        {},
    ):
        answer = client.post(LIST, body, content_type="application/json")
        assert answer.status_code == 400, body
    assert not WebhookEndpoint.objects.exists()
    assert client.get(f"{LIST}99999999999999999999/").status_code == 404
    assert client.patch(f"{LIST}1/", {}, content_type="application/json").status_code == 404
