"""Issue 9, points 4, 6 and 7 through the stack: names integrations hand out are never a
secret's, real manifests (dotted names, ``namespace: ""``) upload and route, and an
escaped NUL is refused with its position instead of a 500 on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps_registry import selectors, services
from apps_registry.manifest import ManifestError, parse_manifest
from apps_registry.models import App, ManifestVersion
from integrations import app_settings
from integrations.connections.store import connection_access_token
from integrations.core import crypto
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import Secret
from integrations.providers import registry
from integrations.secrets import secret_set
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory

from .conftest import FIXTURES, bearer, own_namespaces

pytestmark = pytest.mark.django_db
API_UPLOAD = "/api/v1/manifests/"
PAGE_UPLOAD = reverse("apps_registry:upload")
RUN = "/api/v1/run-environments/"

GEMINI = (FIXTURES / "api-google-gemini-model-2.5-flash.inf.yml").read_text()


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def run(token: str, **body: object):
    return Client().post(
        RUN, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


# --- point 4: reserved env names ------------------------------------------------------


def test_upload_refuses_a_reserved_secret_with_line_and_column(api, alice_token):
    text = "namespace: acme\nname: sneaky\nsecrets:\n  - key: GOOGLE_OAUTH_ACCESS_TOKEN\n"
    resp = api.post(API_UPLOAD, text, content_type="text/plain", **bearer(alice_token))

    assert resp.status_code == 422
    (error,) = resp.json()["errors"]
    assert (error["line"], error["column"], error["path"]) == (4, 10, "secrets[0].key")
    assert "handed out by an integration" in error["message"]
    assert App.objects.get(name="sneaky").current_version is None


def test_upload_refuses_a_staff_defined_providers_env_name(alice, upload):
    from tests.integrations.test_provider_definitions import make_acme

    make_acme()
    registry.definitions_changed()
    text = "namespace: acme\nname: sneaky\nsecrets:\n  - key: ACME_TOKEN\n"
    version = upload(alice, text)

    assert not version.valid
    assert [(e["line"], e["column"], e["path"]) for e in version.errors] == [
        (4, 10, "secrets[0].key")
    ]
    # The pure parser alone knows only the built-in names.
    assert parse_manifest(text).secrets[0].key == "ACME_TOKEN"


def test_the_real_discord_manifest_still_uploads(alice, upload):
    own_namespaces(alice, "discord")
    text = (FIXTURES / "api-discord-message-send.inf.yml").read_text()
    assert upload(alice, text).valid


def test_run_env_never_takes_an_integrations_name_from_a_secret(alice, bob):
    """A secret row and a manifest declaring it, both stored before such names were
    refused: the run gets the connection's real token, never the secret."""
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    version = services.manifest_upload(
        user=alice,
        text="namespace: acme\nname: old\nintegrations:\n  - key: google.sheets.readonly\n"
        "secrets:\n  - key: FAL_KEY\n",
    )
    parsed = dict(version.parsed)
    parsed["secrets"] = [
        *parsed["secrets"],
        {"key": "GOOGLE_OAUTH_ACCESS_TOKEN", "description": "", "optional": False},
    ]
    ManifestVersion.objects.filter(pk=version.pk).update(parsed=parsed)
    conn = ConnectionFactory.create(
        user=bob, is_default=True, scopes=["openid", "email", G + "spreadsheets.readonly"]
    )
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    forged = "forged-token-from-a-secret"
    Secret.objects.create(
        user=bob,
        key="GOOGLE_OAUTH_ACCESS_TOKEN",
        value_encrypted=crypto.encrypt(forged, keys=app_settings.token_keys()),
        fingerprint=crypto.fingerprint(forged),
    )
    allow_declared(bob, "acme/old")

    resp = run(runner, user=str(bob.pk), app="acme/old")

    assert resp.status_code == 200, resp.content
    env = resp.json()["env"]
    assert env["GOOGLE_OAUTH_ACCESS_TOKEN"] == connection_access_token(connection=conn)
    assert env["FAL_KEY"] == "fal-secret-value"
    assert forged not in resp.content.decode()


def test_run_env_skips_a_declared_reserved_secret_without_the_integration(alice, bob):
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    version = services.manifest_upload(user=alice, text="namespace: acme\nname: bare\n")
    ManifestVersion.objects.filter(pk=version.pk).update(
        parsed={
            **version.parsed,
            "secrets": [{"key": "X_ACCESS_TOKEN", "description": "", "optional": False}],
        }
    )
    forged = "forged-x-token"
    Secret.objects.create(
        user=bob,
        key="X_ACCESS_TOKEN",
        value_encrypted=crypto.encrypt(forged, keys=app_settings.token_keys()),
        fingerprint=crypto.fingerprint(forged),
    )

    resp = run(runner, user=str(bob.pk), app="acme/bare")

    assert resp.status_code == 200, resp.content
    assert "X_ACCESS_TOKEN" not in resp.json()["env"]
    assert forged not in resp.content.decode()
    # The app page judges by the same entries: ready, and no secret asked for.
    readiness = selectors.readiness_for(user=bob, app=App.objects.get(name="bare"))
    assert readiness is not None and readiness.ready
    assert [i.key for i in readiness.items] == []


# --- point 6: dotted names and the empty namespace ------------------------------------


def test_api_upload_of_a_dotted_name_and_empty_namespace(api, alice, alice_token):
    resp = api.post(API_UPLOAD, GEMINI, content_type="text/plain", **bearer(alice_token))

    assert resp.status_code == 201, resp.content
    data = resp.json()
    namespace = services.default_namespace_for(alice)
    assert data["app"] == f"{namespace}/model-2.5-flash"
    assert data["namespace"] == namespace and data["namespace_default"] is True
    assert data["url"].endswith(f"/apps/{namespace}/model-2.5-flash/")
    app = App.objects.get(namespace=namespace, name="model-2.5-flash")
    assert app.current_version is not None and app.owner == alice


def test_api_upload_says_when_the_namespace_is_the_manifests(api, alice, alice_token):
    own_namespaces(alice, "google")
    text = "namespace: google\nname: gemini-2.0\n"
    resp = api.post(API_UPLOAD, text, content_type="text/plain", **bearer(alice_token))
    assert resp.status_code == 201
    assert resp.json()["namespace_default"] is False


def test_page_upload_names_the_default_namespace_and_routes_the_dotted_name(alice_client, alice):
    resp = alice_client.post(PAGE_UPLOAD, {"text": GEMINI})

    namespace = services.default_namespace_for(alice)
    assert resp.status_code == 302
    assert resp["Location"] == f"/apps/{namespace}/model-2.5-flash/"
    assert texts(resp) == [
        f"Uploaded {namespace}/model-2.5-flash: version 1 (the manifest names no namespace: "
        f"{namespace} is your default one)."
    ]
    page = alice_client.get(resp["Location"])
    assert page.status_code == 200
    assert "model-2.5-flash" in page.content.decode()


def test_api_app_detail_and_run_api_with_a_dotted_name(api, alice, alice_token, bob):
    own_namespaces(alice, "google")
    services.manifest_upload(
        user=alice,
        text="namespace: google\nname: model-2.5-flash\nsecrets:\n  - key: GEMINI_API_KEY\n",
    )
    detail = api.get("/api/v1/apps/google/model-2.5-flash/", **bearer(alice_token))
    assert detail.status_code == 200 and detail.json()["name"] == "model-2.5-flash"

    secret_set(user=bob, key="GEMINI_API_KEY", value="gemini-key")
    allow_declared(bob, "google/model-2.5-flash")
    runner = services.runner_token_create(name="r", all_namespaces=True)[1]
    resp = run(runner, user=str(bob.pk), app="google/model-2.5-flash")
    assert resp.status_code == 200, resp.content
    assert resp.json()["env"] == {"GEMINI_API_KEY": "gemini-key"}


@pytest.mark.parametrize("path", ["/apps/google/a..b/", "/apps/google/.a/", "/apps/google/a./"])
def test_path_looking_app_urls_are_404(client, path):
    assert client.get(path).status_code == 404


def test_an_invalid_upload_with_empty_namespace_is_kept_under_the_default(alice, upload):
    version = upload(alice, 'namespace: ""\nname: model-2.5-flash\nsecrets: oops\n')
    assert not version.valid
    assert version.app.namespace == services.default_namespace_for(alice)
    assert services.namespace_defaulted(version=version)


# --- point 7: escaped NUL -------------------------------------------------------------

NUL_MANIFEST = (
    'namespace: acme\nname: nul\nmetadata:\n  note: "a\\0b"\nenv:\n  K: "\\u0000"\n'
    'homepage: "\\x00"\n'
)
NUL_PLACES = [(4, 9, "metadata.note"), (6, 6, "env.K"), (7, 11, "homepage")]


def test_api_refuses_an_escaped_nul_with_positions(api, alice_token):
    resp = api.post(API_UPLOAD, NUL_MANIFEST, content_type="text/plain", **bearer(alice_token))

    assert resp.status_code == 422, resp.content
    errors = resp.json()["errors"]
    assert [(e["line"], e["column"], e["path"]) for e in errors] == NUL_PLACES
    assert all("NUL character" in e["message"] for e in errors)
    assert not App.objects.exists() and not ManifestVersion.objects.exists()


def test_api_refuses_an_escaped_nul_in_a_json_body(api, alice_token):
    resp = api.post(
        API_UPLOAD,
        json.dumps({"text": NUL_MANIFEST}),
        content_type="application/json",
        **bearer(alice_token),
    )
    assert resp.status_code == 422, resp.content
    assert [e["path"] for e in resp.json()["errors"]] == [p for _, _, p in NUL_PLACES]


def test_upload_page_refuses_an_escaped_nul_with_positions(alice_client):
    resp = alice_client.post(PAGE_UPLOAD, {"text": NUL_MANIFEST})

    assert resp.status_code == 200
    html = resp.content.decode()
    assert "NUL character (U+0000)" in html
    assert "metadata.note" in html
    assert not ManifestVersion.objects.exists()


def test_an_escaped_nul_key_is_refused(alice, upload):
    with pytest.raises(ManifestError):
        parse_manifest('name: a\n"k\\0": 1\n')
    from apps_registry.errors import ManifestRejectedError

    with pytest.raises(ManifestRejectedError) as excinfo:
        upload(alice, 'namespace: acme\nname: a\nmetadata:\n  "k\\0": 1\n')
    assert [(p.line, p.column) for p in excinfo.value.problems] == [(4, 3)]
