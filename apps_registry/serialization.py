"""Manifests and problems as JSON, for ``ManifestVersion``'s JSON columns and the API.

Pure. The JSON is strict (RFC 8259), as PostgreSQL's ``jsonb`` wants: a manifest may
hold values JSON cannot (``.nan``, ``.inf``, a 20,000-digit ``0x`` integer in
``metadata``), and those are stored as strings.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from apps_registry.manifest import Manifest, ManifestProblem, Requirement

# Integers outside a signed 64-bit range are kept as strings: JSON readers (and
# JavaScript) lose them otherwise, and Python refuses str() of very long ones.
_INT_LIMIT = 2**63


def problem_as_json(problem: ManifestProblem) -> dict[str, Any]:
    return {
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": problem.message,
    }


def problems_as_json(problems: Any) -> list[dict[str, Any]]:
    return [problem_as_json(p) for p in problems]


def problems_from_json(data: Any) -> list[ManifestProblem]:
    """The problems stored by :func:`problems_as_json` (anything malformed is skipped)."""
    result = []
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, dict):
            result.append(
                ManifestProblem(
                    line=int(entry.get("line", 1)),
                    column=int(entry.get("column", 1)),
                    path=str(entry.get("path", "")),
                    message=str(entry.get("message", "")),
                )
            )
    return result


def manifest_as_json(manifest: Manifest) -> dict[str, Any]:
    """``manifest`` as strict JSON data: its fields, warnings included."""
    data = _jsonable(dataclasses.asdict(manifest))
    assert isinstance(data, dict)
    return data


def requirements_from_json(parsed: Any, field: str) -> tuple[Requirement, ...]:
    """The ``secrets`` or ``integrations`` of a manifest stored by :func:`manifest_as_json`."""
    entries = parsed.get(field) if isinstance(parsed, dict) else None
    result = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            result.append(
                Requirement(
                    key=entry["key"],
                    description=str(entry.get("description") or ""),
                    optional=entry.get("optional") is True,
                )
            )
    return tuple(result)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT < value < _INT_LIMIT:
            return value
        try:
            return str(value)
        except ValueError:  # over Python's int-to-str digit limit
            return hex(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return str(value)
