"""A fake Discord at the HTTP edge (``responses``): the token, revocation and
``/users/@me`` endpoints answering as https://discord.com/developers/docs/topics/oauth2
documents them. It checks the client's HTTP Basic authentication and the PKCE S256
verifier against the authorization request's challenge, and honours a refresh token once
(Discord rotates them: the answer carries the next one, the old one is dead)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from django.contrib.messages import get_messages
from django.urls import reverse

from integrations.providers import registry

CLIENT_ID = "1234567890123456789"
CLIENT_SECRET = "discord-platform-secret"
# GET /users/@me with the identify scope (no email: that needs the email scope).
ME = {
    "id": "80351110224678912",
    "username": "nelly",
    "discriminator": "0",
    "global_name": "Nelly",
    "avatar": "8342729096ea3675442027381ff50dfe",
    "flags": 64,
    "public_flags": 64,
}


class FakeDiscord:
    """Discord's token, revocation and ``/users/@me`` endpoints."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        config = registry.provider_config("discord")
        assert config.token_url == "https://discord.com/api/oauth2/token"
        assert config.revoke_url == "https://discord.com/api/oauth2/token/revoke"
        assert config.userinfo_url == "https://discord.com/api/users/@me"
        rsps.add_callback(responses.POST, config.token_url, callback=self._token)
        rsps.add_callback(responses.POST, config.revoke_url, callback=self._revoke)
        rsps.add_callback(responses.GET, config.userinfo_url, callback=self._me)
        self.codes: dict[str, dict[str, str]] = {}
        self.live_access: set[str] = set()
        self.live_refresh: dict[str, str] = {}  # refresh token -> its scope
        self.token_requests: list[dict[str, str]] = []
        self.revoked: list[dict[str, str]] = []

    def authorize(self, params: dict[str, str]) -> str:
        code = "code-" + secrets.token_urlsafe(8)
        self.codes[code] = params
        return code

    def _authenticated(self, request: Any) -> bool:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _issue(self, scope: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.live_access.add(access)
        self.live_refresh[refresh] = scope
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 604800,
            "refresh_token": refresh,
            "scope": scope,
        }

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.token_requests.append(form)
        if not self._authenticated(request):
            return (401, {}, json.dumps({"error": "invalid_client"}))
        if form["grant_type"] == "authorization_code":
            auth = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if (
                auth is None
                or form.get("redirect_uri") != auth["redirect_uri"]
                or auth.get("code_challenge_method") != "S256"
                or challenge.rstrip(b"=").decode() != auth.get("code_challenge")
            ):
                return (400, {}, json.dumps({"error": "invalid_grant"}))
            body = self._issue(auth["scope"])
        else:
            # Rotation: a refresh token works once; the answer carries the next one.
            scope = self.live_refresh.pop(form.get("refresh_token", ""), None)
            if scope is None:
                return (
                    400,
                    {"Content-Type": "application/json"},
                    json.dumps(
                        {
                            "error": "invalid_grant",
                            "error_description": 'Invalid "refresh_token" in request.',
                        }
                    ),
                )
            body = self._issue(scope)
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    def _revoke(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authenticated(request):
            return (401, {}, json.dumps({"error": "invalid_client"}))
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.revoked.append(form)
        self.live_refresh.pop(form["token"], None)
        return (200, {"Content-Type": "application/json"}, "{}")

    def _me(self, request: Any) -> tuple[int, dict[str, str], str]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.live_access:
            return (401, {}, json.dumps({"message": "401: Unauthorized", "code": 0}))
        return (200, {"Content-Type": "application/json"}, json.dumps(ME))


def discord_fake(settings: Any) -> Iterator[FakeDiscord]:
    """For a fixture: Discord configured from the settings, answered by a ``FakeDiscord``."""
    settings.DISCORD_CLIENT_ID = CLIENT_ID
    settings.DISCORD_CLIENT_SECRET = CLIENT_SECRET
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeDiscord(rsps)


def discord_connect(client: Any, discord: FakeDiscord, caps: list[str]) -> dict[str, str]:
    """Connect Discord through our views: the authorization request's parameters (plus
    ``_url``, its endpoint, and ``_messages``, what the callback said); the user's
    consent is the fake's ``authorize``."""
    resp = client.post(
        reverse("integrations:connect", kwargs={"provider_id": "discord"}),
        {"capabilities": caps},
    )
    assert resp.status_code == 302, resp.content
    location = urlsplit(resp["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    params["_url"] = f"{location.scheme}://{location.netloc}{location.path}"
    done = client.get(
        reverse("integrations:oauth_callback", kwargs={"provider_id": "discord"}),
        {"state": params["state"], "code": discord.authorize(params)},
    )
    assert done.status_code == 302
    params["_messages"] = " ".join(str(m) for m in get_messages(done.wsgi_request))
    return params
