from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from integrations.connections import refresh
from integrations.providers import registry
from integrations.sandbox.services import google_callback_uri, sandbox_client_ensure


@pytest.fixture(autouse=True, scope="session")
def _celery_eager():
    """Tasks the code under test enqueues run at once, in this process (a test that
    needs a real worker starts one, whose settings leave this off: tests/processes.py)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_provider_definitions():

    registry.definitions_changed()
    refresh.provider_health_forget()
    refresh.call_latency_forget()
    yield
    registry.definitions_changed()


@pytest.fixture
def make_user(db):
    def make(email: str = "alice@example.com", password: str = "correct horse battery") -> object:
        User = get_user_model()
        return User.objects.create_user(
            username=email.split("@")[0] + str(User.objects.count()),
            email=email,
            password=password,
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user("bob@example.com")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def site(live_server):
    """The live server as SITE_URL, with the sandbox client knowing its callback."""
    with override_settings(SITE_URL=live_server.url):
        sandbox_client_ensure(redirect_uris=[google_callback_uri(site_url=live_server.url)])
        yield live_server.url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``CI_NO_SKIPS=1`` (``.ci/run``), a skipped test fails the run: the tests that
    need PostgreSQL, Redis, node's OIDC peer or Chromium skip where those are missing,
    and CI, which has them all, must not pass by skipping them."""
    if os.environ.get("CI_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # no terminal (e.g. -p no:terminal): nothing to count
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(
            f"CI_NO_SKIPS=1: {len(skipped)} test(s) were skipped; a service they need is "
            "missing on this machine",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
