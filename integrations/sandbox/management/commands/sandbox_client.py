"""``manage.py sandbox_client --redirect-uri URL...``: make sure the sandbox's Google
client exists and accepts these redirect URIs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.sandbox.services import sandbox_client_ensure


class Command(BaseCommand):
    help = "Create or update the sandbox's Google OAuth client and add redirect URIs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--redirect-uri",
            dest="redirect_uris",
            nargs="+",
            action="extend",
            default=[],
            metavar="URL",
            help="A redirect URI to accept (repeatable); registered ones are kept.",
        )

    def handle(self, *args: Any, redirect_uris: list[str], **options: Any) -> None:
        app = sandbox_client_ensure(redirect_uris=redirect_uris)
        # The client secret is never printed: it is in the settings of whoever needs it.
        self.stdout.write(f"client_id: {app.client_id}")
        for uri in app.redirect_uris.split():
            self.stdout.write(f"redirect_uri: {uri}")
