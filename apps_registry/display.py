"""Presentation helpers for the pages: a manifest's lines with their problems. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apps_registry.manifest import ManifestProblem, split_lines


@dataclass
class Line:
    number: int
    text: str
    problems: list[ManifestProblem] = field(default_factory=list)

    @property
    def parts(self) -> tuple[str, str, str]:
        """The text before, at and after the column of the line's first problem, so that
        the page can mark the character it points at (``("", "", text)`` without one,
        or when the column is past the end of the line)."""
        if not self.problems:
            return "", "", self.text
        index = max(self.problems[0].column, 1) - 1
        if index >= len(self.text):
            return self.text, "", ""
        return self.text[:index], self.text[index], self.text[index + 1 :]


def annotate_lines(text: str, problems: Iterable[ManifestProblem]) -> list[Line]:
    """``text`` split into numbered lines, each with the problems reported on it.

    A problem past the last line (the end of the document) goes with the last line.
    """
    lines = [Line(number=i, text=t) for i, t in enumerate(split_lines(text), start=1)]
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
