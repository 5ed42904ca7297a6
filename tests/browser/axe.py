"""axe-core (tests/browser/package.json, `npm ci --prefix tests/browser`) in a Playwright
page: the serious and critical violations of the page as it stands.

The script is evaluated through the DevTools protocol, as Playwright's `evaluate` does,
so the page's Content-Security-Policy does not block it (nor report it)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SEVERE = ("serious", "critical")


@cache
def _source() -> str | None:
    return AXE_JS.read_text(encoding="utf-8") if AXE_JS.is_file() else None


def severe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe on ``page``; its violations of impact serious or critical, each as
    ``{"id", "impact", "help", "targets"}``. Skips the test when axe-core is not
    installed (under CI_NO_SKIPS=1 a skip fails the run: tests/conftest.py)."""
    source = _source()
    if source is None:
        pytest.skip("axe-core is not installed (npm ci --prefix tests/browser)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "targets": [n["target"] for n in v["nodes"]][:5],
        }
        for v in violations
        if v["impact"] in SEVERE
    ]
