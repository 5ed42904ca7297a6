"""A fake Google at the HTTP edge (``responses``), for unit tests of our flows.

End-to-end tests use the real sandbox authorization server instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import responses

from integrations.providers import registry


@dataclass
class FakeGoogle:
    """Answers the token, userinfo and revoke endpoints; remembers what it issued."""

    rsps: responses.RequestsMock
    sub: str = "google-sub-alice"
    email: str = "alice@gmail.example"
    # Scopes the user "unticks" at consent.
    withhold: set[str] = field(default_factory=set)
    send_refresh_token: bool = True
    send_scope: bool = True
    # Authorization requests seen, keyed by the code handed out.
    codes: dict[str, dict] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    revoke_status: int = 200
    token_requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = registry.provider_config("google")
        self.rsps.add_callback(responses.POST, config.token_url, callback=self._token)
        self.rsps.add_callback(responses.GET, config.userinfo_url, callback=self._userinfo)
        self.rsps.add_callback(responses.POST, config.revoke_url, callback=self._revoke)

    def authorize(self, params: dict[str, str]) -> str:
        """What the user's consent returns: a code bound to this authorization request."""
        code = "code-" + secrets.token_urlsafe(8)
        self.codes[code] = dict(params)
        return code

    def _token(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        auth = self.codes.pop(form.get("code", ""), None)
        if auth is None:
            return (400, {}, json.dumps({"error": "invalid_grant"}))
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if auth.get("code_challenge_method") != "S256" or (
            challenge.rstrip(b"=").decode() != auth.get("code_challenge")
        ):
            return (400, {}, json.dumps({"error": "invalid_grant", "error_description": "pkce"}))
        scopes = [s for s in auth["scope"].split() if s not in self.withhold]
        access = "ya29.fake-" + secrets.token_urlsafe(24)
        self.issued.append(access)
        body: dict[str, object] = {
            "access_token": access,
            "expires_in": 3599,
            "token_type": "Bearer",
        }
        if self.send_scope:
            body["scope"] = " ".join(scopes)
        if self.send_refresh_token:
            refresh = "1//fake-refresh-" + secrets.token_urlsafe(24)
            self.issued.append(refresh)
            body["refresh_token"] = refresh
        return (200, {"Content-Type": "application/json"}, json.dumps(body))

    def _userinfo(self, request):
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued:
            return (401, {}, json.dumps({"error": "invalid_token"}))
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"sub": self.sub, "email": self.email, "email_verified": True}),
        )

    def _revoke(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        if self.revoke_status == 200:
            self.revoked.append(form["token"])
            return (200, {}, "")
        return (
            self.revoke_status,
            {"Content-Type": "application/json"},
            '{"error": "server_error"}',
        )
