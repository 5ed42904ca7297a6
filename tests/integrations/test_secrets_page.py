"""Settings → Secrets (the Secrets tab): add, replace, delete; write-only values."""

from __future__ import annotations

import logging

import pytest
from django.contrib.messages import get_messages
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from integrations import secrets as services
from integrations.core.secret_rules import MAX_VALUE_BYTES
from integrations.errors import InvalidSecretError
from integrations.models import AuditEvent, Secret
from integrations.providers import registry

from .test_no_leaks import dump_every_table

pytestmark = pytest.mark.django_db
PAGE = reverse("integrations:secrets")
VALUE = "fal-0123456789-very-secret-value"


def delete_url(secret: Secret) -> str:
    return reverse("integrations:secret_delete", kwargs={"id": secret.pk})


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def test_page_needs_login(client):
    resp = client.get(PAGE)
    assert resp.status_code == 302
    assert resp["Location"].startswith(reverse("account_login"))


def test_empty_page_has_the_tab_bar_and_a_labelled_form(alice_client):
    resp = alice_client.get(PAGE)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'href="/settings/secrets/" aria-current="page">Secrets</a>' in html
    assert 'href="/settings/secrets/integrations/">Integrations</a>' in html
    assert 'href="/settings/secrets/service-accounts/">Service accounts</a>' in html
    assert html.count('aria-current="page"') == 1
    assert "No secrets yet." in html
    assert '<label for="secret-key">Key</label>' in html
    assert '<label for="secret-value">Value</label>' in html
    assert 'type="password" name="value" id="secret-value"' in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_add_then_replace(alice_client, alice):
    resp = alice_client.post(PAGE, {"key": "FAL_KEY", "value": VALUE})
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert texts(resp) == ["Added FAL_KEY."]
    secret = Secret.objects.get(user=alice)
    assert secret.key == "FAL_KEY"
    assert services.secret_value(secret=secret) == VALUE

    resp = alice_client.post(PAGE, {"key": "FAL_KEY", "value": "fal-second-value"}, follow=True)
    assert "Replaced FAL_KEY." in resp.content.decode()
    assert Secret.objects.filter(user=alice).count() == 1
    secret.refresh_from_db()
    assert services.secret_value(secret=secret) == "fal-second-value"

    events = list(AuditEvent.objects.filter(kind=AuditEvent.Kind.SECRET_SET).order_by("id"))
    assert [e.detail["replaced"] for e in events] == [False, True]
    assert all(e.user == alice and e.account == "FAL_KEY" for e in events)


def test_page_lists_key_fingerprint_and_date_never_the_value(alice_client, alice, bob):
    alice_client.post(PAGE, {"key": "FAL_KEY", "value": VALUE})
    services.secret_set(user=bob, key="BOB_KEY", value="bob-value")
    secret = Secret.objects.get(user=alice)
    html = alice_client.get(PAGE).content.decode()
    assert "<code>FAL_KEY</code>" in html
    assert secret.fingerprint in html
    assert f'href="{delete_url(secret)}"' in html
    assert VALUE not in html
    assert "BOB_KEY" not in html


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("fal_key", VALUE, "capital letters"),
        ("1KEY", VALUE, "not starting with a digit"),
        ("FAL-KEY", VALUE, "capital letters"),
        ("K" * 129, VALUE, "at most 128 characters"),
        ("", VALUE, "Give the secret a key"),
        ("FAL_KEY", "", "The value is empty."),
        ("FAL_KEY", "   ", "The value is empty."),
        ("FAL_KEY", "x" * (MAX_VALUE_BYTES + 1), "longer than 16 KiB"),
        ("FAL_KEY", "é" * (MAX_VALUE_BYTES // 2 + 1), "longer than 16 KiB"),
    ],
)
def test_refused_input_keeps_the_value_out_of_the_page(alice_client, key, value, error):
    resp = alice_client.post(PAGE, {"key": key, "value": value})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert error in html
    assert "The secret was not saved" in html
    assert 'aria-invalid="true"' in html
    assert not Secret.objects.exists()
    # The password input is rendered empty.
    value_input = html.split('id="secret-value"')[0].rsplit("<input", 1)[1]
    assert "value=" not in value_input
    if value.strip():
        assert value not in html


def test_a_valid_value_with_a_bad_key_is_not_echoed(alice_client):
    html = alice_client.post(PAGE, {"key": "bad key", "value": VALUE}).content.decode()
    assert VALUE not in html
    assert 'value="bad key"' in html  # the key is not secret: kept for correcting


def test_limits_are_inclusive(alice_client, alice):
    key = "K" * 128
    resp = alice_client.post(PAGE, {"key": key, "value": "v" * MAX_VALUE_BYTES})
    assert resp.status_code == 302
    assert Secret.objects.get(user=alice).key == key


def test_service_checks_the_rules_too(alice):
    with pytest.raises(InvalidSecretError):
        services.secret_set(user=alice, key="lower", value="v")
    with pytest.raises(InvalidSecretError):
        services.secret_set(user=alice, key="OK", value="\x00")
    assert not Secret.objects.exists()


def test_delete_asks_then_deletes(alice_client, alice):
    secret = services.secret_set(user=alice, key="FAL_KEY", value=VALUE).secret
    confirm = alice_client.get(delete_url(secret))
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Delete FAL_KEY?" in html and 'method="post"' in html
    assert Secret.objects.filter(pk=secret.pk).exists()
    assert VALUE not in html

    resp = alice_client.post(delete_url(secret))
    assert resp.status_code == 302 and resp["Location"] == PAGE
    assert texts(resp) == ["Deleted FAL_KEY."]
    assert not Secret.objects.filter(pk=secret.pk).exists()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.SECRET_DELETED)
    assert event.user == alice and event.detail == {
        "key": "FAL_KEY",
        "fingerprint": secret.fingerprint,
    }


def test_another_users_secret_is_404(alice_client, bob):
    secret = services.secret_set(user=bob, key="BOB_KEY", value="bob-value").secret
    assert alice_client.get(delete_url(secret)).status_code == 404
    assert alice_client.post(delete_url(secret)).status_code == 404
    assert Secret.objects.filter(pk=secret.pk).exists()
    missing = reverse("integrations:secret_delete", kwargs={"id": secret.pk + 1000})
    assert alice_client.post(missing).status_code == 404


def test_posts_need_csrf(alice, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(PAGE, {"key": "FAL_KEY", "value": VALUE}).status_code == 403
    assert not Secret.objects.exists()
    secret = services.secret_set(user=alice, key="FAL_KEY", value=VALUE).secret
    assert client.post(delete_url(secret)).status_code == 403
    assert Secret.objects.filter(pk=secret.pk).exists()


def test_value_never_in_logs_db_audit_or_admin(alice_client, alice, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    alice_client.post(PAGE, {"key": "FAL_KEY", "value": VALUE})
    alice_client.post(PAGE, {"key": "bad key", "value": VALUE + "-2"})
    secret = Secret.objects.get()
    admin_html = "".join(
        admin_client.get(url).content.decode()
        for url in (
            reverse("admin:integrations_secret_changelist"),
            reverse("admin:integrations_secret_change", args=[secret.pk]),
            reverse("admin:integrations_auditevent_changelist"),
        )
    )
    assert "FAL_KEY" in admin_html and secret.fingerprint in admin_html
    assert "value_encrypted" not in admin_html
    dump = dump_every_table()
    logs = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    for text in (dump, logs, admin_html):
        assert VALUE not in text
    assert "FAL_KEY" in dump  # the scan did see the table


def test_error_reports_mask_the_value(alice_client):
    """A 500 page or an admin error email shows the POST parameters: not this one."""
    resp = alice_client.post(PAGE, {"key": "FAL_KEY", "value": VALUE})
    params = SafeExceptionReporterFilter().get_post_parameters(resp.wsgi_request)
    assert params["key"] == "FAL_KEY"
    assert params["value"] != VALUE and set(params["value"]) == {"*"}


def _queries(client) -> int:
    with CaptureQueriesContext(db) as ctx:
        assert client.get(PAGE).status_code == 200
    return len(ctx.captured_queries)


def test_page_query_count_is_pinned(alice_client, alice):
    services.secret_set(user=alice, key="A", value="a")
    one = _queries(alice_client)
    for n in range(20):
        services.secret_set(user=alice, key=f"K{n}", value="v")
    # session, user, secrets, the apps allowed to use them
    assert _queries(alice_client) == one == 4


@pytest.mark.parametrize(
    "key",
    ["GOOGLE_OAUTH_ACCESS_TOKEN", "X_ACCESS_TOKEN", "GCP_ACCESS_TOKEN", "GOOGLE_SA_CREDENTIALS"],
)
def test_a_name_integrations_hand_out_is_refused_with_a_message(alice_client, alice, key):
    resp = alice_client.post(PAGE, {"key": key, "value": VALUE})

    assert resp.status_code == 200
    html = resp.content.decode()
    assert f"{key} is a name integrations hand to apps" in html
    assert VALUE not in html
    assert not Secret.objects.filter(user=alice).exists()


def test_the_service_refuses_a_reserved_name_too(alice):
    with pytest.raises(InvalidSecretError, match="a name integrations hand to apps"):
        services.secret_set(user=alice, key="GOOGLE_OAUTH_CREDENTIALS", value=VALUE)
    assert not Secret.objects.filter(user=alice).exists()


def test_a_staff_defined_providers_env_name_is_refused(alice_client, alice):

    from .test_provider_definitions import make_acme

    make_acme()
    registry.definitions_changed()
    resp = alice_client.post(PAGE, {"key": "ACME_TOKEN", "value": VALUE})
    assert "ACME_TOKEN is a name integrations hand to apps" in resp.content.decode()
    assert not Secret.objects.filter(user=alice).exists()


def test_the_discord_bot_token_stays_a_secret(alice_client, alice):
    token = "MTA" + "1" * 21 + ".GabcDE." + "x" * 30
    resp = alice_client.post(PAGE, {"key": "DISCORD_BOT_TOKEN", "value": token})
    assert resp.status_code == 302
    assert Secret.objects.filter(user=alice, key="DISCORD_BOT_TOKEN").exists()
