"""The JSON API: token authentication, uploads (text/plain and JSON), answers and
their status codes, size limits, the app endpoint and the OpenAPI schema."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.urls import reverse

from apps_registry import services
from apps_registry.limits import MAX_ENVELOPE_BYTES
from apps_registry.manifest import MAX_MANIFEST_BYTES
from apps_registry.models import ApiToken, App, ManifestVersion

from .conftest import REAL, REPORT, bearer

pytestmark = pytest.mark.django_db

UPLOAD = reverse("apps_registry:api_manifest_upload")
APP = reverse("apps_registry:api_app", kwargs={"namespace": "acme", "name": "report"})


def post_text(api, token: str | None, body: str | bytes, **extra):
    headers = bearer(token) if token else {}
    return api.post(UPLOAD, body, content_type="text/plain", **headers, **extra)


def post_json(api, token: str | None, data, **extra):
    headers = bearer(token) if token else {}
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return api.post(UPLOAD, body, content_type="application/json", **headers, **extra)


# --- authentication -------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(api):
    resp = post_text(api, None, REPORT)
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not App.objects.exists()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ihub_not-a-real-token",
        "Bearer",
        "Bearer a b",
        "Bearer " + "x" * 500,
        "Bearer \xe9t\xe9",
    ],
)
def test_bad_token_is_401_and_not_echoed(api, alice_token, header, caplog):
    caplog.set_level(logging.DEBUG)
    resp = api.post(UPLOAD, REPORT, content_type="text/plain", HTTP_AUTHORIZATION=header)
    assert resp.status_code == 401
    assert "ihub_not-a-real-token" not in resp.content.decode()
    assert not App.objects.exists()


def test_session_login_is_not_enough_for_the_api(alice_client):
    assert post_text(alice_client, None, REPORT).status_code == 401


def test_a_deleted_token_no_longer_works(api, alice_token):
    ApiToken.objects.all().delete()
    assert post_text(api, alice_token, REPORT).status_code == 401


def test_good_token_uploads_and_records_its_use(api, alice, alice_token, caplog):
    caplog.set_level(logging.DEBUG)
    resp = post_text(api, alice_token, REPORT)

    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["app"] == "acme/report" and body["number"] == 1
    assert body["valid"] is True and body["current"] is True
    assert body["warnings"] == [] and body["errors"] == []
    assert body["url"] == "http://testserver/apps/acme/report/"
    version = ManifestVersion.objects.get()
    assert version.uploaded_by == alice and version.app.owner == alice
    assert ApiToken.objects.get().last_used_at is not None
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert alice_token not in logs and alice_token not in resp.content.decode()


# --- uploads --------------------------------------------------------------------------


def test_json_body_with_warnings(api, alice_token):
    resp = post_json(
        api, alice_token, {"text": REAL["native-agents-browser-use.inf.yml"] + "x: 1\n"}
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["app"] == "alice0/browser-use"
    (warning,) = body["warnings"]
    assert warning == {
        "line": 24,
        "column": 1,
        "path": "x",
        "message": "unknown field 'x' (kept)",
    }


def test_invalid_manifest_is_422_with_problems_and_kept_as_a_version(
    api, alice_token, upload, alice
):
    upload(alice)
    resp = post_text(api, alice_token, REPORT.replace("optional: true", "optional: yes"))
    assert resp.status_code == 422
    body = resp.json()
    assert body["number"] == 2 and body["valid"] is False and body["current"] is False
    (error,) = body["errors"]
    assert error["line"] == 10 and error["column"] == 15
    assert error["path"] == "integrations[1].optional"
    current = App.objects.get().current_version
    assert current is not None and current.number == 1


def test_refused_manifest_is_422_without_a_version(api, alice_token):
    resp = post_text(api, alice_token, "name: [oops\n")
    assert resp.status_code == 422
    body = resp.json()
    assert body["valid"] is False and "number" not in body
    assert body["errors"][0]["message"].startswith("a list opened with '[' here is never closed")
    assert (body["errors"][0]["line"], body["errors"][0]["column"]) == (1, 7)
    assert not ManifestVersion.objects.exists()


def test_empty_and_non_utf8_bodies_are_422(api, alice_token):
    # (Django's test client leaves Content-Type out for an empty body; curl sends it.)
    empty = post_text(api, alice_token, b"", CONTENT_TYPE="text/plain")
    assert empty.status_code == 422 and "empty" in empty.json()["errors"][0]["message"]
    resp = post_text(api, alice_token, b"name: caf\xe9\n")
    assert resp.status_code == 422 and "UTF-8" in resp.json()["errors"][0]["message"]


def test_another_users_app_is_403(api, alice, bob_token, upload):
    upload(alice)
    resp = post_text(api, bob_token, REPORT)
    assert resp.status_code == 403
    assert resp.json()["error"] == "namespace_owned"
    assert "Ask alice@example.com to add you" in resp.json()["detail"]
    assert ManifestVersion.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"txt": "name: a"}', 400),
        ('{"text": null}', 400),
        ('{"text": "name: a\\u0000"}', 400),
        ('{"text": NaN}', 400),
        ("[" * 100_000 + "]" * 100_000, 400),
        (b"\xff\xfe", 400),
    ],
)
def test_malformed_json_is_400(api, alice_token, body, status):
    assert post_json(api, alice_token, body).status_code == status
    assert not ManifestVersion.objects.exists()


def test_other_media_types_are_415(api, alice_token):
    resp = api.post(
        UPLOAD, "text=x", content_type="application/x-www-form-urlencoded", **bearer(alice_token)
    )
    assert resp.status_code == 415


# --- size limits: refused before the YAML parser (and the body) are reached -----------


def test_a_text_body_over_64_kib_is_413_before_it_is_read(api, alice_token):
    body = b"name: big\n#" + b"x" * MAX_MANIFEST_BYTES
    start = time.perf_counter()
    resp = post_text(api, alice_token, body)
    assert time.perf_counter() - start < 1.0
    assert resp.status_code == 413
    assert "64 KiB" in resp.json()["detail"]
    assert not resp.wsgi_request._read_started
    assert not ManifestVersion.objects.exists()


def test_a_10_mib_json_body_is_413_before_it_is_read(api, alice_token):
    body = json.dumps({"text": "x" * (10 * 1024 * 1024)})
    start = time.perf_counter()
    resp = post_json(api, alice_token, body)
    assert time.perf_counter() - start < 1.0
    assert resp.status_code == 413
    assert not resp.wsgi_request._read_started


def test_the_parsers_read_at_most_one_byte_over_the_limit():
    # Under WSGI a body is cut at its Content-Length; the parsers do not rely on it.
    import io

    from apps_registry.api.parsers import (
        BoundedJSONParser,
        ManifestTextParser,
        PayloadTooLargeError,
    )

    stream = io.BytesIO(b"x" * (10 * 1024 * 1024))
    with pytest.raises(PayloadTooLargeError):
        ManifestTextParser().parse(stream)
    assert stream.tell() == MAX_MANIFEST_BYTES + 1
    stream = io.BytesIO(b"[" * (10 * 1024 * 1024))
    with pytest.raises(PayloadTooLargeError):
        BoundedJSONParser().parse(stream)
    assert stream.tell() == MAX_ENVELOPE_BYTES + 1


def test_json_text_over_64_kib_is_refused_by_the_size_check(api, alice_token):
    text = "name: big\n#" + "x" * MAX_MANIFEST_BYTES
    assert len(json.dumps({"text": text})) < MAX_ENVELOPE_BYTES
    resp = post_json(api, alice_token, {"text": text})
    assert resp.status_code == 422
    assert "too large" in resp.json()["errors"][0]["message"]


def test_an_alias_bomb_is_refused_fast(api, alice_token):
    from bench.manifests import billion_laughs

    start = time.perf_counter()
    resp = post_text(api, alice_token, billion_laughs())
    assert time.perf_counter() - start < 1.0
    assert resp.status_code == 422
    assert "alias" in resp.json()["errors"][0]["message"]


# --- the app endpoint -----------------------------------------------------------------


def test_app_with_versions_for_its_owner(api, alice, alice_token, upload):
    upload(alice)
    upload(alice, REPORT.replace("optional: true", "optional: 2"))
    resp = api.get(APP, **bearer(alice_token))
    assert resp.status_code == 200
    body = resp.json()
    assert body["namespace"] == "acme" and body["name"] == "report"
    assert body["owner"] == alice.username and body["current_version"] == 1
    assert body["title"] == "Weekly report"
    assert body["integrations"] == [
        {
            "key": "google.sheets.readonly",
            "description": "Read the source spreadsheet",
            "optional": False,
        },
        {
            "key": "google.drive.readonly",
            "description": "Find the spreadsheet in Drive",
            "optional": True,
        },
    ]
    assert [(v["number"], v["valid"], v["current"]) for v in body["versions"]] == [
        (2, False, False),
        (1, True, True),
    ]
    assert body["versions"][0]["errors"][0]["path"] == "integrations[1].optional"


def test_app_query_count_does_not_grow_with_versions(
    api, alice, alice_token, upload, django_assert_max_num_queries
):
    for i in range(10):
        upload(alice, REPORT.replace("Weekly", f"Week {i}"))
    # token (+ its last-use update at most once a minute), app, versions.
    with django_assert_max_num_queries(4):
        assert api.get(APP, **bearer(alice_token)).status_code == 200


def test_another_users_app_is_403_and_unknown_404(api, alice, bob_token, upload):
    upload(alice)
    assert api.get(APP, **bearer(bob_token)).status_code == 403
    missing = reverse("apps_registry:api_app", kwargs={"namespace": "no", "name": "app"})
    assert api.get(missing, **bearer(bob_token)).status_code == 404
    assert api.get(APP).status_code == 401


def test_staff_token_sees_any_app(api, alice, admin_user, upload):
    upload(alice)
    _, token = services.api_token_create(user=admin_user, name="ops")
    assert api.get(APP, **bearer(token)).status_code == 200


# --- OpenAPI --------------------------------------------------------------------------


def test_openapi_schema(api):
    resp = api.get(reverse("apps_registry:api_schema"), {"format": "json"})
    assert resp.status_code == 200
    schema = json.loads(resp.content)
    assert schema["openapi"].startswith("3.")
    upload = schema["paths"]["/api/v1/manifests/"]["post"]
    assert set(upload["requestBody"]["content"]) == {"text/plain", "application/json"}
    assert {"201", "401", "403", "413", "422"} <= set(upload["responses"])
    assert "/api/v1/apps/{namespace}/{name}/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiToken"]["description"],
    }
    assert upload["security"] == [{"apiToken": []}]
