"""System checks of the integrations settings (``manage.py check``, and every
``runserver``/``migrate``): a deployment with unusable encryption keys refuses to start
instead of failing at the first token it stores or reads.

https://docs.djangoproject.com/en/stable/topics/checks/
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from integrations import app_settings
from integrations.core import crypto

_MAKE_A_KEY = (
    'Make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())" and set INTEGRATIONS_TOKEN_KEYS to it '
    "(comma-separated; the first encrypts, all decrypt)."
)


@register()
def token_keys_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRATIONS_TOKEN_KEYS`` is a non-empty list of Fernet keys (32 url-safe
    base64-encoded bytes, https://cryptography.io/en/latest/fernet/). The message names
    the position of a bad key, never its value."""
    keys = app_settings.token_keys()
    if not keys:
        return [
            Error("INTEGRATIONS_TOKEN_KEYS is empty.", hint=_MAKE_A_KEY, id="integrations.E001")
        ]
    errors: list[CheckMessage] = []
    for position, key in enumerate(keys, start=1):
        try:
            crypto.encrypt("", keys=[key])
        except crypto.KeyConfigurationError:
            errors.append(
                Error(
                    f"INTEGRATIONS_TOKEN_KEYS: key {position} of {len(keys)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    hint=_MAKE_A_KEY,
                    id="integrations.E002",
                )
            )
    return errors
