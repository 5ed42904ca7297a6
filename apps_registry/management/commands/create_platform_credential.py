"""`manage.py create_platform_credential NAME --scope connections:read
[--scope connections:write] [--expires-in DAYS]`: make a platform credential for the
connections API; the token is printed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps_registry import services
from apps_registry.errors import PlatformCredentialError
from apps_registry.models import PlatformCredential


class Command(BaseCommand):
    help = (
        "Create a platform credential for the connections API with --scope "
        "connections:read and/or --scope connections:write, and print its token once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Which platform backend, e.g. acme-backend")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            dest="scopes",
            choices=PlatformCredential.SCOPES,
            help="A scope of the credential (repeat for both).",
        )
        parser.add_argument(
            "--expires-in",
            type=int,
            metavar="DAYS",
            help="The credential stops working after DAYS.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["expires_in"]
        if days is not None and days < 1:
            raise CommandError("--expires-in takes a number of days, at least 1.")
        if not options["scopes"]:
            raise CommandError(
                "Give the credential its scopes: --scope connections:read and/or "
                "--scope connections:write."
            )
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            _, token = services.platform_credential_create(
                name=options["name"], scopes=options["scopes"], expires_at=expires_at
            )
        except PlatformCredentialError as exc:
            raise CommandError(str(exc)) from None
        # Only stdout, for a script to capture; never logged.
        self.stdout.write(token)
