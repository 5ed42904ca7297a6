"""``python manage.py validate_manifest FILE...``: check inf.yml files, like a compiler.

Prints ``FILE:LINE:COL: path: message`` for each error and
``FILE:LINE:COL: warning: path: message`` for each warning, and exits 0 when every
file is valid (warnings allowed), 1 otherwise. Needs no database.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps_registry.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    ManifestProblem,
    parse_manifest,
)


def _line(file: str, problem: ManifestProblem, *, warning: bool = False) -> str:
    where = f"{file}:{problem.line}:{problem.column}:"
    kind = " warning:" if warning else ""
    path = f" {problem.path}:" if problem.path else ""
    return f"{where}{kind}{path} {problem.message}"


class Command(BaseCommand):
    help = "Validate inf.yml manifests; print FILE:LINE:COL: message per problem."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="inf.yml files ('-': stdin)")

    def handle(self, *args: Any, **options: Any) -> None:
        invalid = 0
        for file in options["files"]:
            try:
                data = self._read(file)
            except OSError as exc:
                self.stdout.write(f"{file}:1:1: cannot read the file: {exc.strerror or exc}")
                invalid += 1
                continue
            try:
                manifest = parse_manifest(data)
            except ManifestError as exc:
                invalid += 1
                for problem in exc.problems:
                    self.stdout.write(_line(file, problem))
                continue
            for warning in manifest.warnings:
                self.stdout.write(_line(file, warning, warning=True))
            if options["verbosity"] >= 2:
                self.stdout.write(f"{file}: ok")
        if invalid:
            if options["verbosity"] >= 1:
                files = len(options["files"])
                self.stderr.write(f"{invalid} of {files} file{'s' if files != 1 else ''} invalid")
            sys.exit(1)

    def _read(self, file: str) -> bytes:
        """At most one byte over the limit: the parser refuses a longer file anyway."""
        if file == "-":
            return sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1)
        with Path(file).open("rb") as fh:
            return fh.read(MAX_MANIFEST_BYTES + 1)
