"""Where a manifest is wrong: problems with line, column and path, and the error
that carries them. Pure."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NoReturn, Protocol


class Position(Protocol):
    """A PyYAML mark (pure-Python or libyaml's): 0-based line and column."""

    line: int
    column: int


# --- results and errors -------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProblem:
    """One error or warning: where it is and what is wrong.

    ``line`` and ``column`` are 1-based (columns count characters). ``path`` locates
    the value inside the document: ``secrets[0].key``, ``resources.gpu.count``; a key
    that is not a plain identifier is quoted (``metadata['a.b']``); ``""`` is the
    document itself (syntax errors, size and alias limits, tags).
    """

    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(Exception):
    """The manifest was refused; ``problems`` lists every error found, in document order.

    ``str()`` gives one ``LINE:COL: path: message`` line per problem. Like an
    ``IntegrationError`` it knows its API answer: ``status``, ``code``, ``payload()``
    (the problems, nothing kept) and ``headers()``.
    """

    status: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_manifest"

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def payload(self) -> dict[str, Any]:
        return {
            "detail": "The manifest was refused and not kept.",
            "valid": False,
            "errors": [dataclasses.asdict(p) for p in self.problems],
        }

    def headers(self) -> dict[str, str]:
        return {}


def problem_at(mark: Position | None, path: str, message: str) -> ManifestProblem:
    if mark is None:
        return ManifestProblem(1, 1, path, message)
    return ManifestProblem(mark.line + 1, mark.column + 1, path, message)


def refuse_at(mark: Position | None, message: str) -> NoReturn:
    raise ManifestError([problem_at(mark, "", message)])


_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def join_path(path: str, key: str) -> str:
    """``path.key``, or ``path['odd key']`` when the key would be ambiguous or span lines."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def in_document_order(problems: list[ManifestProblem]) -> list[ManifestProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column))
