"""``python manage.py create_api_token --user EMAIL --name NAME``: make an API token
for CI uploads and print it, once. Only its hash is stored."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps_registry import selectors, services


class Command(BaseCommand):
    help = "Create an API token for a user and print it (shown once; only a hash is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, metavar="EMAIL", help="the user's email")
        parser.add_argument("--name", required=True, help="what the token is for")

    def handle(self, *args: Any, **options: Any) -> None:
        user = selectors.user_by_email(email=options["user"])
        if user is None:
            raise CommandError(f"No user has the email address {options['user']!r}.")
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        row, token = services.api_token_create(user=user, name=name)
        if options["verbosity"] >= 1:
            self.stderr.write(
                f"API token {row.name!r} ({row.prefix}…) for {user.get_username()}. "
                "Copy it now: it is not shown again."
            )
        # The token alone on stdout, so that scripts can capture it.
        self.stdout.write(token)
