"""Schemathesis against the OpenAPI schema (``/api/schema/``), in-process over WSGI:
for every operation, generated requests (valid and invalid) with valid credentials,
against a database with real rows, are never answered with a server error, and every
answer is one the schema documents (status code, content type, body).

Each operation gets the credential its security scheme names: the uploader's API
token (``apiToken``), a runner token (``runnerToken``) or a platform credential with
both scopes (``platformCredential``); the connections API, which takes a platform
credential or a personal token, is run with each in turn. Some generated requests are
pointed at real rows (the app ``acme/digest``, a user with a Google connection, that
connection's id), so that the paths past the lookups run too. Google's token and
revoke endpoints are faked (``responses``): a forced refresh or a disconnect never
leaves the machine.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps_registry import services
from config.wsgi import application
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.events.endpoints import webhook_endpoint_create
from integrations.models import WebhookEndpoint
from integrations.providers import registry
from integrations.secrets import secret_set
from tests.integrations.factories import ConnectionFactory

from .test_run_env import MANIFEST

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Users a runner may name: Bob is ready to run acme/digest, Alice is not.
USERS = ["bob@example.com", "BOB@example.com", "alice@example.com", "99999999999999999999"]

# Bob's Google connection: an id of its own, far above what the sequence hands out.
BOB_CONNECTION_ID = 7_000_000_001

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.hook
def flatmap_path_parameters(context: HookContext, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, the app, the connection or the webhook endpoint that exists."""
    if path_parameters and set(path_parameters) == {"id"}:
        assert context.operation is not None
        if context.operation.path.startswith("/api/v1/webhook-endpoints/"):
            ids = list(WebhookEndpoint.objects.values_list("id", flat=True)[:1])
            return st.sampled_from([path_parameters, *({"id": i} for i in ids)])
        return st.sampled_from([path_parameters, {"id": BOB_CONNECTION_ID}])
    if not path_parameters or set(path_parameters) != {"namespace", "name"}:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {"namespace": "acme", "name": "digest"}])


@schema.hook
def flatmap_query(context: HookContext, query: dict[str, Any] | None) -> Any:
    """Two times in three, the connections of a user who exists (or of a huge id)."""
    assert context.operation is not None
    if context.operation.path != "/api/v1/connections/":
        return st.just(query)
    real = st.fixed_dictionaries(
        {"user": st.sampled_from(USERS)},
        optional={"provider": st.sampled_from(["google", "x", "nope"])},
    )
    return st.one_of(st.just(query), real, real)


@schema.hook
def flatmap_body(context: HookContext, body: Any) -> Any:
    """Two times in three, a run of the app that exists by a user who exists (ready to run
    it, or not), of its version or another, naming connections or not."""
    assert context.operation is not None
    if context.operation.path != "/api/v1/run-environments/" or not isinstance(body, dict):
        return st.just(body)
    rest = {k: v for k, v in body.items() if k not in ("version", "connections")}
    real = st.fixed_dictionaries(
        {"user": st.sampled_from(USERS), "app": st.just("acme/digest")},
        optional={
            "version": st.integers(1, 2),
            "connections": st.dictionaries(
                st.sampled_from(["google", "x", "nope"]), st.integers(1, 2**63 - 1), max_size=2
            ),
        },
    ).map(lambda run: {**rest, **run})
    return st.one_of(st.just(body), real, real)


@pytest.fixture
def tokens(alice, bob, make_user) -> dict[str, str]:
    """Rows for the requests to find, and a credential per security scheme.

    Alice owns ``acme/digest``; Bob has a Google connection that grants it, with a
    fresh token (no refresh: no call to a provider), and its secret set."""
    services.manifest_upload(user=alice, text=MANIFEST)
    ConnectionFactory.create(
        id=BOB_CONNECTION_ID,
        user=bob,
        is_default=True,
        scopes=["openid", "email", G + "spreadsheets", G + "gmail.send"],
    )
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    staff = make_user("staff@example.com")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    webhook_endpoint_create(url="https://hooks.example.com/in")
    return {
        "staffApiToken": services.api_token_create(user=staff, name="schemathesis")[1],
        "apiToken": services.api_token_create(user=alice, name="schemathesis")[1],
        "runnerToken": services.runner_token_create(name="schemathesis", all_namespaces=True)[1],
        "platformCredential": services.platform_credential_create(
            name="schemathesis", scopes=["connections:read", "connections:write"]
        )[1],
    }


@pytest.fixture
def fake_google():
    """Google's token and revoke endpoints answer as they do for a live grant."""
    config = registry.provider_config("google")
    token = {"access_token": "ya29.schemathesis", "expires_in": 3599}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, config.token_url, json=token)
        rsps.add(responses.POST, config.revoke_url, body="")
        yield


@pytest.fixture
def keep_test_transaction():
    """Requests go to the WSGI application itself, which closes the database connection
    when one ends (``close_old_connections``), and with it the test's transaction:
    not while a test runs, as with Django's test client."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


def _scheme_of(case: schemathesis.Case, prefer: str) -> str:
    """The security scheme the operation names, ``prefer`` among several (the webhook
    endpoints': a staff member's API token, or every answer would be 403)."""
    if case.operation.path.startswith("/api/v1/webhook-endpoints/"):
        return "staffApiToken"
    schemes = [
        str(scheme)
        for requirement in case.operation.definition.raw["security"]
        for scheme in requirement
    ]
    return prefer if prefer in schemes else schemes[0]


@pytest.mark.django_db
@pytest.mark.parametrize("prefer", ["platformCredential", "apiToken"])
@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    # The same examples on every run (drawn from the test's name). Schemathesis 4.32's
    # negative mutation of the Authorization header's schema now and then draws
    # differently when Hypothesis replays a case, and Hypothesis then fails the test
    # with FlakyStrategyDefinition ("Inconsistent data generation", seen in CI on
    # 2026-12-04 for DELETE /api/v1/webhook-endpoints/{id}/): a failure of the
    # generator, not of the API, which a random seed would let strike any run.
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_never_answers_500(
    case: schemathesis.Case,
    prefer: str,
    tokens: dict[str, str],
    fake_google: None,
    keep_test_transaction: None,
) -> None:
    case.headers["Authorization"] = f"Bearer {tokens[_scheme_of(case, prefer)]}"
    case.call_and_validate(checks=CHECKS)
