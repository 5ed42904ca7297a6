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


@register()
def token_keys_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRATIONS_TOKEN_KEYS`` is a non-empty list of Fernet keys
    (``crypto.key_problems``: a bad key is named by its position, never its value)."""
    keys = app_settings.token_keys()
    code = "integrations.E001" if not keys else "integrations.E002"
    return [Error(p, hint=crypto.MAKE_A_KEY, id=code) for p in crypto.key_problems(keys)]


@register()
def app_authorization_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRATIONS_APP_AUTHORIZATION`` is ``per_app`` or ``declared``: a typo must not
    silently hand apps everything (or nothing)."""
    mode = app_settings.app_authorization()
    if mode in app_settings.APP_AUTHORIZATION_MODES:
        return []
    return [
        Error(
            f"INTEGRATIONS_APP_AUTHORIZATION is {mode!r}",
            hint="Set it to 'per_app' (apps get what each user allowed them) or 'declared'.",
            id="integrations.E003",
        )
    ]


@register()
def google_user_clients_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRATIONS_GOOGLE_USER_CLIENTS`` (env ``GOOGLE_USER_CLIENTS``) is ``off``,
    ``allowed`` or ``required``: a typo must not silently open (or close) users' own
    clients."""
    mode = app_settings.google_user_clients()
    if mode in app_settings.GOOGLE_USER_CLIENT_MODES:
        return []
    return [
        Error(
            f"INTEGRATIONS_GOOGLE_USER_CLIENTS is {mode!r}",
            hint="Set GOOGLE_USER_CLIENTS to 'off' (the platform's client only), 'allowed' "
            "(users may add their own Google OAuth client) or 'required'.",
            id="integrations.E004",
        )
    ]
