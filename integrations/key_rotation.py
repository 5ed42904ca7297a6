"""Re-encrypt every stored token and secret under the first key of
``INTEGRATIONS_TOKEN_KEYS`` (``manage.py rotate_token_keys``)."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.db import models, transaction

from integrations import app_settings
from integrations.core import crypto
from integrations.models import (
    Connection,
    ProviderDefinition,
    Secret,
    ServiceAccountKey,
    UserOAuthClient,
    WebhookEndpoint,
)

# Every encrypted column, by model: what `rotate_token_keys` rewrites.
ENCRYPTED_FIELDS: list[tuple[type[models.Model], tuple[str, ...]]] = [
    (Connection, ("access_token_encrypted", "refresh_token_encrypted")),
    (Secret, ("value_encrypted",)),
    (ServiceAccountKey, ("key_encrypted",)),
    (ProviderDefinition, ("client_secret_encrypted",)),
    (UserOAuthClient, ("client_secret_encrypted",)),
    (WebhookEndpoint, ("secret_encrypted",)),
]


def encryption_keys_rotate(*, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every stored token and secret under the first key of
    ``INTEGRATIONS_TOKEN_KEYS``.

    Batches under row locks, so that a concurrent refresh never writes a token that
    this then overwrites with an older one. Returns rows rewritten per model.
    """
    keys = app_settings.token_keys()
    done: dict[str, int] = {}
    for model, fields in ENCRYPTED_FIELDS:

        def columns(row: models.Model, fields: tuple[str, ...] = fields) -> None:
            changed = [f for f in fields if getattr(row, f)]
            for name in changed:
                setattr(row, name, crypto.rotate(getattr(row, name), keys=keys))
            row.save(update_fields=changed)

        done[str(model._meta.verbose_name_plural)] = _in_locked_batches(
            model, columns, batch_size=batch_size
        )

    def again(value: str) -> str:
        return crypto.rotate(value.encode("ascii"), keys=keys).decode("ascii")

    def second_factor(row: models.Model) -> None:
        data = dict(row.data)  # type: ignore[attr-defined]
        for name in _AUTHENTICATOR_VALUES:
            if isinstance(data.get(name), str):
                data[name] = again(data[name])
        for name in _AUTHENTICATOR_LISTS:
            if isinstance(data.get(name), list):
                data[name] = [again(v) for v in data[name]]
        row.data = data  # type: ignore[attr-defined]
        row.save(update_fields=["data"])

    done["authenticators"] = _in_locked_batches(Authenticator, second_factor, batch_size=batch_size)
    return done


# The values allauth.mfa keeps encrypted in ``Authenticator.data`` (through
# ``config.mfa_adapter``): the TOTP secret, the recovery codes' seed, and the codes
# migrated from another library, a list.
_AUTHENTICATOR_VALUES = ("secret", "seed")
_AUTHENTICATOR_LISTS = ("migrated_codes",)


def _in_locked_batches(
    model: type[models.Model], rewrite: Callable[[models.Model], None], *, batch_size: int
) -> int:
    """``rewrite`` every row of ``model``, in primary-key batches each under its row
    locks; returns the number of rows."""
    count = 0
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(
                model._default_manager.select_for_update()
                .filter(pk__gt=last_id)
                .order_by("pk")[:batch_size]
            )
            if not batch:
                return count
            for row in batch:
                rewrite(row)
            count += len(batch)
            last_id = batch[-1].pk
