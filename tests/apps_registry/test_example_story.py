"""End to end: the example app, run with the environment from the API, reads the sheet
(200 from the fake API). After the grant is revoked at the provider, the API answers
409 with a reconnect link instead of handing out a dead token.

The user's browser steps (sign-up, Connect through the sandbox's consent page) are
``requests`` against the live server, with the helpers of ``examples/run_story.py``;
the runner is ``integrations_hub_client.HubClient``; the app is
``examples/sheets_reader/app.py`` in a subprocess, with google-api-python-client
calling the sandbox's fake Sheets API on the live server.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import ModuleType

import pytest
import requests
from django.db import connection as db
from django.utils import timezone
from integrations_hub_client import HubClient, NotAuthorizedYetError

from apps_registry import services
from integrations.connections.store import connection_refresh_token
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import Connection
from integrations.sandbox.models import SandboxRevocation
from integrations.sandbox.services import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.processes import ROOT, django_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STORY = ROOT / "examples" / "run_story.py"
APP = "examples/sheets-reader"
SHEET_ROWS = [["Name", "Score"], ["Ada", "36"], ["Grace", "42"]]
GOOGLE_ENV = {
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
    "GOOGLE_OAUTH_CREDENTIALS",
}


def load_story() -> ModuleType:
    """``examples/run_story.py`` as a module (``examples`` is not a package)."""
    spec = importlib.util.spec_from_file_location("examples_run_story", STORY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


story = load_story()


def run_app(site: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = story.run_app(site, env, python=sys.executable)
    return done


@pytest.fixture
def http() -> Iterator[Callable[[], requests.Session]]:
    """New ``requests`` sessions, closed at the end, and the live server's request
    threads let finish before the test does.

    A keep-alive connection holds a live-server thread open; so does the pooled
    session (one per thread, ``integrations.providers.client``) that a request thread used to call
    the sandbox on the same server. Left to the garbage collector, such a thread would
    end during a later test and close a database connection it no longer may
    (SQLite's in-memory test database is shared with the server only during the test).
    """
    made: list[requests.Session] = []

    def new() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    yield new
    for session in made:
        session.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gc.collect()  # drops the pooled sessions of ended threads, closing their sockets
        if not [t for t in threading.enumerate() if "process_request_thread" in t.name]:
            break
        time.sleep(0.05)


@pytest.fixture
def hub_clients(http) -> Iterator[list[HubClient]]:
    """Clients to close before ``http`` waits for the live server's threads (a
    keep-alive connection holds one open)."""
    made: list[HubClient] = []
    yield made
    for client in made:
        client.close()


def test_the_app_reads_the_sheet_and_a_grant_revoked_at_google_asks_for_reconnect(
    site, http, hub_clients, settings
):
    email, password = "ada@example.com", "a long enough passphrase 42"

    # Ada signs up and connects Google for Sheets (read) through the consent page.
    browser = http()
    story.sign_up(browser, site, email=email, password=password)
    landed = story.connect_google(browser, site, ["google.sheets.readonly"])
    assert landed == site + "/settings/secrets/integrations/"
    conn = Connection.objects.get(user__email=email)
    assert conn.status == "active" and G + "spreadsheets.readonly" in conn.scopes

    # The app is uploaded with the JSON API; a runner asks for its environment.
    api_token = services.api_token_create(user=conn.user, name="ci")[1]
    manifest = (ROOT / "examples" / "sheets_reader" / "inf.yml").read_text()
    version = story.upload_manifest(site, api_token=api_token, text=manifest)
    assert (version["app"], version["valid"], version["current"]) == (APP, True, True)
    runner_token = services.runner_token_create(name="runner-e2e", all_namespaces=True)[1]
    runner = HubClient(site, token=runner_token)
    hub_clients.append(runner)
    # Not allowed yet: the client carries the authorize_app action to the app page.
    with pytest.raises(NotAuthorizedYetError) as not_allowed:
        runner.run_environment(user=email, app=APP)
    (authorize,) = [a for a in not_allowed.value.actions if a.kind == "authorize_app"]
    assert authorize.url == site + f"/apps/{APP}/#allow"
    assert authorize.capabilities == ("google.sheets.readonly",) and authorize.secrets == ()
    assert {m.reason for m in not_allowed.value.missing} == {"not_allowed"}
    story.allow_app(browser, site, APP)
    run = runner.run_environment(user=email, app=APP)
    assert set(run.env) == GOOGLE_ENV

    # The app, with exactly that env, reads the sheet from the fake Sheets API.
    done = run_app(site, dict(run.env))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == SHEET_ROWS

    # Ada revokes the grant at Google (its revoke endpoint, RFC 7009), not here.
    revoked = requests.post(
        site + "/sandbox/o/revoke_token/",
        data={
            "token": connection_refresh_token(connection=conn),
            "token_type_hint": "refresh_token",
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
        },
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    assert SandboxRevocation.objects.filter(user=conn.user).count() == 1
    # The token handed out is dead at the provider: the fake API answers 401, and
    # google-auth, holding no refresh token (apps never get one), cannot renew it.
    again = run_app(site, dict(run.env))
    assert again.returncode != 0
    assert "google.auth.exceptions.RefreshError" in again.stderr, again.stderr

    # Our copy of the access token has not expired, but before a run gets it the
    # product asks Google whether it still stands (INTEGRATIONS_VERIFY_SECONDS; the
    # token was last shown good over five minutes ago): refused, the refresh meets
    # invalid_grant, and the API answers 409 with Reconnect, not a dead token.
    settings.INTEGRATIONS_VERIFY_SECONDS = 300
    Connection.objects.filter(pk=conn.pk).update(
        last_refreshed_at=timezone.now() - timedelta(minutes=6), last_verified_at=None
    )
    conn.refresh_from_db()
    assert conn.expires_at is not None and conn.expires_at > timezone.now() + timedelta(minutes=30)
    with pytest.raises(NotAuthorizedYetError) as refused:
        runner.run_environment(user=email, app=APP)
    assert refused.value.status == 409
    reconnect = [a for a in refused.value.actions if a.kind == "reconnect"]
    assert any(
        a.url == site + f"/apps/{APP}/"
        and a.connection_id == conn.pk
        and a.capabilities == ("google.sheets.readonly",)
        for a in reconnect
    ), refused.value.actions
    assert "needs_reconnect" in {m.reason for m in refused.value.missing}
    conn.refresh_from_db()
    assert (conn.status, conn.last_error_code) == ("needs_reconnect", "invalid_grant")

    # And it stays so: no dead token on the next ask either.
    with pytest.raises(NotAuthorizedYetError) as still:
        runner.run_environment(user=email, app=APP)
    assert any(a.kind == "reconnect" for a in still.value.actions)


def run_story(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STORY), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def check_story_output(done: subprocess.CompletedProcess[str], *secrets: str) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for row in SHEET_ROWS:
        assert " | ".join(row) in out
    assert "GOOGLE_OAUTH_ACCESS_TOKEN (sha256 " in out
    for secret in ("ihub_", "sbx-at-", "sbx-rt-", *secrets):
        assert secret not in out + done.stderr


@pytest.mark.skipif(
    db.vendor != "postgresql",
    reason="run_story's manage.py cannot reach a SQLite test database (it lives in memory)",
)
def test_run_story_against_the_live_server(site):
    """``run_story.py --hub``: its manage.py commands reach the live server's database
    (PostgreSQL; a SQLite test database lives in memory, out of reach)."""
    done = run_story("--hub", site, "--email", "story@example.com", env=django_env())
    check_story_output(done)


def test_run_story_starts_a_server_of_its_own():
    """``run_story.py --start-server``: a temporary database, runserver on a free port."""
    done = run_story("--start-server")
    check_story_output(done)
    assert "runserver stopped" in done.stdout
