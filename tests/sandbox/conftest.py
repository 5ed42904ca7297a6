"""A signed-in user, the sandbox client, and a PKCE authorization-code flow driven
through Django's test client (no live server)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from integrations.sandbox.services import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    google_callback_uri,
    sandbox_client_ensure,
)

G = "https://www.googleapis.com/auth/"
SHEETS_RO = G + "spreadsheets.readonly"
GMAIL_RO = G + "gmail.readonly"
DRIVE = G + "drive"
REDIRECT_URI = google_callback_uri(site_url=settings.SITE_URL)


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_url(scopes: list[str], pkce: Pkce | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": SANDBOX_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(scopes),
        "state": "st-123",
        **extra,
    }
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    return reverse("sandbox:authorize") + "?" + urlencode(params)


def consent_data(form: Any, *, tick: list[str] | None = None, allow: bool = True) -> dict:
    """What the browser posts: the hidden fields, the ticked boxes, Allow or Cancel."""
    data: dict[str, Any] = {f.name: f.value() or "" for f in form.hidden_fields()}
    data["scope"] = form.fields["scope"].initial if tick is None else tick
    if allow:
        data["allow"] = "true"
    return data


class Flow:
    """The product's side of the authorization-code flow, against the sandbox."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def code(
        self, scopes: list[str], *, tick: list[str] | None = None, pkce: Pkce, **extra: str
    ) -> str:
        url = authorize_url(scopes, pkce, **extra)
        page = self.client.get(url)
        assert page.status_code == 200, page.content
        answer = self.client.post(url, consent_data(page.context["form"], tick=tick))
        assert answer.status_code == 302
        assert answer["Location"].startswith(REDIRECT_URI)
        query = query_of(answer["Location"])
        assert query["state"] == "st-123"
        return query["code"]

    def exchange(self, code: str, pkce: Pkce) -> Any:
        return self.client.post(
            reverse("sandbox:token"),
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
                "code_verifier": pkce.verifier,
            },
        )

    def tokens(self, scopes: list[str], *, tick: list[str] | None = None, **extra: str) -> dict:
        pkce = Pkce()
        response = self.exchange(self.code(scopes, tick=tick, pkce=pkce, **extra), pkce)
        assert response.status_code == 200, response.content
        return response.json()

    def refresh(self, refresh_token: str) -> Any:
        return self.client.post(
            reverse("sandbox:token"),
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
            },
        )

    def revoke(self, token: str, hint: str | None = None, **auth: str) -> Any:
        data = {
            "token": token,
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
            **auth,
        }
        if hint:
            data["token_type_hint"] = hint
        return self.client.post(reverse("sandbox:revoke"), data)


@pytest.fixture
def user(db: Any) -> Any:
    return get_user_model().objects.create_user(
        username="ada", email="ada@example.com", password="pw-not-used"
    )


@pytest.fixture
def sandbox_app(db: Any) -> Any:
    return sandbox_client_ensure(redirect_uris=[REDIRECT_URI])


@pytest.fixture
def flow(client: Client, user: Any, sandbox_app: Any) -> Flow:
    client.force_login(user)
    return Flow(client)


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
