"""`manage.py integrations list [--json]`: the capability catalogue, like
`infsh integrations list`."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.core import catalogue


class Command(BaseCommand):
    help = "Inspect the integrations catalogue."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        lister = sub.add_parser("list", help="List every capability key an app can declare.")
        lister.add_argument("--json", action="store_true", help="Print a JSON list of objects.")
        lister.add_argument("--provider", help="Only this provider's capabilities.")

    def handle(self, *args: Any, **options: Any) -> None:
        caps = [
            c
            for c in catalogue.CAPABILITIES
            if not options.get("provider") or c.provider == options["provider"]
        ]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    [
                        {
                            "key": c.key,
                            "provider": c.provider,
                            "label": c.label,
                            "description": c.description,
                            "scopes": list(c.scopes),
                            "covers": list(c.covers),
                            "restricted": c.restricted,
                            "kind": str(c.kind),
                        }
                        for c in caps
                    ],
                    indent=2,
                )
            )
            return
        rows = [("KEY", "PROVIDER", "DESCRIPTION", "SCOPES")] + [
            (
                c.key + (" *" if c.restricted else ""),
                c.provider,
                c.description,
                " ".join(s.removeprefix(catalogue.GOOGLE_SCOPE_PREFIX) for s in c.scopes) or "—",
            )
            for c in caps
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
            )
        self.stdout.write(
            f"\n{len(caps)} capabilities. * restricted Google scope (needs Google's verification). "
            f"Google scopes are under {catalogue.GOOGLE_SCOPE_PREFIX}"
        )
