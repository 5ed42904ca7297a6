"""Authenticated encryption of tokens and secrets at rest.

Pure: no models. Fernet (AES-128-CBC + HMAC-SHA256) through ``MultiFernet`` over
``INTEGRATIONS_TOKEN_KEYS``: the first key encrypts, every key decrypts, so keys
rotate in stages that never leave a process unable to read (docs/secrets.md): the new
key added second everywhere, then first, then ``manage.py rotate_token_keys``, then the
old one dropped. https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from integrations.errors import IntegrationError


class KeyConfigurationError(Exception):
    """The encryption keys are missing or malformed: a configuration error (as Django's
    ``ImproperlyConfigured``), found by the system check at start, not an answer to a
    request; outside ``IntegrationError`` so that no ``except IntegrationError`` can
    take it for a provider's refusal."""


class DecryptionError(IntegrationError):
    """A stored value could not be decrypted with any configured key:
    ``INTEGRATIONS_TOKEN_KEYS`` lost the key it was written under, staff's to fix."""

    status = 503
    code = "undecryptable"
    refused_as = None
    log_level = logging.ERROR

    def payload(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "detail": "a stored credential does not decrypt with the configured keys",
        }


# How to make a key, for every message about a missing or malformed one.
MAKE_A_KEY = (
    'Make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())" and set INTEGRATIONS_TOKEN_KEYS to it '
    "(comma-separated; the first encrypts, all decrypt)."
)


def key_problems(keys: Sequence[str]) -> list[str]:
    """What is wrong with ``INTEGRATIONS_TOKEN_KEYS`` (empty: nothing): each bad key
    named by its position, never by its value (https://cryptography.io/en/latest/fernet/).
    """
    if not keys:
        return ["INTEGRATIONS_TOKEN_KEYS is not set."]
    problems = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError, AttributeError):
            problems.append(
                f"INTEGRATIONS_TOKEN_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            )
    return problems


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise KeyConfigurationError("INTEGRATIONS_TOKEN_KEYS is empty. " + MAKE_A_KEY)
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        # Never echo the key material itself.
        raise KeyConfigurationError(
            "INTEGRATIONS_TOKEN_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from exc


def encrypt(plaintext: str, *, keys: Sequence[str]) -> bytes:
    """Encrypt ``plaintext`` under the first of ``keys``."""
    return _multifernet(tuple(keys)).encrypt(plaintext.encode())


def decrypt(ciphertext: bytes | memoryview, *, keys: Sequence[str]) -> str:
    """Decrypt a value written under any of ``keys``; ``DecryptionError`` otherwise."""
    try:
        return _multifernet(tuple(keys)).decrypt(bytes(ciphertext)).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored value does not decrypt with any configured key") from exc


def rotate(ciphertext: bytes | memoryview, *, keys: Sequence[str]) -> bytes:
    """Re-encrypt a value under the first of ``keys`` (it may have been under any)."""
    try:
        return _multifernet(tuple(keys)).rotate(bytes(ciphertext))
    except InvalidToken as exc:
        raise DecryptionError("stored value does not decrypt with any configured key") from exc


def fingerprint(plaintext: str) -> str:
    """A short, non-reversible tag for a secret value: enough to tell two apart, not to
    guess one (8 hex digits of SHA-256)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()[:8]
