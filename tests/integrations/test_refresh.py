"""Refresh on demand and by the sweep, failures classified, attempts bounded. The
provider is faked at the HTTP edge (`responses`); the clock is passed in."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.core import mail
from django.urls import reverse

from integrations.connections.credentials import connection_credentials
from integrations.connections.refresh import connection_refresh_if_due, connections_due_claim
from integrations.connections.store import (
    connection_access_token,
    connection_refresh_token,
    store_tokens,
)
from integrations.core.refresh_policy import BACKOFF_BASE, backoff_delay, next_refresh_at
from integrations.core.tokens import TokenSet
from integrations.errors import ProviderUnavailableError, ReauthorizationRequiredError
from integrations.models import AuditEvent, Connection, ProviderHealth
from integrations.providers import registry

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_connection(
    user, *, expires_at: datetime, refresh: str | None = "1//rt-0", uid: str = "sub-1"
) -> Connection:
    """A connection as the callback leaves it, last used at T0."""
    conn = Connection(
        user=user,
        provider="google",
        account_uid=uid,
        account_email="alice@gmail.example",
        scopes=["openid", "email", "https://www.googleapis.com/auth/spreadsheets.readonly"],
        last_used_at=T0,
        last_refreshed_at=expires_at - timedelta(hours=1),
    )
    store_tokens(
        conn,
        TokenSet(
            access_token="ya29.old", refresh_token=refresh, expires_at=expires_at, scopes=None
        ),
    )
    conn.next_refresh_at = next_refresh_at(
        connection=conn, config=registry.provider_config("google"), now=T0
    )
    conn.save()
    return conn


class TokenEndpoint:
    """Google's token endpoint, scripted: a list of (status, body) or exceptions."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.calls: list[dict[str, str]] = []
        self.script: list[object] = []
        self.default: object = (200, {"access_token": "ya29.new", "expires_in": 3599})
        rsps.add_callback(
            responses.POST, registry.provider_config("google").token_url, callback=self._answer
        )

    def _answer(self, request):
        self.calls.append({k: v[0] for k, v in parse_qs(request.body).items()})
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, tuple)
        status, body = answer
        return (status, {"Content-Type": "application/json"}, json.dumps(body))


@pytest.fixture
def endpoint():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TokenEndpoint(rsps)


def test_fresh_token_is_served_without_a_request(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(hours=1))
    creds = connection_credentials(connection=conn, now=T0)
    assert creds.access_token == "ya29.old"
    assert endpoint.calls == []
    assert "ya29" not in repr(creds)


def test_token_inside_the_margin_is_refreshed(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=5))
    creds = connection_credentials(connection=conn, now=T0)

    assert creds.access_token == "ya29.new"
    assert creds.expires_at == T0 + timedelta(seconds=3599)
    (call,) = endpoint.calls
    assert call["grant_type"] == "refresh_token" and call["refresh_token"] == "1//rt-0"
    assert call["client_id"] == registry.provider_config("google").client_id
    conn.refresh_from_db()
    assert connection_access_token(connection=conn) == "ya29.new"
    # No refresh token in the response: the stored one is kept.
    assert connection_refresh_token(connection=conn) == "1//rt-0"
    assert conn.status == "active" and conn.last_refreshed_at == T0
    # In use: the sweep will refresh it ahead of expiry (margin 10 min + lead 5 min).
    assert conn.next_refresh_at == T0 + timedelta(seconds=3599 - 900)
    assert AuditEvent.objects.filter(kind="refresh_succeeded", connection_id=conn.pk).count() == 1


def test_per_call_margin(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=5))
    assert connection_credentials(connection=conn, margin=60, now=T0).access_token == "ya29.old"
    assert endpoint.calls == []


def test_rotated_refresh_token_is_stored_with_the_access_token(alice, endpoint):
    endpoint.default = (
        200,
        {"access_token": "ya29.new", "refresh_token": "1//rt-1", "expires_in": 60},
    )
    conn = make_connection(alice, expires_at=T0 - timedelta(minutes=1))
    connection_credentials(connection=conn, now=T0)
    conn.refresh_from_db()
    assert connection_refresh_token(connection=conn) == "1//rt-1"
    assert connection_access_token(connection=conn) == "ya29.new"


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_rapt", "admin_policy_enforced"])
def test_dead_grant_needs_reconnect_once_and_is_never_retried(
    alice, endpoint, code, django_capture_on_commit_callbacks
):
    endpoint.default = (
        400,
        {"error": code, "error_description": "Token has been expired or revoked."},
    )
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=2))

    # The email task is enqueued once the dead grant is committed (and runs eagerly).
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ReauthorizationRequiredError),
    ):
        connection_credentials(connection=conn, now=T0)

    conn.refresh_from_db()
    assert conn.status == "needs_reconnect" and conn.last_error_code == code
    assert conn.next_refresh_at is None
    assert conn.reconnect_notified_at is not None  # delivered
    assert len(endpoint.calls) == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "Reconnect" in mail.outbox[0].subject
    assert "/settings/secrets/integrations/" in mail.outbox[0].body

    # A simulated day of sweeps, one a minute, and on-demand asks: no provider call.
    for minute in range(1, 24 * 60 + 1):
        now = T0 + timedelta(minutes=minute)
        assert connections_due_claim(now=now) == []
        if minute % 60 == 0:
            with (
                django_capture_on_commit_callbacks(execute=True),
                pytest.raises(ReauthorizationRequiredError),
            ):
                connection_credentials(connection=Connection.objects.get(pk=conn.pk), now=now)
    assert len(endpoint.calls) == 1
    assert len(mail.outbox) == 1
    kinds = list(AuditEvent.objects.filter(connection_id=conn.pk).values_list("kind", flat=True))
    assert kinds.count("refresh_failed") == 1 and kinds.count("status_changed") == 1


def test_banner_and_reconnect_restore_active(alice_client, alice, endpoint):
    from .fakes import FakeGoogle
    from .test_flows import finish

    endpoint.default = (400, {"error": "invalid_grant"})
    conn = make_connection(alice, expires_at=T0)
    conn.account_uid = "google-sub-alice"
    conn.save(update_fields=["account_uid"])
    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=conn, now=T0)

    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "needs reconnecting" in page
    assert f'action="/settings/secrets/integrations/connections/{conn.pk}/reconnect/"' in page

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        google = FakeGoogle(rsps)
        resp = alice_client.post(reverse("integrations:reconnect", kwargs={"id": conn.pk}))
        assert resp.status_code == 302
        from urllib.parse import urlsplit

        params = {k: v[0] for k, v in parse_qs(urlsplit(resp["Location"]).query).items()}
        assert params["prompt"] == "consent"
        assert "https://www.googleapis.com/auth/spreadsheets.readonly" in params["scope"]
        finish(alice_client, google, params)

    conn.refresh_from_db()
    assert conn.status == "active"
    assert conn.reconnect_notified_at is None and conn.last_error_code == ""
    assert conn.next_refresh_at is not None
    assert AuditEvent.objects.filter(
        kind="status_changed", connection_id=conn.pk, detail__to="active"
    ).exists()
    assert (
        "needs reconnecting" not in alice_client.get(reverse("integrations:page")).content.decode()
    )


def test_reconnect_is_post_only_and_owned(alice_client, bob, client):
    conn = make_connection(bob, expires_at=T0)
    assert (
        alice_client.post(reverse("integrations:reconnect", kwargs={"id": conn.pk})).status_code
        == 404
    )
    assert (
        alice_client.get(reverse("integrations:reconnect", kwargs={"id": conn.pk})).status_code
        == 405
    )


@pytest.mark.parametrize(
    "failure,code",
    [
        ((503, {"error": "backend_error"}), "http_503"),
        ((500, {}), "http_500"),
        ((429, {"error": "rate_limit_exceeded"}), "http_429"),
        (requests.ReadTimeout("read timed out"), "timeout"),
        (requests.ConnectionError("refused"), "connection_error"),
    ],
)
def test_transient_failures_back_off_bounded_and_serve_the_current_token(
    alice, endpoint, failure, code
):
    endpoint.default = failure
    expires = T0 + timedelta(minutes=14)  # due now: inside margin + lead
    conn = make_connection(alice, expires_at=expires)

    attempts: list[datetime] = []

    def attempted(now: datetime, before: int) -> None:
        if len(endpoint.calls) > before:
            attempts.append(now)

    for minute in range(0, 24 * 60):
        now = T0 + timedelta(minutes=minute)
        for cid in connections_due_claim(now=now):
            before = len(endpoint.calls)
            assert connection_refresh_if_due(connection_id=cid, now=now) == code
            attempted(now, before)
        if minute % 7 == 0:
            fresh = Connection.objects.get(pk=conn.pk)
            before = len(endpoint.calls)
            if now < expires:
                # Still valid, if inside the margin: served.
                assert connection_credentials(connection=fresh, now=now).access_token == "ya29.old"
            else:
                with pytest.raises(ProviderUnavailableError):
                    connection_credentials(connection=fresh, now=now)
            attempted(now, before)

    conn.refresh_from_db()
    assert conn.status == "refresh_failing" and conn.last_error_code == code
    # Bounded: at most 10 attempts per connection per day, sweeps and on-demand together.
    assert len(endpoint.calls) <= 10
    assert len(attempts) >= 5
    # Exponential: each wait at least half the nominal backoff, at most the full one
    # (plus the sweep's one-minute grain).
    for n, (a, b) in enumerate(itertools.pairwise(attempts), start=1):
        nominal = min(BACKOFF_BASE * 2 ** (n - 1), timedelta(hours=4))
        assert nominal / 2 - timedelta(minutes=1) <= b - a <= nominal + timedelta(minutes=1)
    assert len(mail.outbox) == 0

    # Recovery.
    endpoint.default = (200, {"access_token": "ya29.new", "expires_in": 3599})
    assert conn.backoff_until is not None
    later = conn.backoff_until + timedelta(seconds=1)
    assert connection_credentials(connection=conn, now=later).access_token == "ya29.new"
    conn.refresh_from_db()
    assert conn.status == "active" and conn.refresh_failures == 0 and conn.backoff_until is None
    assert AuditEvent.objects.filter(
        kind="status_changed", connection_id=conn.pk, detail__to="active"
    ).exists()
    failed = AuditEvent.objects.filter(kind="refresh_failed", connection_id=conn.pk)
    assert failed.count() == len(endpoint.calls) - 1
    assert set(failed.values_list("error_code", flat=True)) == {code}


def test_backoff_delay_has_jitter_and_a_cap():
    import random

    rng = random.Random(7)
    delays = {backoff_delay(3, rng=rng) for _ in range(20)}
    assert len(delays) > 1
    assert all(timedelta(seconds=60) <= d <= timedelta(seconds=120) for d in delays)
    assert backoff_delay(40) <= timedelta(hours=4)


def test_backoff_delay_survives_any_failure_count():
    # 2**n of a large n would overflow timedelta: the exponent is clamped first.
    for failures in (0, 1, 17, 64, 10_000, 2**31):
        assert timedelta(0) < backoff_delay(failures) <= timedelta(hours=4)


def test_successful_refreshes_do_not_use_up_the_daily_attempts(alice, endpoint):
    # Hourly tokens refreshed by the sweep all day long: 24 refreshes, all of them made.
    endpoint.default = (200, {"access_token": "ya29.new", "expires_in": 3600})
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=14))
    made = 0
    for minute in range(0, 24 * 60):
        now = T0 + timedelta(minutes=minute)
        Connection.objects.filter(pk=conn.pk).update(last_used_at=now)  # in use
        for cid in connections_due_claim(now=now):
            assert connection_refresh_if_due(connection_id=cid, now=now) == "ok"
            made += 1
    conn.refresh_from_db()
    assert made == len(endpoint.calls) >= 24
    assert conn.status == "active" and conn.attempts_in_window == 0
    assert conn.expires_at is not None and conn.expires_at > T0 + timedelta(hours=24)


def test_other_client_errors_are_retried_slowly_not_in_a_tight_loop(alice, endpoint):
    # An error that is neither a dead grant, nor our client, nor transient: waiting a
    # few seconds will not fix it, so it waits the longest backoff.
    endpoint.default = (400, {"error": "invalid_scope"})
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1))
    assert connection_credentials(connection=conn, now=T0).access_token == "ya29.old"
    conn.refresh_from_db()
    assert conn.status == "refresh_failing" and conn.last_error_code == "invalid_scope"
    assert conn.backoff_until == T0 + timedelta(hours=4)
    assert len(mail.outbox) == 0


@pytest.mark.parametrize("code", ["invalid_client", "unauthorized_client"])
def test_client_problems_go_to_staff_not_users(alice, endpoint, admin_client, code):
    endpoint.default = (401, {"error": code})
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1))
    # Served while valid; no email; the provider is marked for staff.
    assert connection_credentials(connection=conn, now=T0).access_token == "ya29.old"
    conn.refresh_from_db()
    assert conn.status == "active" and conn.last_error_code == code
    assert len(mail.outbox) == 0
    health = ProviderHealth.objects.get(provider="google")
    assert not health.ok and health.error_code == code
    html = admin_client.get(
        reverse("admin:integrations_providerhealth_changelist")
    ).content.decode()
    assert code in html


def test_sweep_claims_due_connections_soonest_first_and_leases_them(alice, endpoint):
    due = [
        make_connection(alice, expires_at=T0 + timedelta(minutes=m), uid=f"sub-{m}")
        for m in (9, 3, 6)
    ]
    make_connection(alice, expires_at=T0 + timedelta(hours=2), uid="sub-later")

    claimed = connections_due_claim(now=T0)
    assert claimed == [due[1].pk, due[2].pk, due[0].pk]
    # Leased: the next sweep a minute later does not enqueue them again.
    assert connections_due_claim(now=T0 + timedelta(minutes=1)) == []
    for cid in claimed:
        assert connection_refresh_if_due(connection_id=cid, now=T0) == "ok"
    assert len(endpoint.calls) == 3


def test_refresh_if_due_skips_what_another_holder_refreshed(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=3))
    (cid,) = connections_due_claim(now=T0)
    connection_credentials(connection=conn, now=T0)  # on demand, meanwhile
    assert connection_refresh_if_due(connection_id=cid, now=T0) == "ok"
    assert len(endpoint.calls) == 1
    conn.refresh_from_db()
    assert conn.next_refresh_at == T0 + timedelta(seconds=3599 - 900)


def test_tokens_that_live_shorter_than_the_margin(alice, endpoint):
    """A provider issuing 300 s tokens, the default 600 s margin: the margin adapts to
    half the lifetime the provider issued (150 s), the sweep's lead to half the rest
    (75 s). Otherwise every token is due the moment it arrives."""
    endpoint.default = (200, {"access_token": "ya29.short", "expires_in": 300})
    conn = make_connection(alice, expires_at=T0 - timedelta(seconds=1))
    config = registry.provider_config("google")
    assert config.refresh_margin == 600 and config.sweep_lead == 300

    assert connection_credentials(connection=conn, now=T0).access_token == "ya29.short"
    assert len(endpoint.calls) == 1
    conn.refresh_from_db()
    assert conn.expires_at == T0 + timedelta(seconds=300) and conn.last_refreshed_at == T0
    # Not due at once: the sweep comes back 75 s after the refresh, well before the
    # token enters its 150 s margin.
    assert conn.next_refresh_at == T0 + timedelta(seconds=75)
    assert connections_due_claim(now=T0) == []
    assert connection_refresh_if_due(connection_id=conn.pk, now=T0) == "ok"
    # Asked again and again at once, and inside the provider's margin: one refresh.
    for seconds in (0, 0, 1, 60, 149):
        now = T0 + timedelta(seconds=seconds)
        fresh = Connection.objects.get(pk=conn.pk)
        assert connection_credentials(connection=fresh, now=now).access_token == "ya29.short"
    assert len(endpoint.calls) == 1
    # The sweep's turn: due at 75 s, refreshed, due again 75 s after that.
    (cid,) = connections_due_claim(now=T0 + timedelta(seconds=90))
    assert connection_refresh_if_due(connection_id=cid, now=T0 + timedelta(seconds=90)) == "ok"
    assert len(endpoint.calls) == 2
    conn.refresh_from_db()
    assert conn.next_refresh_at == T0 + timedelta(seconds=90 + 75)
    # Past the adapted margin (150 s left), a run refreshes on demand.
    later = T0 + timedelta(seconds=90 + 151)
    assert connection_credentials(connection=conn, now=later).access_token == "ya29.short"
    assert len(endpoint.calls) == 3


@pytest.mark.parametrize(
    "lifetime,margin,lead",
    [
        (3600, 600, 300),  # an hour: the provider's margin and lead, as before
        (1200, 600, 300),  # margin + 2 x lead: still the provider's
        (900, 450, 225),
        (300, 150, 75),
        (60, 30, 15),
        (None, 600, 300),  # lifetime unknown (never refreshed): the provider's
    ],
)
def test_the_margin_and_the_sweep_lead_adapt_to_the_token_lifetime(lifetime, margin, lead):
    from types import SimpleNamespace

    from integrations.core.refresh_policy import refresh_margin, sweep_lead

    config = registry.provider_config("google")
    conn = SimpleNamespace(
        expires_at=T0 + timedelta(seconds=lifetime or 3600),
        last_refreshed_at=T0 if lifetime else None,
        last_used_at=T0,
        refresh_token_encrypted=b"x",
        status="active",
        backoff_until=None,
        created_at=T0,
    )
    got = refresh_margin(connection=conn, config=config)
    assert got == timedelta(seconds=margin)
    assert sweep_lead(connection=conn, config=config, margin=got) == timedelta(seconds=lead)
    due = next_refresh_at(connection=conn, config=config, now=T0)
    assert due == conn.expires_at - timedelta(seconds=margin + lead)
    assert due > T0  # a token just issued is never due at once


def test_idle_connection_gets_a_keepalive_not_hourly_refreshes(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(hours=1))
    Connection.objects.filter(pk=conn.pk).update(last_used_at=T0 - timedelta(days=3))
    conn.refresh_from_db()
    config = registry.provider_config("google")
    due = next_refresh_at(connection=conn, config=config, now=T0)
    assert conn.last_refreshed_at is not None
    assert due == conn.last_refreshed_at + timedelta(seconds=config.keepalive_interval)
    # Used again: back to ahead-of-expiry refreshes.
    connection_credentials(connection=conn, now=T0)
    conn.refresh_from_db()
    assert conn.last_used_at == T0
    assert conn.next_refresh_at == T0 + timedelta(hours=1) - timedelta(seconds=900)


def test_no_refresh_token_means_reconnect_when_expired(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 - timedelta(seconds=1), refresh=None)
    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=conn, now=T0)
    assert endpoint.calls == []


def test_sweep_parks_a_connection_whose_provider_was_deleted(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1))
    Connection.objects.filter(pk=conn.pk).update(provider="gone")
    assert connection_refresh_if_due(connection_id=conn.pk, now=T0) == "unknown_provider"
    conn.refresh_from_db()
    assert conn.next_refresh_at is None  # not claimed by every sweep
    assert endpoint.calls == []


def test_sweep_backs_off_on_a_refresh_token_no_key_decrypts(alice, endpoint, settings):
    from cryptography.fernet import Fernet

    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1))
    settings.INTEGRATIONS_TOKEN_KEYS = [Fernet.generate_key().decode()]
    assert connection_refresh_if_due(connection_id=conn.pk, now=T0) == "undecryptable"
    conn.refresh_from_db()
    assert conn.next_refresh_at == T0 + timedelta(hours=4)
    assert conn.status == "active"  # not the user's to fix: no email, no banner
    assert endpoint.calls == [] and len(mail.outbox) == 0


def test_a_dead_grant_leased_by_the_sweep_goes_off_the_sweep(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1))
    Connection.objects.filter(pk=conn.pk).update(
        status="needs_reconnect", next_refresh_at=T0 + timedelta(minutes=5)
    )
    assert connection_refresh_if_due(connection_id=conn.pk, now=T0) == "invalid_grant"
    conn.refresh_from_db()
    assert conn.next_refresh_at is None and endpoint.calls == []


def test_recording_a_use_does_not_put_a_dead_grant_back_on_the_sweep(alice, endpoint):
    conn = make_connection(alice, expires_at=T0 + timedelta(hours=1))
    stale = Connection.objects.get(pk=conn.pk)  # read while still active
    Connection.objects.filter(pk=conn.pk).update(status="needs_reconnect", next_refresh_at=None)
    later = T0 + timedelta(hours=2)
    stale.expires_at = later + timedelta(hours=1)  # fresh as far as this copy knows
    connection_credentials(connection=stale, now=later)
    conn.refresh_from_db()
    assert conn.last_used_at == later
    assert conn.next_refresh_at is None


def test_a_provider_may_have_its_own_margin_and_keepalive(alice, endpoint, settings):
    settings.INTEGRATIONS_REFRESH_MARGIN_SECONDS = {"default": 600, "google": 1800}
    settings.INTEGRATIONS_KEEPALIVE_SECONDS = {"default": 7 * 86400, "google": 86400}
    # 20 minutes left: fresh for the default margin, not for Google's 30 minutes.
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=20))
    assert connection_credentials(connection=conn, now=T0).access_token == "ya29.new"
    # Idle: the keep-alive is Google's day, not the default week.
    conn.refresh_from_db()
    idle_since = T0 - timedelta(days=2)
    Connection.objects.filter(pk=conn.pk).update(last_used_at=idle_since)
    conn.refresh_from_db()
    config = registry.provider_config("google")
    assert config.keepalive_interval == 86400
    due = next_refresh_at(connection=conn, config=config, now=T0 + timedelta(hours=2))
    assert due == T0 + timedelta(days=1)


def test_per_provider_overrides_come_from_the_environment():
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "INTEGRATIONS_REFRESH_MARGIN_SECONDS": "700",
        "INTEGRATIONS_REFRESH_MARGIN_OVERRIDES": "x=1200,slack=900",
        "INTEGRATIONS_KEEPALIVE_OVERRIDES": "notion=86400",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.INTEGRATIONS_REFRESH_MARGIN_SECONDS, "
        "s.INTEGRATIONS_KEEPALIVE_SECONDS]))"
    )
    from django.conf import settings

    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(settings.BASE_DIR)},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    margins, keepalives = json.loads(out.strip().splitlines()[-1])
    assert margins == {"default": 700, "x": 1200, "slack": 900}
    assert keepalives == {"default": 7 * 86400, "notion": 86400}


class Userinfo:
    """The provider's userinfo endpoint: 200 while the token is good, 401 once revoked."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.status = 200
        self.tokens: list[str] = []
        rsps.add_callback(
            responses.GET,
            registry.provider_config("google").userinfo_url,
            callback=self._answer,
        )

    def _answer(self, request):
        self.tokens.append(request.headers["Authorization"].removeprefix("Bearer "))
        return (self.status, {"Content-Type": "application/json"}, json.dumps({"sub": "sub-1"}))


@pytest.fixture
def verifying(settings):
    settings.INTEGRATIONS_VERIFY_SECONDS = 300
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TokenEndpoint(rsps), Userinfo(rsps)


def test_a_run_finds_a_grant_revoked_at_the_provider_before_its_token_expires(alice, verifying):
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=50))  # refreshed T0-10m
    # Shown good 10 minutes ago: asked again before a run gets it.
    assert connection_credentials(connection=conn, now=T0, verify=True).access_token == "ya29.old"
    assert userinfo.tokens == ["ya29.old"] and endpoint.calls == []
    conn.refresh_from_db()
    assert conn.last_verified_at == T0
    # Within the interval: not asked again.
    later = T0 + timedelta(minutes=4)
    connection_credentials(connection=conn, now=later, verify=True)
    assert len(userinfo.tokens) == 1

    # Revoked at the provider: the token is refused, the refresh meets invalid_grant.
    userinfo.status = 401
    endpoint.default = (400, {"error": "invalid_grant"})
    conn.refresh_from_db()
    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=conn, now=T0 + timedelta(minutes=6), verify=True)
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect" and len(endpoint.calls) == 1
    assert len(userinfo.tokens) == 2  # one question for that run


def test_a_refused_access_token_of_a_live_grant_is_replaced(alice, verifying):
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=50))
    userinfo.status = 401  # only the access token was revoked; the grant lives
    creds = connection_credentials(connection=conn, now=T0, verify=True)
    assert creds.access_token == "ya29.new" and len(endpoint.calls) == 1


def test_an_unreachable_userinfo_endpoint_does_not_withhold_the_token(alice, verifying):
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=50))
    userinfo.status = 503
    assert connection_credentials(connection=conn, now=T0, verify=True).access_token == "ya29.old"
    assert endpoint.calls == []
    # An outage does not cost every run a question: the next one waits an interval.
    conn.refresh_from_db()
    connection_credentials(connection=conn, now=T0 + timedelta(minutes=1), verify=True)
    assert len(userinfo.tokens) == 1


def test_a_refused_token_that_never_expires_means_reconnect(alice, verifying):
    # GitHub's OAuth-app tokens: no expiry, no refresh token. Refused: not served again.
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0, refresh=None)
    Connection.objects.filter(pk=conn.pk).update(expires_at=None)
    conn.refresh_from_db()
    userinfo.status = 401
    with pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=conn, now=T0, verify=True)
    conn.refresh_from_db()
    assert (conn.status, conn.last_error_code) == ("needs_reconnect", "token_rejected")
    assert endpoint.calls == []


def test_runs_asking_at_once_make_one_check_and_one_refresh(alice, verifying):
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=50))
    stale = Connection.objects.get(pk=conn.pk)  # a second run read the row meanwhile
    userinfo.status = 401
    assert connection_credentials(connection=conn, now=T0, verify=True).access_token == "ya29.new"
    # The second run, a second later by its own clock: the check is taken; no second
    # question, no second refresh (a rotating provider would rotate again).
    connection_credentials(connection=stale, now=T0 + timedelta(seconds=1), verify=True)
    assert len(userinfo.tokens) == 1 and len(endpoint.calls) == 1


def test_a_refused_token_is_not_served_when_its_refresh_fails(alice, verifying):
    endpoint, userinfo = verifying
    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=50))
    userinfo.status = 401
    endpoint.default = (503, {"error": "backend_error"})
    with pytest.raises(ProviderUnavailableError):
        connection_credentials(connection=conn, now=T0, verify=True)


@pytest.mark.parametrize(
    "code,status,transient",
    [("ratelimited", "refresh_failing", True), ("invalid_refresh_token", "needs_reconnect", False)],
)
def test_errors_answered_with_http_200_are_classified(alice, endpoint, code, status, transient):
    # Slack answers its errors with 200 and {"ok": false, "error": ...}.
    endpoint.default = (200, {"ok": False, "error": code})
    conn = make_connection(alice, expires_at=T0 - timedelta(minutes=1))
    with pytest.raises(ProviderUnavailableError if transient else ReauthorizationRequiredError):
        connection_credentials(connection=conn, now=T0)
    conn.refresh_from_db()
    assert (conn.status, conn.last_error_code) == (status, code)
    if transient:
        assert conn.backoff_until is not None and conn.backoff_until < T0 + timedelta(hours=1)
