"""Property tests of the upload endpoints (web form and API): whatever is posted, the
answer is never a server error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps_registry import services

from .conftest import REAL, own_namespaces
from .test_manifest_property import mutated_manifests, retyped_manifests

pytestmark = pytest.mark.django_db

ENDPOINTS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
WEB = reverse("apps_registry:upload")
API = reverse("apps_registry:api_manifest_upload")

manifests = st.one_of(
    st.text(),
    mutated_manifests(),
    retyped_manifests(),
    st.sampled_from(sorted(REAL.values())),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["text", "name", "x"]), children, max_size=3)
    ),
    max_leaves=10,
)
content_types = st.sampled_from(
    [
        "text/plain",
        "text/plain; charset=latin-1",
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "application/octet-stream",
        "",
    ]
)


@pytest.fixture
def clients(alice, bob) -> dict[str, Any]:
    """Alice signed in on the web, her API token, and an app of Bob's that she may not
    change (so that ownership refusals are among the answers)."""
    own_namespaces(bob, "google")
    services.manifest_upload(user=bob, text=REAL["api-google-sheets.inf.yml"])
    web = Client()
    web.force_login(alice)
    _, token = services.api_token_create(user=alice, name="fuzz")
    return {"web": web, "api": Client(), "auth": {"HTTP_AUTHORIZATION": f"Bearer {token}"}}


@ENDPOINTS
@given(text=manifests)
def test_web_paste_never_500(clients, text: str) -> None:
    resp = clients["web"].post(WEB, {"text": text})
    assert resp.status_code < 500


@ENDPOINTS
@given(data=st.binary() | manifests.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_web_file_never_500(clients, data: bytes) -> None:
    resp = clients["web"].post(WEB, {"file": SimpleUploadedFile("inf.yml", data)})
    assert resp.status_code < 500


@ENDPOINTS
@given(text=manifests)
def test_api_text_never_500(clients, text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    resp = clients["api"].post(API, body, content_type="text/plain", **clients["auth"])
    assert resp.status_code < 500


@ENDPOINTS
@given(text=manifests)
def test_api_json_never_500(clients, text: str) -> None:
    body = json.dumps({"text": text})
    resp = clients["api"].post(API, body, content_type="application/json", **clients["auth"])
    assert resp.status_code < 500


@ENDPOINTS
@given(value=json_values, content_type=content_types)
def test_api_any_json_any_content_type_never_500(clients, value: Any, content_type: str) -> None:
    body = json.dumps(value)
    resp = clients["api"].post(API, body, content_type=content_type, **clients["auth"])
    assert resp.status_code < 500


@ENDPOINTS
@given(body=st.binary(), content_type=content_types, authorized=st.booleans())
def test_any_bytes_to_either_endpoint_never_500(
    clients, body: bytes, content_type: str, authorized: bool
) -> None:
    auth = clients["auth"] if authorized else {}
    # generic() sends the bytes as they are (post() would re-encode them to the charset).
    resp = clients["api"].generic("POST", API, body, content_type=content_type, **auth)
    assert resp.status_code < 500
    resp = clients["web"].generic("POST", WEB, body, content_type=content_type)
    assert resp.status_code < 500
