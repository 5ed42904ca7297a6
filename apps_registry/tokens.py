"""API token strings and their hashes. Pure.

A token is ``ihub_`` followed by 43 URL-safe characters (256 random bits). Only its
SHA-256 hash is stored; its first characters (``prefix_of``) tell tokens apart in
lists and are not enough to use one.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "ihub_"
# "ihub_" and 6 more characters: about 36 bits, plenty to recognise one's own tokens.
_SHOWN_CHARS = len(API_TOKEN_PREFIX) + 6


def make_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def prefix_of(token: str) -> str:
    return token[:_SHOWN_CHARS]


def hash_api_token(token: str) -> str:
    """The SHA-256 hex digest kept instead of the token. Tokens carry 256 random bits,
    so a fast hash is enough (no password-style stretching is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


RUNNER_TOKEN_PREFIX = "ihub_run_"


def make_runner_token() -> str:
    return RUNNER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def runner_prefix_of(token: str) -> str:
    return token[: len(RUNNER_TOKEN_PREFIX) + 6]


PLATFORM_TOKEN_PREFIX = "ihp_"


def make_platform_token() -> str:
    return PLATFORM_TOKEN_PREFIX + secrets.token_urlsafe(32)


def platform_prefix_of(token: str) -> str:
    return token[: len(PLATFORM_TOKEN_PREFIX) + 6]
