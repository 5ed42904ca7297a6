"""`manage.py create_runner_token NAME`: make a runner token and print it once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps_registry import services


class Command(BaseCommand):
    help = "Create a runner token for the run environment API; it is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Which runner, e.g. runner-eu-1")

    def handle(self, *args: Any, **options: Any) -> None:
        _, token = services.runner_token_create(name=options["name"])
        # Only stdout, for a script to capture; never logged.
        self.stdout.write(token)
