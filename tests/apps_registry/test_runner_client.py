"""The runners' client (``apps_registry.runner_client``) against a real server: each
answer of the run-environment API becomes the documented result or error."""

from __future__ import annotations

import pytest

from apps_registry import services
from apps_registry.runner_client import (
    HubClient,
    NotAuthorizedYetError,
    NotFoundError,
    RunnerAuthenticationError,
)
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db(transaction=True)

V1 = "namespace: acme\nname: sheet\nintegrations:\n  - key: google.sheets.readonly\n"
V2 = V1 + "  - key: google.gmail.send\n"


@pytest.fixture
def hub(live_server, alice):
    services.manifest_upload(user=alice, text=V1)
    services.manifest_upload(user=alice, text=V2)  # version 2 is current
    token = services.runner_token_create(name="client-test", all_namespaces=True)[1]
    return live_server.url, token


def test_the_client_maps_every_answer(hub, bob):
    url, token = hub
    client = HubClient(url, token=token)
    ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets.readonly"])

    # The current version (2) also needs Gmail: not authorized yet, with what is missing.
    with pytest.raises(NotAuthorizedYetError) as not_yet:
        client.run_environment(user=bob.pk, app="acme/sheet")
    assert not_yet.value.status == 409
    assert [m.key for m in not_yet.value.missing] == ["google.gmail.send"]
    (action,) = not_yet.value.actions
    assert action.kind == "add_permissions" and action.capabilities == ("google.gmail.send",)

    # Version 1, named: ready with the Sheets grant alone, once the app is allowed.
    with pytest.raises(NotAuthorizedYetError) as not_allowed:
        client.run_environment(user=bob.pk, app="acme/sheet", version=1)
    (action,) = not_allowed.value.actions
    assert action.kind == "authorize_app" and action.url.endswith("/apps/acme/sheet/#allow")
    assert action.capabilities == ("google.sheets.readonly",) and action.secrets == ()
    assert [m.reason for m in not_allowed.value.missing] == ["not_allowed"]
    allow_declared(bob, "acme/sheet")
    run = client.run_environment(user=bob.pk, app="acme/sheet", version=1)
    assert set(run.keys) == {
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
        "GOOGLE_OAUTH_CREDENTIALS",
    }
    assert run.expires_at is not None
    assert "ya29" not in repr(run)

    with pytest.raises(NotFoundError) as missing:
        client.run_environment(user=bob.pk, app="acme/sheet", version=3)
    assert missing.value.status == 404
    with pytest.raises(NotFoundError):
        client.run_environment(user="nobody@example.com", app="acme/sheet")

    with pytest.raises(RunnerAuthenticationError) as refused:
        HubClient(url, token="ihub_run_not-a-token").run_environment(user=bob.pk, app="acme/sheet")
    assert refused.value.status == 401
    assert "not-a-token" not in str(refused.value)
