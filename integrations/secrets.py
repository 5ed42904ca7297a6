"""Users' secrets (``FAL_KEY``): write-only values, encrypted, audited by key and
fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from integrations import app_settings
from integrations.app_authorization import secret_authorizations_delete
from integrations.audit import audit_record
from integrations.core import crypto
from integrations.core.secret_rules import check_secret_key, check_secret_value
from integrations.models import AuditEvent, Secret
from integrations.providers import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class SecretSetResult:
    secret: Secret
    replaced: bool  # the key existed and its value was replaced


@sensitive_variables("value")
@transaction.atomic
def secret_set(*, user: User, key: str, value: str) -> SecretSetResult:
    """Add or replace the user's secret ``key`` (``secret_rules``: an env-style key, a
    non-empty value of at most 16 KiB, a key no integration hands out; ``InvalidSecretError``
    otherwise). The value is encrypted; only its fingerprint is kept in clear. Audited
    (key and fingerprint, never the value)."""
    check_secret_key(key, reserved=registry.reserved_env_names())
    check_secret_value(value, key=key)
    secret, created = Secret.objects.update_or_create(
        user=user,
        key=key,
        defaults={
            "value_encrypted": crypto.encrypt(value, keys=app_settings.token_keys()),
            "fingerprint": crypto.fingerprint(value),
        },
    )
    audit_record(
        kind=AuditEvent.Kind.SECRET_SET,
        provider="secrets",
        user=user,
        account=key,
        detail={"key": key, "fingerprint": secret.fingerprint, "replaced": not created},
    )
    return SecretSetResult(secret=secret, replaced=not created)


@transaction.atomic
def secret_delete(*, secret: Secret) -> None:
    """Delete a secret (got through ``selectors.secret_for_user``). Audited."""
    audit_record(
        kind=AuditEvent.Kind.SECRET_DELETED,
        provider="secrets",
        user=secret.user,
        account=secret.key,
        detail={"key": secret.key, "fingerprint": secret.fingerprint},
    )
    # A value added again under this key is a new secret: apps must be allowed again.
    secret_authorizations_delete(user=secret.user, key=secret.key)
    secret.delete()


def secret_value(*, secret: Secret) -> str:
    """The secret in clear: only for a run environment; never log it."""
    return crypto.decrypt(secret.value_encrypted, keys=app_settings.token_keys())
