"""The clients' shared protocol, without I/O: Retry-After in both forms, the retry
bounds, and the error table for answers the live tests cannot provoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from integrations_hub_client import (
    HubError,
    NeedsReconnectError,
    NotAuthorizedYetError,
    RateLimitedError,
    errors,
)
from integrations_hub_client import _protocol as protocol

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("Sun, 01 Mar 2026 12:00:10 -0000", 10.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value, seconds):
    assert protocol.parse_retry_after(value, now=NOW) == seconds


def run(operation, answers, policy):
    """Drive ``exchange`` with canned answers; return (result or error, sleeps, sent)."""
    steps = protocol.exchange(operation, policy)
    sleeps: list[float] = []
    sent = 0
    step = next(steps)
    try:
        while True:
            if isinstance(step, protocol.Sleep):
                sleeps.append(step.seconds)
                step = steps.send(None)
            else:
                sent += 1
                step = steps.send(answers[sent - 1])
    except StopIteration as done:
        return done.value, sleeps, sent
    except HubError as error:
        return error, sleeps, sent


def answer(status, body=b"{}", **headers):
    return protocol.Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


CONN = (
    b'{"connection": {"id": 3, "user": {"id": 1, "email": "a@x"}, "provider": "google", '
    b'"account": {"email": "a@x", "subject": "1"}, "capabilities": [], "status": "active", '
    b'"error_code": null, "expires_at": "2026-03-01T13:00:00Z", "connected_at": null, '
    b'"last_used_at": null, "last_refreshed_at": null, "is_default": true}, "refreshed": true}'
)


def test_a_rate_limited_refresh_waits_for_its_retry_after():
    policy = protocol.RetryPolicy(clock=lambda: NOW)
    later = (NOW + timedelta(seconds=20)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    result, sleeps, sent = run(
        protocol.refresh_connection(3),
        [answer(429, retry_after=later), answer(200, CONN)],
        policy,
    )
    assert sleeps == [20.0] and sent == 2
    assert result.refreshed and result.connection.expires_at == NOW + timedelta(hours=1)


def test_a_429_elsewhere_is_not_retried():
    error, sleeps, sent = run(
        protocol.get_connection(3), [answer(429, retry_after="1")], protocol.RetryPolicy()
    )
    assert isinstance(error, RateLimitedError) and error.retry_after == 1.0
    assert sleeps == [] and sent == 1


def test_without_retry_after_the_backoff_doubles_within_the_bounds():
    down = answer(503)
    op = protocol.run_environment(user=1, app="a/b")
    error, sleeps, sent = run(op, [down] * 4, protocol.RetryPolicy(max_retries=3, backoff=0.5))
    assert sleeps == [0.5, 1.0, 2.0] and sent == 4
    assert isinstance(error, errors.ProviderUnavailableError)
    # The total wait is bounded too: the third sleep would pass 2 s.
    error, sleeps, sent = run(op, [down] * 4, protocol.RetryPolicy(max_retries=3, max_wait=2.0))
    assert sleeps == [0.5, 1.0] and sent == 3


@pytest.mark.parametrize(
    "status,body,cls,code",
    [
        (
            409,
            {"error": "needs_reconnect", "detail": "connect again"},
            NeedsReconnectError,
            "needs_reconnect",
        ),
        (
            502,
            {"error": "provider_error", "detail": "invalid_grant"},
            NeedsReconnectError,
            "provider_error",
        ),
        (502, {"error": "provider_error", "detail": "invalid_scope"}, HubError, "provider_error"),
        (
            409,
            {"error": "not_ready", "missing": [], "actions": []},
            NotAuthorizedYetError,
            "not_ready",
        ),
        (
            403,
            {"error": "scope_missing", "detail": "connections:write"},
            errors.PermissionDeniedError,
            "scope_missing",
        ),
        (401, {"detail": "Invalid token."}, errors.AuthenticationError, "not_authenticated"),
        (503, {}, errors.ProviderUnavailableError, "provider_unavailable"),
        (500, {"detail": "Server error."}, HubError, "http_500"),
    ],
)
def test_each_answer_has_its_error(status, body, cls, code):
    error = protocol.error_for(status, {}, body, now=NOW)
    assert type(error) is cls and (error.status, error.code) == (status, code)


def test_a_body_that_is_not_json_is_still_an_error_with_its_status():
    with pytest.raises(HubError) as bad:
        protocol.outcome(
            protocol.get_connection(1), answer(502, b"<html>Bad gateway</html>"), now=NOW
        )
    assert (bad.value.status, bad.value.code) == (502, "http_502")


def test_a_connection_id_is_an_int():
    with pytest.raises(TypeError):
        protocol.get_connection("3/../../run-environments")  # type: ignore[arg-type]
