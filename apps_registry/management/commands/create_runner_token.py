"""`manage.py create_runner_token NAME --namespace NS... | --all-namespaces
[--expires-in DAYS] [--rotate]`: make a runner (with its scope) and its token, or with
``--rotate`` a second token for an existing runner; the token is printed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps_registry import selectors, services
from apps_registry.errors import RunnerTokenError


class Command(BaseCommand):
    help = (
        "Create a runner for the run environment API, scoped to --namespace NS (repeatable) "
        "or --all-namespaces, and print its token once. --rotate: a second token for an "
        "existing runner (its current one stays valid until revoked)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Which runner, e.g. runner-eu-1")
        parser.add_argument(
            "--namespace",
            action="append",
            default=[],
            dest="namespaces",
            help="A namespace whose apps the runner may serve (repeat for more).",
        )
        parser.add_argument(
            "--all-namespaces",
            action="store_true",
            help="The runner may serve the apps of every namespace.",
        )
        parser.add_argument(
            "--expires-in", type=int, metavar="DAYS", help="The token stops working after DAYS."
        )
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Issue a second token for the existing runner NAME (its scope is kept).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["expires_in"]
        if days is not None and days < 1:
            raise CommandError("--expires-in takes a number of days, at least 1.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            if options["rotate"]:
                if options["namespaces"] or options["all_namespaces"]:
                    raise CommandError(
                        "--rotate keeps the runner's scope: change the scope in the admin "
                        "(Runners), not with --namespace or --all-namespaces."
                    )
                runner = selectors.runner_by_name(name=options["name"])
                if runner is None:
                    raise CommandError(
                        f"No runner is named {options['name']}: create it without --rotate."
                    )
                _, token = services.runner_token_issue(runner=runner, expires_at=expires_at)
            else:
                if not options["namespaces"] and not options["all_namespaces"]:
                    raise CommandError(
                        "Give the runner a scope: --namespace NS (repeatable) for the "
                        "namespaces whose apps it may serve, or --all-namespaces."
                    )
                _, token = services.runner_token_create(
                    name=options["name"],
                    namespaces=options["namespaces"],
                    all_namespaces=options["all_namespaces"],
                    expires_at=expires_at,
                )
        except RunnerTokenError as exc:
            raise CommandError(str(exc)) from None
        # Only stdout, for a script to capture; never logged.
        self.stdout.write(token)
