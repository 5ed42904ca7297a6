"""Presentation helpers for the pages: a manifest's lines with their problems. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps_registry.manifest import ManifestProblem

# Line breaks as YAML parsers count them (PyYAML and libyaml alike), so that a
# problem's line number points at the line shown with that number.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass
class Line:
    number: int
    text: str
    problems: list[ManifestProblem] = field(default_factory=list)


def annotate_lines(text: str, problems: Iterable[ManifestProblem]) -> list[Line]:
    """``text`` split into numbered lines, each with the problems reported on it.

    A problem past the last line (the end of the document) goes with the last line.
    """
    lines = [Line(number=i, text=t) for i, t in enumerate(_LINE_BREAK.split(text), start=1)]
    for problem in problems:
        index = min(max(problem.line, 1), len(lines)) - 1
        lines[index].problems.append(problem)
    return lines


def describe_problem(problem: ManifestProblem) -> str:
    """``Line 3, column 5: integrations[0].key: message``."""
    where = f"Line {problem.line}, column {problem.column}"
    return (
        f"{where}: {problem.path}: {problem.message}"
        if problem.path
        else (f"{where}: {problem.message}")
    )
