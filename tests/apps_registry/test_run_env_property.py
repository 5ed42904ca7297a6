"""The API never returns a key the manifest did not declare (a property test over
random manifests and grants).

Each example uploads a random manifest (catalogue keys of every kind, each required or
optional, an unknown key now and then, random secret keys) and gives the user a random
state (Google and X connections with random scopes and statuses, secrets declared or
not, a Google service-account key or not), then asks the run environment API. The
expected env names come from DESIGN.md ("Env given to apps"), not from the code under
test.

Service-account keys for ``gcp.*`` are never given: minting their tokens needs a token
endpoint (``tests/integrations/test_gcp.py`` covers that), so ``gcp.*`` is always
missing here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from apps_registry import services
from apps_registry.models import App
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.core.catalogue import BUILTIN as CATALOGUE
from integrations.core.catalogue import CAPABILITIES, GOOGLE_SCOPE_PREFIX, CredentialKind
from integrations.core.provider_definitions import PRESETS
from integrations.models import (
    AppAuthorization,
    Connection,
    ProviderDefinition,
    Secret,
    ServiceAccountKey,
)
from integrations.providers.definitions import provider_definition_set_secret
from integrations.secrets import secret_set
from integrations.service_accounts import service_account_key_set
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory
from tests.integrations.gcp_fakes import key_json

pytestmark = pytest.mark.django_db

URL = "/api/v1/run-environments/"
EMAIL = "prop@example.com"

CAPABILITY_KEYS = sorted(c.key for c in CAPABILITIES)
UNKNOWN_KEYS = ["google.sheets.write", "acme.widgets"]  # warned about, never satisfied
SECRET_KEYS = ["FAL_KEY", "OPENAI_API_KEY", "HF_TOKEN", "REPLICATE_API_TOKEN", "DISCORD_BOT_TOKEN"]
# What a manifest may declare under secrets: DISCORD_BOT_TOKEN comes through discord.bot.
DECLARABLE_SECRET_KEYS = [k for k in SECRET_KEYS if k != "DISCORD_BOT_TOKEN"]
GOOGLE_SCOPES = sorted({s for c in CAPABILITIES if c.provider == "google" for s in c.scopes})
X_SCOPES = sorted({s for c in CAPABILITIES if c.provider == "x" for s in c.scopes})

GOOGLE_OAUTH_ENV = {
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
    "GOOGLE_OAUTH_CREDENTIALS",
}


def env_names_of(key: str) -> set[str]:
    """DESIGN.md "Env given to apps", per declared capability key."""
    if key == "google.sa":
        return {"GOOGLE_SA_CREDENTIALS"}
    if key.startswith("gcp."):
        return {"GCP_ACCESS_TOKEN", "GCP_PROJECT_NUMBER"}
    if key == "discord.bot":
        return {"DISCORD_BOT_TOKEN"}
    if key.startswith("google."):
        return GOOGLE_OAUTH_ENV
    if key.startswith("x."):
        return {"X_ACCESS_TOKEN"}
    return set()


def is_oauth(key: str) -> bool:
    cap = CATALOGUE.by_key.get(key)
    return cap is not None and cap.kind is CredentialKind.OAUTH


# --- what is generated ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str
    optional: bool


@dataclass(frozen=True)
class Conn:
    provider: str
    scopes: tuple[str, ...]
    status: str
    is_default: bool


def likely() -> st.SearchStrategy[bool]:
    """True seven times in eight: grants and secrets that mostly match the manifest
    make environments (200) about as common as refusals (409)."""
    return st.integers(0, 7).map(bool)


def entries(keys: list[str], *, max_size: int) -> st.SearchStrategy[list[Entry]]:
    return st.lists(
        st.builds(Entry, st.sampled_from(keys), st.booleans()),
        max_size=max_size,
        unique_by=lambda e: e.key,
    )


GOOGLE_OAUTH_KEYS = [k for k in CAPABILITY_KEYS if k.startswith("google.") and is_oauth(k)]
X_KEYS = [k for k in CAPABILITY_KEYS if k.startswith("x.")]
GCP_KEYS = [k for k in CAPABILITY_KEYS if k.startswith("gcp.")]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Entry], list[Entry], list[Conn], list[str], bool]:
    """A manifest and a user: connections, secrets and a service-account key, each
    mostly granting what the manifest declares, with extras it does not."""
    integrations = draw(entries(GOOGLE_OAUTH_KEYS, max_size=3)) + draw(entries(X_KEYS, max_size=2))
    # Credentials OAuth cannot grant, each kind often enough to meet the others.
    for keys, one_in in (
        (["google.sa"], 2),
        (["discord.bot"], 2),
        (GCP_KEYS, 4),
        (UNKNOWN_KEYS, 5),
    ):
        if draw(st.integers(1, one_in)) == 1:
            integrations.append(Entry(draw(st.sampled_from(keys)), draw(st.booleans())))
    integrations = draw(st.permutations(integrations))
    secrets = draw(entries(DECLARABLE_SECRET_KEYS, max_size=3))
    declared_providers = sorted(
        {CATALOGUE.by_key[e.key].provider for e in integrations if is_oauth(e.key)}
    )
    # Mostly one connection per provider the manifest uses, then any others.
    providers = [p for p in declared_providers if draw(likely())]
    providers += draw(st.lists(st.sampled_from(["google", "x"]), max_size=2))
    connections: list[Conn] = []
    for provider in draw(st.permutations(providers)):
        pool = GOOGLE_SCOPES if provider == "google" else X_SCOPES
        scopes = {"openid", "email"} if provider == "google" else set()
        for entry in integrations:
            cap = CATALOGUE.by_key.get(entry.key)
            if cap is not None and cap.provider == provider and draw(likely()):
                scopes |= set(cap.scopes)
        scopes |= set(draw(st.lists(st.sampled_from(pool), max_size=3)))
        status = draw(
            st.sampled_from(["active"] * 5 + ["refresh_failing"] * 2 + ["needs_reconnect"])
        )
        connections.append(Conn(provider, tuple(sorted(scopes)), status, draw(st.booleans())))
    user_secrets = [e.key for e in secrets if draw(likely())]
    if any(e.key == "discord.bot" for e in integrations) and draw(likely()):
        user_secrets.append("DISCORD_BOT_TOKEN")
    user_secrets += draw(st.lists(st.sampled_from(SECRET_KEYS), max_size=3))
    declares_sa = any(e.key == "google.sa" for e in integrations)
    google_sa = draw(likely()) if declares_sa else draw(st.integers(0, 4)) == 0
    return integrations, secrets, connections, sorted(set(user_secrets)), google_sa


# A value that passes DISCORD_BOT_TOKEN's format check; others are free-form.
def secret_value_for(key: str, salt: str) -> str:
    if key == "DISCORD_BOT_TOKEN":
        return f"MTA{salt:0<21}.GabcDE.{salt:x<30}"
    return f"value-of-{key}-{salt}"


def manifest_text(integrations: list[Entry], secrets: list[Entry]) -> str:
    lines = ["namespace: prop", "name: app", "title: Property", "description: Random manifest"]
    for section, items in (("integrations", integrations), ("secrets", secrets)):
        if items:
            lines.append(f"{section}:")
            for item in items:
                lines += [
                    f"  - key: {item.key}",
                    f"    description: {item.key} for the test",
                    f"    optional: {'true' if item.optional else 'false'}",
                ]
    return "\n".join(lines) + "\n"


# --- the property ---------------------------------------------------------------


@pytest.fixture
def setup(make_user) -> tuple[Any, str]:
    """The user, a runner token, and X defined as data (its preset), as staff set it up."""
    definition = ProviderDefinition.objects.create(
        **PRESETS["x"], client_id="x-client", enabled=True
    )
    provider_definition_set_secret(definition=definition, secret="x-secret")
    user = make_user(EMAIL)
    return user, services.runner_token_create(name="runner-property", all_namespaces=True)[1]


def ask(token: str) -> Any:
    return Client().post(
        URL,
        json.dumps({"user": EMAIL, "app": "prop/app"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), salt=st.text("0123456789abcdef", min_size=8, max_size=8))
# Found by this test: a required google.sa kept the app from its Google token.
@example(
    scenario=(
        [Entry("google.calendar", False), Entry("google.sa", False)],
        [],
        [Conn("google", ("email", GOOGLE_SCOPE_PREFIX + "calendar", "openid"), "active", False)],
        [],
        True,
    ),
    salt="00000000",
)
def test_the_api_never_returns_a_key_the_manifest_did_not_declare(
    setup: tuple[Any, str],
    scenario: tuple[list[Entry], list[Entry], list[Conn], list[str], bool],
    salt: str,
) -> None:
    integrations, secrets, connections, user_secrets, google_sa = scenario
    user, runner = setup
    # The db fixture's transaction spans every example: start each from nothing.
    App.objects.all().delete()
    Connection.objects.filter(user=user).delete()
    Secret.objects.filter(user=user).delete()
    ServiceAccountKey.objects.filter(user=user).delete()

    text = manifest_text(integrations, secrets)
    note(text)
    note(f"connections={connections} secrets={user_secrets} google_sa={google_sa}")
    version = services.manifest_upload(user=user, text=text)
    assert version.valid, version.errors
    made: list[Connection] = []
    defaults: set[str] = set()
    for conn in connections:
        default = conn.is_default and conn.provider not in defaults
        defaults |= {conn.provider} if default else set()
        made.append(
            ConnectionFactory.create(
                user=user,
                provider=conn.provider,
                scopes=sorted(set(conn.scopes)),
                status=conn.status,
                is_default=default,
            )
        )
    values = {key: secret_value_for(key, salt) for key in user_secrets}
    for key, value in values.items():
        secret_set(user=user, key=key, value=value)
    if google_sa:
        service_account_key_set(user=user, purpose="google_sa", key_text=key_json())
    AppAuthorization.objects.filter(user=user).delete()
    allow_declared(user, version.app.slug)

    resp = ask(runner)
    event(f"status {resp.status_code}")
    if resp.status_code == 200:
        event("200: " + ", ".join(sorted({k.split("_")[0] for k in resp.json()["env"]})))

    assert resp.status_code in (200, 409), resp.content
    body = resp.content.decode()
    declared_secrets = {e.key for e in secrets}
    declared_caps = {e.key for e in integrations}
    allowed = set(declared_secrets)
    for key in declared_caps:
        allowed |= env_names_of(key)

    # No value of an undeclared secret, and no refresh token, appears anywhere.
    for key, value in values.items():
        if key not in allowed:
            assert value not in body, key
    for row in made:
        assert connection_refresh_token(connection=row) not in body

    # An access token reaches the app only when one of its provider's OAuth
    # capabilities is declared and that connection's grant satisfies it.
    for row in made:
        if connection_access_token(connection=row) in body:
            granted = CATALOGUE.granted_capabilities(row.provider, row.scopes)
            assert row.status in ("active", "refresh_failing")
            assert any(
                is_oauth(k)
                and CATALOGUE.by_key[k].provider == row.provider
                and CATALOGUE.is_satisfied(k, granted)
                for k in declared_caps
            ), (row.provider, row.scopes, declared_caps)

    ready = _ready(integrations, secrets, made, set(values), google_sa)
    if resp.status_code == 409:
        event("409: " + ", ".join(sorted({m["reason"] for m in resp.json()["missing"]})))
        assert resp.json()["error"] == "not_ready"
        assert not ready, "a ready user was refused"
        return

    data = resp.json()
    env = data["env"]
    assert set(env) <= allowed, set(env) - allowed
    assert data["keys"] == sorted(env)
    assert ready, "a user missing something required got an environment"
    for entry in secrets:
        if not entry.optional:
            assert env[entry.key] == values[entry.key]
    for entry in integrations:
        if not entry.optional:
            assert env_names_of(entry.key) <= set(env), entry.key
    if "DISCORD_BOT_TOKEN" in env:
        assert env["DISCORD_BOT_TOKEN"] == values["DISCORD_BOT_TOKEN"]
    if "GOOGLE_SA_CREDENTIALS" in env:
        assert google_sa and "google.sa" in declared_caps
    assert not {"GCP_ACCESS_TOKEN", "GCP_PROJECT_NUMBER"} & set(env)  # no gcp key given
    if "GOOGLE_OAUTH_ACCESS_TOKEN" in env:
        creds = json.loads(env["GOOGLE_OAUTH_CREDENTIALS"])
        assert creds["token"] == env["GOOGLE_OAUTH_ACCESS_TOKEN"]
        assert "refresh_token" not in creds and "client_secret" not in creds
        assert all(
            s.startswith(GOOGLE_SCOPE_PREFIX) or s in ("openid", "email") for s in creds["scopes"]
        )


def _ready(
    integrations: list[Entry],
    secrets: list[Entry],
    made: list[Connection],
    user_secrets: set[str],
    google_sa: bool,
) -> bool:
    """DESIGN.md's readiness, on its own: every required secret set; every required
    credential brought; per provider, one usable connection whose grant covers all the
    required OAuth capabilities of that provider (an app runs with one account per
    provider)."""
    for entry in secrets:
        if not entry.optional and entry.key not in user_secrets:
            return False
    required = [e.key for e in integrations if not e.optional]
    by_provider: dict[str, list[str]] = {}
    for key in required:
        cap = CATALOGUE.by_key.get(key)
        if cap is None or key.startswith("gcp."):
            return False
        if key == "google.sa" and not google_sa:
            return False
        if key == "discord.bot" and "DISCORD_BOT_TOKEN" not in user_secrets:
            return False
        if cap.kind is CredentialKind.OAUTH:
            by_provider.setdefault(cap.provider, []).append(key)
    for provider, keys in by_provider.items():
        usable = [
            c for c in made if c.provider == provider and c.status in ("active", "refresh_failing")
        ]
        if not any(
            all(
                CATALOGUE.is_satisfied(k, CATALOGUE.granted_capabilities(provider, c.scopes))
                for k in keys
            )
            for c in usable
        ):
            return False
    return True
