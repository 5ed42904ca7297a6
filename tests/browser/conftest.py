"""Playwright driving Debian's chromium (headless) against a live server.

A test tool's own browser download does not work on these machines: the executable
is Debian's (`PLAYWRIGHT_CHROMIUM_EXECUTABLE`, default /usr/bin/chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chromium() -> str | None:
    return os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if not executable:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make between browser steps are still plain synchronous calls.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


# Runs in every page before its own scripts (Playwright injects it past the policy):
# each `securitypolicyviolation` event is reported to the test.
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolation({
    page: document.location.href,
    directive: e.effectiveDirective,
    blocked: e.blockedURI,
    sample: e.sample,
  });
});
"""


class PolicyWatch:
    """The Content-Security-Policy violations a browser context met: the
    `securitypolicyviolation` events of its pages and the console's errors about the
    policy (or a malformed Permissions-Policy). The test settings send production's
    policy, so every page of the browser story is checked against it."""

    def __init__(self, context) -> None:
        self.violations: list[object] = []
        context.expose_binding("__cspViolation", lambda source, v: self.violations.append(v))
        context.add_init_script(_REPORT_VIOLATIONS)
        context.on("console", self._console)

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" and (
            "Content Security Policy" in text or "Permissions-Policy" in text
        ):
            self.violations.append(text)


@pytest.fixture
def new_context(browser):
    """A browser context whose pages are watched for policy violations; at the end of
    the test, none may have been seen."""
    made: list[tuple[Any, PolicyWatch]] = []

    def make():
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.set_default_timeout(15_000)
        watch = PolicyWatch(context)
        made.append((context, watch))
        return context, watch

    yield make
    for context, _ in made:
        context.close()
    seen = [v for _, watch in made for v in watch.violations]
    assert not seen, f"Content-Security-Policy violations: {seen}"


@pytest.fixture
def page(new_context, request):
    context, _ = new_context()
    page = context.new_page()
    yield page
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
