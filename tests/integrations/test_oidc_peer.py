"""End to end against a real, independent authorization server that nobody here wrote:
panva's oidc-provider (npm, ``tests/oidc_peer/``), started on loopback by the test and
set up only as data, through the admin. Connect through its own login and consent
pages, refresh (with and without rotation), Disconnect (RFC 7009 revocation), counted
on the server's side.

Two configurations of the same server: HTTP Basic client authentication with rotating
refresh tokens; and client_secret_post with comma-separated scopes (like Slack and
GitHub), no rotation and no refresh token in refresh responses.

Needs Node and ``npm ci --prefix tests/oidc_peer`` (skipped otherwise).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.connections.credentials import connection_credentials
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.models import AuditEvent, Connection, ProviderDefinition

PEER_DIR = Path(__file__).resolve().parents[1] / "oidc_peer"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (PEER_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="the OIDC peer is not installed: npm ci --prefix tests/oidc_peer",
    ),
]

SLUG = "peer"
CLIENT_ID = "integrations-hub"
PASSWORD = "correct horse battery"
IDENTITY_SCOPES = ["openid", "email", "offline_access"]
CAPABILITIES = [
    {"key": "peer.notes.read", "label": "Notes: read", "scopes": ["notes.read"]},
    {
        "key": "peer.notes.write",
        "label": "Notes: write",
        "scopes": ["notes.write"],
        "covers": ["peer.notes.read"],
    },
]


@dataclass(frozen=True)
class PeerSetup:
    """One configuration of the peer, and the definition staff enter for it."""

    client_auth: str  # "basic" | "post"
    scope_separator: str
    rotates: bool
    refresh_sends_refresh_token: bool

    def server_config(self, *, secret: str, redirect_uri: str) -> dict[str, Any]:
        return {
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": f"client_secret_{self.client_auth}",
            "rotate_refresh_token": self.rotates,
            "comma_scopes": self.scope_separator == ",",
            "refresh_omits_refresh_token": not self.refresh_sends_refresh_token,
        }


SETUPS = [
    pytest.param(
        PeerSetup(
            client_auth="basic", scope_separator=" ", rotates=True, refresh_sends_refresh_token=True
        ),
        id="basic-rotating",
    ),
    pytest.param(
        PeerSetup(
            client_auth="post",
            scope_separator=",",
            rotates=False,
            refresh_sends_refresh_token=False,
        ),
        id="post-commas-no-rotation",
    ),
]


class Peer:
    """The running oidc-provider, seen from the outside."""

    def __init__(self, issuer: str, setup: PeerSetup, secret: str) -> None:
        self.issuer = issuer
        self.setup = setup
        self.secret = secret

    @property
    def auth_method(self) -> str:
        return f"client_secret_{self.setup.client_auth}"

    def stats(self) -> dict[str, Any]:
        resp = requests.get(self.issuer + "/__stats", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def stats_reset(self) -> dict[str, Any]:
        """The counts so far; counting starts again from zero."""
        resp = requests.delete(self.issuer + "/__stats", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def token_request(self, data: dict[str, str]) -> requests.Response:
        """A token request of our client, authenticated as it is configured."""
        auth = None
        if self.setup.client_auth == "basic":
            auth = (CLIENT_ID, self.secret)
        else:
            data = {**data, "client_id": CLIENT_ID, "client_secret": self.secret}
        return requests.post(self.issuer + "/token", data=data, auth=auth, timeout=5)

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(
            self.issuer + "/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=5
        )


@contextmanager
def running_peer(setup: PeerSetup, *, secret: str, redirect_uri: str, log: Path) -> Iterator[Peer]:
    env = {
        **os.environ,
        "OIDC_PEER_CONFIG": json.dumps(
            setup.server_config(secret=secret, redirect_uri=redirect_uri)
        ),
    }
    assert NODE is not None
    with log.open("w") as out:
        proc = subprocess.Popen(
            [NODE, "server.mjs"], cwd=PEER_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        issuer = ""
        while not issuer:
            for line in log.read_text().splitlines():
                if line.startswith("listening "):
                    issuer = line.split(" ", 1)[1].strip()
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the OIDC peer did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Peer(issuer, setup, secret)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- HTML forms, as a browser would submit them ---------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower(), []))
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].fields.append((a["name"], a.get("value", "")))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_with_action(resp: requests.Response, path: str) -> Form:
    for form in forms_of(resp.text):
        if urlsplit(urljoin(resp.url, form.action)).path == path:
            return form
    raise AssertionError(f"no form posting to {path} on {resp.url}:\n{resp.text[:3000]}")


def submit(
    session: requests.Session, resp: requests.Response, form: Form, **values: str | list[str]
) -> requests.Response:
    """Submit ``form`` of the page ``resp`` with ``values`` filled in, following redirects."""
    data: list[tuple[str, str]] = [(k, v) for k, v in form.fields if k not in values]
    for name, value in values.items():
        data += [(name, v) for v in ([value] if isinstance(value, str) else value)]
    return session.post(urljoin(resp.url, form.action), data=data, timeout=15)


# --- the definition, as staff enter it in the admin -----------------------------------


def definition_form(setup: PeerSetup, *, issuer: str, secret: str, **fields: str) -> dict[str, str]:
    data = {
        "slug": SLUG,
        "name": "Peer",
        "discovery_url": issuer + "/.well-known/openid-configuration",
        "authorize_url": "",
        "token_url": "",
        "revocation_url": "",
        "userinfo_url": "",
        "scope_separator": setup.scope_separator,
        "identity_scopes": json.dumps(IDENTITY_SCOPES),
        "auth_params": "{}",
        "token_params": "{}",
        "refresh_params": "{}",
        "pkce": "on",
        "client_auth": setup.client_auth,
        "default_lifetime": "",
        "uid_field": "sub",
        "email_field": "email",
        "capabilities": json.dumps(CAPABILITIES),
        "env": json.dumps({"access_token": "PEER_ACCESS_TOKEN"}),
        "client_id": CLIENT_ID,
        "client_secret": secret,
    }
    if setup.rotates:
        data["rotates_refresh_tokens"] = "on"
    data.update(fields)
    return data


def admin_sets_up_the_peer(admin: Client, peer: Peer) -> ProviderDefinition:
    """Add (disabled) → run the check → enable: only through the admin's pages."""
    setup = peer.setup
    add = admin.post(
        reverse("admin:integrations_providerdefinition_add"),
        definition_form(setup, issuer=peer.issuer, secret=peer.secret),
    )
    assert add.status_code == 302, add.content.decode()[:3000]
    definition = ProviderDefinition.objects.get(slug=SLUG)
    assert not definition.enabled and not definition.last_check_ok
    assert peer.secret.encode() not in bytes(definition.client_secret_encrypted or b"")

    checked = admin.post(
        reverse("admin:integrations_providerdefinition_changelist"),
        {"action": "run_check", "_selected_action": [definition.pk]},
        follow=True,
    )
    report = " ".join(str(m) for m in get_messages(checked.wsgi_request))
    assert peer.secret not in checked.content.decode()
    assert f"✓ discovery: issuer {peer.issuer}" in report, report
    assert "✗" not in report, report
    definition.refresh_from_db()
    assert definition.last_check_ok
    assert definition.authorize_url == peer.issuer + "/auth"
    assert definition.token_url == peer.issuer + "/token"
    assert definition.revocation_url == peer.issuer + "/token/revocation"
    assert definition.userinfo_url == peer.issuer + "/me"

    change_url = reverse("admin:integrations_providerdefinition_change", args=[definition.pk])
    enabled = admin.post(
        change_url,
        definition_form(
            setup,
            issuer=peer.issuer,
            secret="",  # write-only: empty keeps the stored one
            enabled="on",
            authorize_url=definition.authorize_url,
            token_url=definition.token_url,
            revocation_url=definition.revocation_url,
            userinfo_url=definition.userinfo_url,
        ),
    )
    assert enabled.status_code == 302, enabled.content.decode()[:3000]
    definition.refresh_from_db()
    assert definition.enabled and definition.last_check_ok

    page = admin.get(change_url).content.decode()
    assert f"/integrations/oauth/{SLUG}/callback/" in page
    assert peer.secret not in page
    return definition


# --- the user's side, over HTTP against the live server --------------------------------


def log_in(session: requests.Session, site: str, email: str) -> None:
    page = session.get(site + reverse("account_login"), timeout=15)
    form = form_with_action(page, reverse("account_login"))
    resp = submit(session, page, form, login=email, password=PASSWORD)
    assert resp.status_code == 200 and "sessionid" in session.cookies, resp.text[:3000]


def integrations_page(session: requests.Session, site: str) -> requests.Response:
    resp = session.get(site + reverse("integrations:page"), timeout=15)
    assert resp.status_code == 200
    return resp


def expire(connection: Connection) -> Connection:
    Connection.objects.filter(pk=connection.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    connection.refresh_from_db()
    return connection


@pytest.mark.parametrize("setup", SETUPS)
def test_connect_refresh_revoke_against_oidc_provider(
    setup: PeerSetup,
    site: str,
    admin_client: Client,
    make_user: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "peer-secret-" + secrets.token_urlsafe(24)
    callback = site + reverse("integrations:oauth_callback", kwargs={"provider_id": SLUG})
    pages: list[str] = []
    with running_peer(
        setup, secret=secret, redirect_uri=callback, log=tmp_path / "peer.log"
    ) as peer:
        # Staff: the provider exists only as data entered in the admin.
        admin_sets_up_the_peer(admin_client, peer)
        # The check reached the peer's endpoints (unauthenticated: no grant was made).
        checked = peer.stats_reset()
        assert checked["token"] and "authorization_code" not in checked["token"]
        assert checked["userinfo"] and checked["grants_revoked"] == 0

        # The user connects through the peer's own login and consent pages.
        user = make_user("ada@example.com", PASSWORD)
        browser = requests.Session()
        log_in(browser, site, user.email)
        page = integrations_page(browser, site)
        pages.append(page.text)
        connect_path = reverse("integrations:connect", kwargs={"provider_id": SLUG})
        connect_form = form_with_action(page, connect_path)
        login_page = submit(browser, page, connect_form, capabilities="peer.notes.read")

        (to_peer, *_) = login_page.history
        authorize = urlsplit(to_peer.headers["Location"])
        params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == peer.issuer + "/auth"
        assert params["client_id"] == CLIENT_ID and params["redirect_uri"] == callback
        assert sorted(params["scope"].split(setup.scope_separator)) == sorted(
            [*IDENTITY_SCOPES, "notes.read"]
        )
        assert params["code_challenge_method"] == "S256" and params["prompt"] == "consent"

        assert login_page.url.startswith(peer.issuer + "/interaction/"), login_page.text[:3000]
        (login_form,) = forms_of(login_page.text)
        consent_page = submit(browser, login_page, login_form, login="ada", password="any")
        (consent_form,) = forms_of(consent_page.text)
        assert "notes.read" in consent_page.text
        done = submit(browser, consent_page, consent_form)

        assert done.url == site + reverse("integrations:page"), done.text[:3000]
        assert "Connected Peer (ada@peer.example): Notes: read." in done.text
        pages.append(done.text)
        conn = Connection.objects.get(user=user, provider=SLUG)
        assert conn.account_uid == "ada" and conn.account_email == "ada@peer.example"
        assert conn.status == Connection.Status.ACTIVE and conn.is_default
        # What the token response granted (its `scope`), split on the provider's separator.
        assert conn.scopes == sorted([*IDENTITY_SCOPES, "notes.read"])
        assert conn.has_refresh_token and conn.expires_at is not None
        stats = peer.stats()
        assert stats["token"] == {"authorization_code": 1}
        assert stats["client_auth"] == {f"token:{peer.auth_method}": 1}
        assert stats["userinfo"] == 1 and stats["token_errors"] == {}

        # Refresh: an expired token is refreshed on demand.
        first_access = connection_access_token(connection=conn)
        first_refresh = connection_refresh_token(connection=conn)
        fresh = connection_credentials(connection=expire(conn)).access_token
        assert fresh != first_access
        assert peer.userinfo(fresh).json()["sub"] == "ada"
        assert peer.stats()["token"] == {"authorization_code": 1, "refresh_token": 1}
        conn.refresh_from_db()
        held = connection_refresh_token(connection=conn)
        assert held is not None
        if setup.rotates:
            assert held != first_refresh  # rotated, and stored with the new access token
        else:
            assert held == first_refresh  # the response had none: the stored one is kept
        assert conn.scopes == sorted([*IDENTITY_SCOPES, "notes.read"])

        # The grant is alive with the refresh token we hold: a second refresh works.
        again = connection_credentials(connection=expire(conn)).access_token
        assert again not in (fresh, first_access)
        stats = peer.stats()
        assert stats["token"] == {"authorization_code": 1, "refresh_token": 2}
        assert stats["client_auth"] == {f"token:{peer.auth_method}": 3}
        assert stats["token_errors"] == {} and stats["grants_revoked"] == 0
        conn.refresh_from_db()
        assert conn.status == Connection.Status.ACTIVE
        last_refresh = connection_refresh_token(connection=conn)
        assert last_refresh is not None
        assert (last_refresh != held) if setup.rotates else (last_refresh == first_refresh)
        refreshes = AuditEvent.objects.filter(kind="refresh_succeeded", connection_id=conn.pk)
        assert [e.detail["rotated"] for e in refreshes] == [setup.refresh_sends_refresh_token] * 2

        # Disconnect: revoked at the peer (RFC 7009), then deleted here.
        disconnect_path = reverse("integrations:disconnect", kwargs={"id": conn.pk})
        confirm = browser.get(site + disconnect_path, timeout=15)
        gone = submit(browser, confirm, form_with_action(confirm, disconnect_path))
        assert "Disconnected Peer (ada@peer.example); Peer revoked the access." in gone.text
        pages.append(gone.text)
        assert not Connection.objects.filter(pk=conn.pk).exists()
        assert AuditEvent.objects.get(kind="revocation", connection_id=conn.pk).ok
        stats = peer.stats()
        assert stats["revocation"] == 1 and stats["revocation_errors"] == 0
        assert stats["grants_revoked"] == 1
        assert stats["client_auth"] == {
            f"token:{peer.auth_method}": 3,
            f"revocation:{peer.auth_method}": 1,
        }
        # The whole grant is gone at the peer: its refresh and access tokens are dead.
        dead = peer.token_request({"grant_type": "refresh_token", "refresh_token": last_refresh})
        assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
        assert peer.userinfo(again).status_code == 401

        pages.append(integrations_page(browser, site).text)
        pages.append(admin_client.get(reverse("admin:integrations_auditevent_changelist")).text)

    # The client secret is never shown, stored in clear or logged.
    for html in pages:
        assert secret not in html
    assert secret not in json.dumps(list(AuditEvent.objects.values("detail", "error_code")))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in logged
    ours = ("integrations", "django.request")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(ours)]
