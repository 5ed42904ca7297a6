"""`manage.py rotate_token_keys`: re-encrypt every stored token under the first key of
INTEGRATIONS_TOKEN_KEYS. Rotation (docs/secrets.md): the new key added second everywhere,
then first everywhere, then this, then the old key dropped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations import key_rotation
from integrations.core import crypto


class Command(BaseCommand):
    help = "Re-encrypt every stored token and secret under the first INTEGRATIONS_TOKEN_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = key_rotation.encryption_keys_rotate()
        except (crypto.DecryptionError, crypto.KeyConfigurationError) as exc:
            raise CommandError(f"{exc}. Nothing after the failing batch was changed.") from exc
        done = ", ".join(f"{n} {name}" for name, n in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted under the first key: {done}."))
