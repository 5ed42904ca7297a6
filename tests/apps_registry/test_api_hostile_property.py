"""Every API endpoint, fed NUL characters and integers beyond 64 bits: never a server
error, and always a JSON answer. Runs on PostgreSQL in CI (where a NUL in a query
parameter is an error of the database) and on SQLite (where an integer beyond 64 bits
is an error of the driver).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps_registry import services
from integrations.secrets import secret_set
from tests.integrations.factories import ConnectionFactory

from .test_run_env import MANIFEST

pytestmark = pytest.mark.django_db

HOSTILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Ints at and past the edges of 32 and 64 bits, both signs, and anything else.
big_ints = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 10**20, -(2**63) - 1]) | st.integers()
# Text with NUL characters in it (and around real values).
nul_texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8") | st.just("\x00")).map(lambda t: t + "\x00"),
    st.sampled_from(["bob@example.com", "acme/digest", "google", "1"]).map(lambda t: t + "\x00"),
    st.just("\x00"),
)
scalars = big_ints | nul_texts | big_ints.map(str) | st.none() | st.booleans()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["google", "x", "\x00"]) | nul_texts, children, max_size=3
        )
    ),
    max_leaves=8,
)
run_bodies = st.fixed_dictionaries(
    {},
    optional={
        "user": scalars | st.just("bob@example.com"),
        "app": scalars | st.just("acme/digest"),
        "version": scalars | st.just(1),
        "connections": values | st.dictionaries(st.just("google"), big_ints, max_size=1),
    },
)
upload_bodies = st.fixed_dictionaries({}, optional={"text": values, "name": values, "x": values})


@pytest.fixture
def rows(alice, bob) -> dict[str, Any]:
    services.manifest_upload(user=alice, text=MANIFEST)
    ConnectionFactory.create(
        user=bob,
        is_default=True,
        scopes=["openid", "email"],
    )
    secret_set(user=bob, key="FAL_KEY", value="fal-secret-value")
    runner = services.runner_token_create(name="h", all_namespaces=True)[1]
    return {
        "api": {
            "HTTP_AUTHORIZATION": f"Bearer {services.api_token_create(user=alice, name='h')[1]}"
        },
        "runner": {"HTTP_AUTHORIZATION": f"Bearer {runner}"},
    }


def _json_answer(resp: Any) -> None:
    assert resp.status_code < 500, resp.content[:500]
    assert resp["Content-Type"].startswith("application/json"), resp["Content-Type"]


@HOSTILE
@given(body=run_bodies)
def test_run_environments(rows, body: dict[str, Any]) -> None:
    resp = Client().post(
        "/api/v1/run-environments/",
        json.dumps(body),
        content_type="application/json",
        **rows["runner"],
    )
    _json_answer(resp)


@HOSTILE
@given(body=upload_bodies, as_text=st.booleans())
def test_manifest_upload(rows, body: dict[str, Any], as_text: bool) -> None:
    if as_text:
        text = body.get("text")
        data = (text if isinstance(text, str) else json.dumps(text)).encode(
            "utf-8", "surrogatepass"
        )
        resp = Client().post("/api/v1/manifests/", data, content_type="text/plain", **rows["api"])
    else:
        resp = Client().post(
            "/api/v1/manifests/", json.dumps(body), content_type="application/json", **rows["api"]
        )
    _json_answer(resp)


@HOSTILE
@given(namespace=nul_texts | big_ints.map(str), name=nul_texts | big_ints.map(str), q=scalars)
def test_app_detail_and_schema(rows, namespace: str, name: str, q: Any) -> None:
    url = f"/api/v1/apps/{quote(namespace, safe='')}/{quote(name, safe='')}/"
    _json_answer(Client().get(url, {"version": str(q)}, **rows["api"]))
    _json_answer(Client().get("/api/v1/apps/acme/digest/", {"version": str(q)}, **rows["api"]))
    schema = Client().get("/api/schema/", {"format": str(q)})
    assert schema.status_code < 500
