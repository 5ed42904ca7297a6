"""Google service-account key files and GCP project numbers: parse and check.

Pure: no models. A key file is the JSON that the Google Cloud console downloads
(IAM & Admin → Service accounts → Keys → Add key → JSON;
https://cloud.google.com/iam/docs/keys-create-delete). It is checked here well enough
that minting a token from it (RFC 7523, ``google.oauth2.service_account``) can only
fail at Google, not on our side.

Every error message names the field and the rule, never the value: a key file is a
credential, and an error page or a log line must not quote any of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from integrations.errors import InvalidServiceAccountKeyError

# A real key file is about 2.3 KiB (a 2048-bit RSA key in PEM plus a few fields).
MAX_KEY_BYTES = 16 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096
# http:// is accepted for these hosts only, and only when the setting allows it (tests
# run a token endpoint on 127.0.0.1); everything else must be https.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# The only https token endpoint a key may name: the server POSTs a signed assertion
# there, so any other host would let a user aim this server at a URL of their choosing
# (server-side request forgery).
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# Older key files name this one; it is Google's too.
GOOGLE_TOKEN_URIS = frozenset({GOOGLE_TOKEN_URI, "https://accounts.google.com/o/oauth2/token"})
DEFAULT_UNIVERSE_DOMAIN = "googleapis.com"

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Project ids: 6 to 30 lowercase letters, digits and hyphens; older ones may carry a
# domain prefix ("example.com:my-project"). Checked loosely: printable, no spaces.
_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,127}$")
_PROJECT_NUMBER = re.compile(r"^[0-9]{1,20}$")


# What a stored service-account key is for (``ServiceAccountKey.purpose``): ``google.sa``
# hands the key itself to runs; ``gcp.*`` mints tokens in the user's own project.
PURPOSE_GOOGLE_SA = "google_sa"
PURPOSE_GCP = "gcp"


@dataclass(frozen=True)
class ServiceAccountKeyInfo:
    """A checked key file. ``text`` (the whole JSON, private key included) is hidden
    from the repr."""

    client_email: str
    project_id: str
    private_key_id: str
    token_uri: str
    text: str = field(repr=False)


def _refuse(message: str) -> InvalidServiceAccountKeyError:
    return InvalidServiceAccountKeyError(message)


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _refuse(f'The key has no "{name}": is this the JSON key file Google downloaded?')
    return value.strip()


def _check_private_key(pem: str) -> None:
    """The PEM must hold an unencrypted RSA private key of 2048 to 4096 bits (Google's
    keys are RSA 2048)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except Exception:
        # Whatever cryptography says about the PEM stays out of the message.
        raise _refuse(
            'The key\'s "private_key" is not a readable PEM private key '
            "(it may have been edited, or it is protected by a password)."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _refuse('The key\'s "private_key" must be an RSA key, as Google issues.')
    if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise _refuse(
            f'The key\'s "private_key" must be an RSA key of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits.'
        )


def check_token_uri(uri: str, *, allow_loopback_http: bool) -> None:
    """``token_uri`` must be Google's token endpoint (``GOOGLE_TOKEN_URI``), or http to a
    loopback host when ``allow_loopback_http`` (tests). No credentials or fragment."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise _refuse('The key\'s "token_uri" is not a valid URL.') from None
    if not host or parts.username or parts.password or parts.fragment:
        raise _refuse('The key\'s "token_uri" is not a valid URL.')
    if parts.scheme == "http" and allow_loopback_http and host in LOOPBACK_HOSTS:
        return
    if parts.scheme != "https":
        raise _refuse('The key\'s "token_uri" must be an https:// URL.')
    if uri not in GOOGLE_TOKEN_URIS:
        raise _refuse(
            f"The key's \"token_uri\" must be Google's token endpoint, {GOOGLE_TOKEN_URI}."
        )


def mint_token_uri(uri: str, *, allow_loopback_http: bool) -> str:
    """Where the server POSTs a key's signed assertion: Google's token endpoint, whatever
    the key file says, so that no stored key can aim the server elsewhere; an http
    loopback URI only when ``allow_loopback_http`` (tests)."""
    if allow_loopback_http:
        try:
            parts = urlsplit(uri)
            if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
                return uri
        except ValueError:
            pass
    return GOOGLE_TOKEN_URI


def parse_service_account_key(
    raw: bytes | str, *, allow_loopback_http: bool = False
) -> ServiceAccountKeyInfo:
    """Check a service-account key file and return what we keep of it.

    Rules: at most ``MAX_KEY_BYTES``; UTF-8 JSON object; ``type`` is
    ``service_account``; ``client_email`` looks like an email; ``private_key`` is a PEM
    RSA private key that parses; ``private_key_id`` present; ``token_uri`` Google's (see
    ``check_token_uri``); ``project_id`` present; ``universe_domain`` absent or
    ``googleapis.com`` (another universe makes google-auth sign its own JWTs instead of
    asking a token endpoint). Raises ``InvalidServiceAccountKeyError``.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if not data.strip():
        raise _refuse("Upload the key file or paste its JSON.")
    if len(data) > MAX_KEY_BYTES:
        raise _refuse(
            f"The key is larger than {MAX_KEY_BYTES // 1024} KiB; "
            "a Google service-account key file is about 2.3 KiB."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse("The key is not a text file (UTF-8 JSON).") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the decoder's message could quote the document.
        raise _refuse(
            f"The key is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise _refuse("The key is not valid JSON (nested too deeply).") from None
    if not isinstance(parsed, dict):
        raise _refuse("The key must be a JSON object, as in the file Google downloads.")
    if parsed.get("type") != "service_account":
        raise _refuse(
            'The key\'s "type" must be "service_account". OAuth client files and user '
            "credentials are not service-account keys."
        )
    client_email = _string(parsed, "client_email")
    if len(client_email) > 254 or not _EMAIL.match(client_email):
        raise _refuse('The key\'s "client_email" is not an email address.')
    private_key_id = _string(parsed, "private_key_id")
    if not _KEY_ID.match(private_key_id):
        raise _refuse('The key\'s "private_key_id" is not a key id.')
    _check_private_key(_string(parsed, "private_key"))
    token_uri = _string(parsed, "token_uri")
    check_token_uri(token_uri, allow_loopback_http=allow_loopback_http)
    project_id = _string(parsed, "project_id")
    if not _PROJECT_ID.match(project_id):
        raise _refuse('The key\'s "project_id" is not a Google Cloud project id.')
    universe = parsed.get("universe_domain", DEFAULT_UNIVERSE_DOMAIN)
    if universe != DEFAULT_UNIVERSE_DOMAIN:
        raise _refuse(f'The key\'s "universe_domain" must be "{DEFAULT_UNIVERSE_DOMAIN}".')
    return ServiceAccountKeyInfo(
        client_email=client_email,
        project_id=project_id,
        private_key_id=private_key_id,
        token_uri=token_uri,
        # Stored as uploaded (minus a BOM): apps get the file Google made.
        text=text,
    )


def parse_project_number(raw: str) -> str:
    """A GCP project number: digits only (the console's project dashboard shows it
    next to the project id). Spaces around it are ignored."""
    value = (raw or "").strip()
    if not _PROJECT_NUMBER.match(value):
        raise _refuse(
            "The project number is digits only (e.g. 123456789012): find it on the "
            "project's dashboard in the Google Cloud console."
        )
    return value
