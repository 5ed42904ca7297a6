"""The sandbox's OAuth client, its management command, its admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from oauth2_provider.models import Application

from integrations.sandbox import tokens
from integrations.sandbox.models import SandboxRevocation, SandboxTokenRequest
from integrations.sandbox.services import sandbox_client_ensure

from .conftest import REDIRECT_URI, SHEETS_RO

pytestmark = pytest.mark.django_db


def test_migrate_leaves_a_working_client():
    # The post_migrate receiver ran when the test database was created.
    app = Application.objects.get(client_id="sandbox-google-client")

    assert REDIRECT_URI in app.redirect_uris.split()
    assert app.client_type == "confidential"
    assert app.authorization_grant_type == "authorization-code"
    assert app.algorithm == "" and not app.skip_authorization
    assert app.client_secret != "sandbox-google-secret"
    assert check_password("sandbox-google-secret", app.client_secret)


def test_ensure_adds_redirect_uris_and_keeps_existing():
    sandbox_client_ensure(redirect_uris=["http://a.test/cb/"])

    app = sandbox_client_ensure(redirect_uris=["http://b.test/cb/", "http://a.test/cb/"])

    uris = app.redirect_uris.split()
    assert uris[-2:] == ["http://a.test/cb/", "http://b.test/cb/"]
    assert REDIRECT_URI in uris
    assert Application.objects.filter(client_id="sandbox-google-client").count() == 1


def test_ensure_restores_a_changed_secret():
    Application.objects.filter(client_id="sandbox-google-client").update(
        client_secret="something-else", skip_authorization=True
    )

    app = sandbox_client_ensure(redirect_uris=[])

    app.refresh_from_db()
    assert check_password("sandbox-google-secret", app.client_secret)
    assert not app.skip_authorization


def test_management_command(capsys):
    call_command("sandbox_client", "--redirect-uri", "http://c.test/cb/", "http://d.test/cb/")

    out = capsys.readouterr().out
    assert "client_id: sandbox-google-client" in out
    assert "redirect_uri: http://d.test/cb/" in out
    assert "sandbox-google-secret" not in out
    assert "http://c.test/cb/" in Application.objects.get().redirect_uris


def test_token_generators():
    assert tokens.access_token(None).startswith("sbx-at-")
    assert tokens.refresh_token(None, refresh_token=True).startswith("sbx-rt-")
    assert len(tokens.access_token(None)) == len("sbx-at-") + 43
    assert tokens.access_token(None) != tokens.access_token(None)


def test_admin_is_read_only_and_shows_no_token(flow, admin_client):
    issued = flow.tokens(["openid", SHEETS_RO], access_type="offline")
    flow.revoke(issued["refresh_token"], "refresh_token")

    pages = [
        admin_client.get("/admin/sandbox/sandboxtokenrequest/"),
        admin_client.get("/admin/sandbox/sandboxrevocation/"),
        admin_client.get(
            f"/admin/sandbox/sandboxrevocation/{SandboxRevocation.objects.get().pk}/change/"
        ),
        admin_client.get(
            f"/admin/sandbox/sandboxtokenrequest/{SandboxTokenRequest.objects.latest('pk').pk}/change/"
        ),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert issued["access_token"] not in html and issued["refresh_token"] not in html
        assert "sbx-" not in html
    assert admin_client.get("/admin/sandbox/sandboxrevocation/add/").status_code == 403
