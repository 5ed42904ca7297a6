"""A YAML syntax error in plain words, at the line the uploader has to fix. Pure.

PyYAML and libyaml word their errors for YAML experts, and differently
(``expected <block end>, but found '-'`` is libyaml's ``did not find expected key``).
:func:`problem_from_yaml_error` reads what both say (the parser's context and
problem) together with the text at the error's mark, and says what is wrong in the
uploader's terms: "a list item is not indented like the lines before it". An error
it does not recognise keeps the parser's words: "this line is not valid YAML (...)".

An error about something never closed (a quote, a ``[``, a key without ``:``) is
placed where that thing starts, not where the parser gave up (often the end of the
document).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import yaml

from apps_registry.manifest.problems import ManifestProblem, Position, problem_at

# Line breaks as YAML parsers count them (PyYAML and libyaml alike), so that a
# problem's line number points at the line shown with that number.
_LINE_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    """``text``'s lines as a YAML parser numbers them (index 0 is line 1)."""
    return _LINE_BREAK.split(text)


_UNCLOSED: Final = {
    "while scanning a quoted scalar": "a quoted value is never closed: add the closing quote",
    "while parsing a flow sequence": (
        "a list opened with '[' here is never closed: add ']' after its last item"
    ),
    "while parsing a flow mapping": (
        "a mapping opened with '{' here is never closed: add '}' after its last entry"
    ),
    "while scanning a simple key": "this line has no ':' after its key (write key: value)",
}


def problem_from_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> ManifestProblem:
    """The problem of a syntax error of ``text``: its 1-based line and column and a
    message in plain words (see the module's docstring)."""
    context = exc.context or ""
    problem = exc.problem or ""
    if context in _UNCLOSED and exc.context_mark is not None:
        return problem_at(exc.context_mark, "", _UNCLOSED[context])
    mark = exc.problem_mark or exc.context_mark
    line = _line_at(text, mark)
    column = mark.column if mark is not None else 0
    for explain in _EXPLAINERS:
        words = explain(context, problem, line, column)
        if words:
            return problem_at(mark, "", words)
    parts = [p for p in (context, problem) if p]
    return problem_at(mark, "", f"this line is not valid YAML ({', '.join(parts) or 'unknown'})")


def _line_at(text: str, mark: Position | None) -> str:
    if mark is None:
        return ""
    lines = split_lines(text)
    return lines[mark.line] if 0 <= mark.line < len(lines) else ""


def _misplaced_in_mapping(context: str, problem: str, line: str, column: int) -> str:
    """``did not find expected key`` / ``expected <block end>``: the line does not
    continue the mapping above it."""
    if context != "while parsing a block mapping":
        return ""
    if line[:column].strip():
        return (
            "there is more text after the value on this line: put the whole value in quotes, "
            "or move the rest to its own line"
        )
    if line[column:].startswith("-"):
        return "a list item is not indented like the lines before it"
    return "this line is not indented like the lines before it"


def _misplaced_in_list(context: str, problem: str, line: str, column: int) -> str:
    """``did not find expected '-' indicator``: the line does not continue the list."""
    if context != "while parsing a block collection":
        return ""
    return (
        "this line does not continue the list above it: start it with '- ' like the items "
        "before it, or indent it under one of them"
    )


def _colon(context: str, problem: str, line: str, column: int) -> str:
    """``mapping values are not allowed here``: a ``:`` where no key can start."""
    if not problem.startswith("mapping values are not allowed"):
        return ""
    before = line[:column]
    if ": " in before.strip() or before.rstrip().endswith(":"):
        return "the value contains ': ': put the whole value in quotes"
    return (
        "this line is indented under a value that cannot hold keys: indent it like the "
        "key it belongs with"
    )


def _bad_start(context: str, problem: str, line: str, column: int) -> str:
    """A character no token starts with: a tab, or ``%``, ``@`` and `````."""
    if "cannot start any token" not in problem:
        return ""
    found = line[column : column + 1]
    if found == "\t":
        return "a tab is used here: YAML indents with spaces only"
    shown = f"'{found}'" if found else "this character"
    return f"a value cannot start with {shown}: put the whole value in quotes"


def _bad_content(context: str, problem: str, line: str, column: int) -> str:
    """``expected the node content``: a value starting with a closing bracket, or the
    end of the document where a value of an open ``[`` or ``{`` should be."""
    if context not in ("while parsing a block node", "while parsing a flow node"):
        return ""
    found = line[column : column + 1]
    if not found.strip():
        return "the manifest ends inside a list ('[') or mapping ('{'): close it"
    return f"a value cannot start with '{found}': put the whole value in quotes"


def _escape(context: str, problem: str, line: str, column: int) -> str:
    if not problem.startswith("found unknown escape character"):
        return ""
    return (
        "a double-quoted value has an unknown escape after '\\': write \\\\ for a "
        "backslash, or use single quotes"
    )


def _anchor(context: str, problem: str, line: str, column: int) -> str:
    if context not in ("while scanning an anchor", "while scanning an alias"):
        return ""
    sign = "&" if "anchor" in context else "*"
    return f"'{sign}' starts an {context.rsplit(' ', 1)[-1]} name here: put the value in quotes"


def _two_documents(context: str, problem: str, line: str, column: int) -> str:
    if not context.startswith("expected a single document"):
        return ""
    return (
        "a manifest is one document: this '---' starts a second one (expected a single "
        "document); remove it"
    )


_EXPLAINERS: Final[tuple[Callable[[str, str, str, int], str], ...]] = (
    _misplaced_in_mapping,
    _misplaced_in_list,
    _colon,
    _bad_start,
    _bad_content,
    _escape,
    _anchor,
    _two_documents,
)
