"""Service-account keys made in the test, and Google's token endpoint for the JWT
bearer grant (RFC 7523 §2.1) as a real HTTP server on 127.0.0.1.

The endpoint checks what Google checks: the grant type, the assertion's RS256
signature against the public half of the uploaded key, ``kid``, ``iss``, ``aud``,
``scope``, ``iat``/``exp`` (at most one hour, not expired). It answers as Google does
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"


def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    """One 2048-bit key per name per test process (generating one takes a moment)."""
    return _rsa_key(name)


@cache
def _rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_body_fragment(key: rsa.RSAPrivateKey) -> str:
    """A line from the middle of the PEM: what must never show up anywhere."""
    return pem(key).splitlines()[5]


def key_info(
    *,
    token_uri: str = "https://oauth2.googleapis.com/token",
    client_email: str = "runner@my-project.iam.gserviceaccount.com",
    key: rsa.RSAPrivateKey | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A key file as the Google Cloud console makes it."""
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": KEY_ID,
        "private_key": pem(key or rsa_key()),
        "client_email": client_email,
        "client_id": "104000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/runner",
        "universe_domain": "googleapis.com",
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def key_json(**kwargs: Any) -> str:
    return json.dumps(key_info(**kwargs), indent=2)


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class TokenEndpoint:
    """The token endpoint. ``script`` holds answers to give first, each a
    ``(status, body)`` or ``("sleep", seconds)``; then every valid assertion gets a
    fresh token. ``issued`` and ``rejected`` record what happened."""

    public_key: rsa.RSAPublicKey
    client_email: str = "runner@my-project.iam.gserviceaccount.com"
    expires_in: int = 3599
    script: list[tuple[Any, Any]] = field(default_factory=list)
    requests: int = 0
    issued: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    url: str = ""
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def check(self, form: dict[str, str]) -> str | None:
        """Why the request is refused (Google says ``invalid_grant``), or None."""
        if form.get("grant_type") != JWT_BEARER:
            return "grant_type"
        assertion = form.get("assertion", "")
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(payload_b64))
            signature = _b64url(signature_b64)
        except (ValueError, binascii.Error):
            return "malformed"
        if header.get("alg") != "RS256" or header.get("kid") != KEY_ID:
            return "header"
        try:
            self.public_key.verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "signature"
        now = time.time()
        if claims.get("iss") != self.client_email:
            return "iss"
        if claims.get("aud") != GOOGLE_TOKEN_AUD:
            return "aud"
        if claims.get("scope") != CLOUD_PLATFORM:
            return "scope"
        iat, exp = claims.get("iat", 0), claims.get("exp", 0)
        if not (iat - 60 <= now < exp and exp - iat <= 3600):
            return "exp"
        return None

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any], float]:
        self.requests += 1
        self.assertions.append(form.get("assertion", ""))
        if self.script:
            first, second = self.script.pop(0)
            if first == "sleep":
                return 200, self._token(), float(second)
            return int(first), second, 0.0
        reason = self.check(form)
        if reason is not None:
            self.rejected.append(reason)
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 0
        return 200, self._token(), 0.0

    def _token(self) -> dict[str, Any]:
        token = f"ya29.c.minted-{next(self._counter)}-{time.monotonic_ns()}"
        self.issued.append(token)
        return {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}


class _Handler(BaseHTTPRequestHandler):
    endpoint: TokenEndpoint

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if self.path != "/token":
            status, payload, delay = 404, {"error": "not_found"}, 0.0
        else:
            status, payload, delay = self.server.endpoint.answer(form)  # type: ignore[attr-defined]
        if delay:
            time.sleep(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(endpoint: TokenEndpoint) -> ThreadingHTTPServer:
    """Start ``endpoint`` on 127.0.0.1 (a free port) in a thread; sets ``endpoint.url``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.endpoint = endpoint  # type: ignore[attr-defined]
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
