"""Token generators and lifetime for the sandbox's OAuth server.

Imported from settings (``config/settings/local.py``), so it imports no models and
reads settings only when called.

oauthlib's ``BearerToken.create_token`` calls ``token_generator(request)`` and
``refresh_token_generator(request)`` with the oauthlib request only, and calls
``expires_in(request)`` when it is callable
(``oauthlib/oauth2/rfc6749/tokens.py``). The default generator's signature is
``(request, refresh_token=False)``; ours accept both forms.
"""

from __future__ import annotations

import secrets
from typing import Any

ACCESS_TOKEN_PREFIX = "sbx-at-"
REFRESH_TOKEN_PREFIX = "sbx-rt-"


def _random_part() -> str:
    # 32 random bytes are 43 URL-safe base64 characters.
    return secrets.token_urlsafe(32)


def access_token(request: Any, refresh_token: bool = False) -> str:
    """A new access token, recognisable in a leaked log by its ``sbx-at-`` prefix."""
    return ACCESS_TOKEN_PREFIX + _random_part()


def refresh_token(request: Any, refresh_token: bool = True) -> str:
    """A new refresh token, recognisable by its ``sbx-rt-`` prefix."""
    return REFRESH_TOKEN_PREFIX + _random_part()


def expires_in(request: Any) -> int:
    """Access-token lifetime in seconds: ``SANDBOX_ACCESS_TOKEN_SECONDS``.

    Read on every call, so ``override_settings`` in a test changes it.
    """
    from django.conf import settings

    return int(settings.SANDBOX_ACCESS_TOKEN_SECONDS)
