"""The user's own GCP project: access tokens minted from their service-account key
(RFC 7523 JWT bearer grant) at a real local token endpoint that checks the signed
assertion, cached until near expiry; and the Google service-account JSON for runs."""

from __future__ import annotations

import json
import logging
import pickle
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from integrations.errors import (
    IntegrationError,
    MissingCapabilitiesError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
    ServiceAccountMissingError,
)
from integrations.models import AuditEvent, ServiceAccountKey
from integrations.service_accounts import (
    gcp_credentials,
    google_sa_credentials_json,
    service_account_key_delete,
    service_account_key_set,
)

from .gcp_fakes import TokenEndpoint, key_json, pem_body_fragment, rsa_key, serve
from .test_no_leaks import dump_every_table

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def endpoint():
    ep = TokenEndpoint(public_key=rsa_key().public_key())
    server = serve(ep)
    yield ep
    server.shutdown()
    server.server_close()


def upload_gcp(user, endpoint: TokenEndpoint, *, key_name: str = "main", number: str = "1234"):
    return service_account_key_set(
        user=user,
        purpose="gcp",
        key_text=key_json(token_uri=endpoint.url, key=rsa_key(key_name)),
        project_number=number,
    ).key


def test_mints_a_token_with_a_signed_assertion_and_caches_it(alice, endpoint):
    upload_gcp(alice, endpoint, number="987654321012")

    first = gcp_credentials(user=alice)
    assert endpoint.requests == 1 and endpoint.rejected == []
    assert first.access_token == endpoint.issued[0]
    assert first.project_number == "987654321012"
    remaining = (first.expires_at - timezone.now()).total_seconds()
    assert 3500 < remaining <= 3599
    assert first.access_token not in repr(first)

    # Within the margin: from the cache, no request.
    again = gcp_credentials(user=alice, margin_seconds=600)
    assert endpoint.requests == 1
    assert again.access_token == first.access_token

    # Near expiry (less than the margin left): a new token is minted.
    later = timezone.now() + timedelta(seconds=3100)
    fresh = gcp_credentials(user=alice, margin_seconds=600, now=later)
    assert endpoint.requests == 2
    assert fresh.access_token == endpoint.issued[1] != first.access_token
    # ... and that one is cached in turn.
    assert gcp_credentials(user=alice).access_token == fresh.access_token
    assert endpoint.requests == 2


def test_the_endpoint_refuses_an_assertion_signed_by_another_key(alice, endpoint):
    """The endpoint's signature check can fail: a key whose private half does not
    match the endpoint's public key is refused, as Google refuses a deleted key."""
    upload_gcp(alice, endpoint, key_name="not-the-registered-one")
    with pytest.raises(ReauthorizationRequiredError) as exc_info:
        gcp_credentials(user=alice)
    assert endpoint.rejected == ["signature"]
    assert endpoint.issued == []
    assert exc_info.value.code == "invalid_grant"
    assert "upload a new key" in str(exc_info.value)
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.SERVICE_ACCOUNT_REJECTED)
    assert event.user == alice and not event.ok and event.error_code == "invalid_grant"


def test_the_endpoint_checks_iss(alice, endpoint):
    endpoint.client_email = "someone-else@my-project.iam.gserviceaccount.com"
    upload_gcp(alice, endpoint)
    with pytest.raises(ReauthorizationRequiredError):
        gcp_credentials(user=alice)
    assert endpoint.rejected == ["iss"]


def test_a_replaced_key_never_serves_the_old_token(alice, endpoint):
    upload_gcp(alice, endpoint)
    first = gcp_credentials(user=alice)
    upload_gcp(alice, endpoint)  # the same key file, uploaded again: a new row
    second = gcp_credentials(user=alice)
    assert endpoint.requests == 2
    assert second.access_token != first.access_token


def test_a_deleted_key_gives_no_token(alice, endpoint, django_capture_on_commit_callbacks):
    key = upload_gcp(alice, endpoint)
    gcp_credentials(user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        service_account_key_delete(key=key)
    assert not ServiceAccountKey.objects.exists()
    with pytest.raises(ServiceAccountMissingError):
        gcp_credentials(user=alice)
    # The cached token went with the key.
    assert not any(k for k in cache._cache if "gcp-token" in k)  # type: ignore[attr-defined]


def test_missing_key_is_a_missing_capabilities_error(alice):
    with pytest.raises(MissingCapabilitiesError) as exc_info:
        gcp_credentials(user=alice)
    assert isinstance(exc_info.value, ServiceAccountMissingError)
    assert exc_info.value.purpose == "gcp"
    assert set(exc_info.value.missing) == {
        "gcp.vertex_ai",
        "gcp.bigquery",
        "gcp.storage",
        "gcp.pubsub",
    }
    assert "Service accounts" in str(exc_info.value)
    with pytest.raises(ServiceAccountMissingError) as sa_info:
        google_sa_credentials_json(user=alice)
    assert sa_info.value.missing == ["google.sa"]


def test_another_users_key_is_not_used(alice, bob, endpoint):
    upload_gcp(bob, endpoint)
    with pytest.raises(ServiceAccountMissingError):
        gcp_credentials(user=alice)
    assert endpoint.requests == 0


@override_settings(INTEGRATIONS_HTTP_TIMEOUT=(1.0, 0.3))
def test_timeout_is_provider_unavailable(alice, endpoint):
    """Our read timeout applies (google-auth's own default would wait 120 s)."""
    upload_gcp(alice, endpoint)
    endpoint.script = [("sleep", 1.0)]
    with pytest.raises(ProviderUnavailableError) as exc_info:
        gcp_credentials(user=alice)
    assert exc_info.value.code == "timeout"
    assert endpoint.requests == 1


def test_connection_refused_is_provider_unavailable(alice, endpoint):
    upload_gcp(alice, endpoint)
    ServiceAccountKey.objects.all().delete()
    service_account_key_set(
        user=alice,
        purpose="gcp",
        key_text=key_json(token_uri="http://127.0.0.1:9/token"),
        project_number="1",
    )
    with pytest.raises(ProviderUnavailableError) as exc_info:
        gcp_credentials(user=alice)
    assert exc_info.value.code == "connection_error"


def test_502_is_provider_unavailable_at_once(alice, endpoint):
    upload_gcp(alice, endpoint)
    endpoint.script = [(502, {"error": "bad gateway"})]
    with pytest.raises(ProviderUnavailableError) as exc_info:
        gcp_credentials(user=alice)
    assert exc_info.value.code == "http_502"
    assert endpoint.requests == 1


def test_503_is_retried_by_google_auth_then_provider_unavailable(alice, endpoint):
    """google-auth retries 500/503/504/408/429 itself, three attempts in all with
    backoff (about 3 s), then gives up; a later call tries again."""
    upload_gcp(alice, endpoint)
    endpoint.script = [(503, {"error": "backend_error"})] * 3
    with pytest.raises(ProviderUnavailableError) as exc_info:
        gcp_credentials(user=alice)
    assert exc_info.value.code == "http_503"
    assert endpoint.requests == 3
    assert gcp_credentials(user=alice).access_token == endpoint.issued[0]


def test_an_answer_without_a_token_is_an_error(alice, endpoint):
    upload_gcp(alice, endpoint)
    endpoint.script = [(200, {"token_type": "Bearer"})]
    with pytest.raises(IntegrationError) as exc_info:
        gcp_credentials(user=alice)
    assert type(exc_info.value) is IntegrationError
    assert exc_info.value.code == "http_200"


def test_no_token_key_or_assertion_in_logs_cache_db_or_errors(alice, endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="google")
    upload_gcp(alice, endpoint)
    creds = gcp_credentials(user=alice)
    endpoint_other = rsa_key("not-the-registered-one")
    ServiceAccountKey.objects.all().delete()
    service_account_key_set(
        user=alice,
        purpose="gcp",
        key_text=key_json(token_uri=endpoint.url, key=endpoint_other),
        project_number="1",
    )
    with pytest.raises(ReauthorizationRequiredError) as exc_info:
        gcp_credentials(user=alice)

    secrets = [
        creds.access_token,
        pem_body_fragment(rsa_key()),
        pem_body_fragment(endpoint_other),
        *endpoint.assertions,
    ]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    assert "minted a GCP access token" in logged
    cached = b"".join(cache._cache.values())  # type: ignore[attr-defined]
    assert cached  # the token is in the cache, encrypted
    dump = dump_every_table()
    for secret in secrets:
        assert secret not in logged
        assert secret.encode() not in cached
        assert secret not in dump
        assert secret not in str(exc_info.value)
        assert secret not in repr(exc_info.value)
    # The cache entry decrypts to the token (so the check above is not vacuous).
    entry = pickle.loads(next(iter(cache._cache.values())))  # type: ignore[attr-defined]
    assert set(entry) == {"token", "expires_at"}


def test_google_sa_credentials_json_is_the_uploaded_file(alice, bob):
    text = key_json()
    service_account_key_set(user=alice, purpose="google_sa", key_text=text.encode())
    assert google_sa_credentials_json(user=alice) == text
    assert json.loads(google_sa_credentials_json(user=alice))["type"] == "service_account"
    with pytest.raises(ServiceAccountMissingError):
        google_sa_credentials_json(user=bob)
    # A google_sa key is not a GCP project.
    with pytest.raises(ServiceAccountMissingError):
        gcp_credentials(user=alice)


def test_the_assertion_goes_to_googles_endpoint_whatever_the_key_names():
    # A stored key cannot aim the server's POST anywhere (SSRF): only loopback http is
    # let through, and only where the setting allows it (tests).
    from integrations.core.service_account_keys import GOOGLE_TOKEN_URI, mint_token_uri

    for named in ("https://metadata.internal/token", "http://10.0.0.1/t", "", "::bad"):
        assert mint_token_uri(named, allow_loopback_http=True) == GOOGLE_TOKEN_URI
    local = "http://127.0.0.1:8123/token"
    assert mint_token_uri(local, allow_loopback_http=True) == local
    assert mint_token_uri(local, allow_loopback_http=False) == GOOGLE_TOKEN_URI


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_client", "unauthorized_client"])
def test_a_refused_key_is_recorded_and_never_sent_again(
    alice, endpoint, client, admin_client, code
):
    key = upload_gcp(alice, endpoint)
    endpoint.script = [(400 if code == "invalid_grant" else 401, {"error": code})]
    with pytest.raises(ReauthorizationRequiredError):
        gcp_credentials(user=alice)
    key.refresh_from_db()
    assert key.refused_at is not None and key.refused_code == code
    with pytest.raises(ReauthorizationRequiredError):
        gcp_credentials(user=alice)
    assert endpoint.requests == 1  # not sent to Google again
    client.force_login(alice)
    page = client.get(reverse("integrations:service_accounts")).content.decode()
    assert "Google refused this key" in page
    # Staff find the refused keys in the admin.
    listing = admin_client.get(
        reverse("admin:integrations_serviceaccountkey_changelist") + "?refused_at__isempty=0"
    ).content.decode()
    assert key.client_email in listing and code in listing
    # Uploading a key again (here the same one, re-enabled at Google) starts over.
    upload_gcp(alice, endpoint)
    assert gcp_credentials(user=alice).access_token
