"""Schemathesis against the OpenAPI schema (``/api/schema/``), in-process over WSGI:
for every operation, generated requests (valid and invalid) with valid credentials,
against a database with real rows, are never answered with a server error, and every
answer is one the schema documents (status code, content type, body).

Each operation gets the credential its security scheme names: the uploader's API
token (``apiToken``) or a runner token (``runnerToken``). Some generated requests are
pointed at real rows (the app ``acme/digest``, a user with a Google connection), so
that the paths past the lookups run too.
"""

from __future__ import annotations

from typing import Any

import pytest
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

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.hook
def flatmap_path_parameters(context: HookContext, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, the app (or the webhook endpoint) that exists."""
    if path_parameters and set(path_parameters) == {"id"}:
        ids = list(WebhookEndpoint.objects.values_list("id", flat=True)[:1])
        return st.sampled_from([path_parameters, *({"id": i} for i in ids)])
    if not path_parameters or set(path_parameters) != {"namespace", "name"}:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {"namespace": "acme", "name": "digest"}])


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
    }


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


def _scheme_of(case: schemathesis.Case) -> str:
    """The one security scheme the operation names (the webhook endpoints': a staff
    member's API token, or every answer would be 403)."""
    (requirement,) = case.operation.definition.raw["security"]
    (scheme,) = requirement
    if case.operation.path.startswith("/api/v1/webhook-endpoints/"):
        return "staffApiToken"
    return str(scheme)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_never_answers_500(
    case: schemathesis.Case, tokens: dict[str, str], keep_test_transaction: None
) -> None:
    case.headers["Authorization"] = f"Bearer {tokens[_scheme_of(case)]}"
    case.call_and_validate(checks=CHECKS)
