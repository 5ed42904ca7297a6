"""Readiness, table-driven: the real manifests and a few hand-written ones, by grants.

Pure: no database. Grants are built from the scopes a provider granted, as the
selector builds them, so coverage is the catalogue's data end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps_registry.manifest import Requirement, parse_manifest
from apps_registry.readiness import Grant, Reason, assess_readiness, choose_connection
from integrations.core.catalogue import BUILTIN as catalogue
from integrations.core.catalogue import CredentialKind

from .conftest import REAL, REPORT

MANIFESTS = {name.removesuffix(".inf.yml"): parse_manifest(text) for name, text in REAL.items()}
MANIFESTS["report"] = parse_manifest(REPORT)
MANIFESTS["unknown"] = parse_manifest(
    "name: odd\nintegrations:\n  - key: google.sheetz\n  - key: google.calendar.readonly\n"
    "    optional: true\n"
)
MANIFESTS["sa"] = parse_manifest("name: sa\nintegrations:\n  - key: google.sa\n")


def grant(
    *keys: str, id: int = 1, status: str = "active", account: str = "a@gmail.example"
) -> Grant:
    """A Google connection whose granted scopes are exactly those of ``keys``."""
    scopes = ["openid", "email", *catalogue.scopes_for(keys)]
    return Grant(
        connection_id=id,
        provider="google",
        account=account,
        capabilities=frozenset(catalogue.granted_capabilities("google", scopes)),
        status=status,
    )


def assess(manifest: str, grants: list[Grant], secrets: set[str] | None = None):
    m = MANIFESTS[manifest]
    return assess_readiness(
        integrations=m.integrations,
        secrets=m.secrets,
        grants=grants,
        secret_keys=secrets or set(),
        connectable={"google"},
    )


@dataclass
class Case:
    manifest: str
    grants: list[Grant]
    ready: bool
    required_missing: list[str] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)
    secrets_missing: list[str] = field(default_factory=list)
    # (connection id or None for Connect, capabilities, includes_optional)
    actions: list[tuple[int | None, tuple[str, ...], bool]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)


CASES = {
    "sheets, nothing connected: Connect for google.sheets": Case(
        "api-google-sheets",
        [],
        False,
        ["google.sheets"],
        actions=[(None, ("google.sheets",), False)],
    ),
    "sheets, granted": Case("api-google-sheets", [grant("google.sheets")], True),
    "sheets, only read granted: Add Permissions for write": Case(
        "api-google-sheets",
        [grant("google.sheets.readonly", id=7)],
        False,
        ["google.sheets"],
        actions=[(7, ("google.sheets",), False)],
    ),
    "report, write covers read; optional drive missing": Case(
        "report",
        [grant("google.sheets")],
        True,
        optional_missing=["google.drive.readonly"],
        actions=[(1, ("google.drive.readonly",), True)],
    ),
    "report, partial grant (gmail only): exactly sheets.readonly, optional separately": Case(
        "report",
        [grant("google.gmail.readonly", id=3)],
        False,
        ["google.sheets.readonly"],
        ["google.drive.readonly"],
        actions=[
            (3, ("google.sheets.readonly",), False),
            (3, ("google.sheets.readonly", "google.drive.readonly"), True),
        ],
    ),
    "report, drive (write) covers optional drive.readonly": Case(
        "report", [grant("google.sheets.readonly", "google.drive")], True
    ),
    "gmail, modify covers send and compose": Case(
        "api-google-gmail", [grant("google.gmail.modify")], True
    ),
    "gmail, compose covers send; modify missing": Case(
        "api-google-gmail",
        [grant("google.gmail.compose")],
        False,
        ["google.gmail.modify"],
        actions=[(1, ("google.gmail.modify",), False)],
    ),
    "gmail, send only: asks for modify alone (it covers compose)": Case(
        "api-google-gmail",
        [grant("google.gmail.send")],
        False,
        ["google.gmail.modify", "google.gmail.compose"],
        actions=[(1, ("google.gmail.modify",), False)],
    ),
    "sheets, the grant ended (needs_reconnect): Connect again": Case(
        "api-google-sheets",
        [grant("google.sheets", status="needs_reconnect")],
        False,
        ["google.sheets"],
        actions=[(None, ("google.sheets",), False)],
    ),
    "sheets, refresh failing still counts": Case(
        "api-google-sheets", [grant("google.sheets", status="refresh_failing")], True
    ),
    "sheets, revoked counts for nothing": Case(
        "api-google-sheets",
        [grant("google.sheets", status="revoked")],
        False,
        ["google.sheets"],
        actions=[(None, ("google.sheets",), False)],
    ),
    "sheets, two accounts: the one that has it": Case(
        "api-google-sheets",
        [grant("google.gmail.send", id=1), grant("google.sheets", id=2)],
        True,
    ),
    "gmail, two accounts each with part: measured on the better one": Case(
        "api-google-gmail",
        [grant("google.gmail.send", id=1), grant("google.gmail.compose", id=2)],
        False,
        ["google.gmail.modify"],
        actions=[(2, ("google.gmail.modify",), False)],
    ),
    "falai, secret missing": Case("api-falai-dia-tts", [], False, secrets_missing=["FAL_KEY"]),
    "falai, secret set": Case("api-falai-dia-tts", [], True, secrets={"FAL_KEY"}),
    "veo, GCP project not OAuth-grantable; optional secret does not block": Case(
        "api-google-gcp-vertex-veo-3", [grant("google.drive")], False, ["gcp.vertex_ai"]
    ),
    "discord bot is a credential the user brings": Case(
        "api-discord-message-send", [], False, ["discord.bot"]
    ),
    "google.sa is a service-account key": Case("sa", [grant("google.drive")], False, ["google.sa"]),
    "x is not connectable here: no action": Case(
        "api-x-article-publish", [], False, ["x.tweet.write", "x.media.write"]
    ),
    "browser-use needs nothing": Case("native-agents-browser-use", [], True),
    "unknown key is missing, optional known one offered": Case(
        "unknown",
        [grant("google.gmail.send")],
        False,
        ["google.sheetz"],
        ["google.calendar.readonly"],
        actions=[(1, ("google.calendar.readonly",), True)],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_readiness(case: Case) -> None:
    result = assess(case.manifest, case.grants, case.secrets)

    assert result.ready is case.ready
    assert [i.key for i in result.required_missing] == case.required_missing
    assert [i.key for i in result.optional_missing] == case.optional_missing
    assert [i.key for i in result.secrets_missing] == case.secrets_missing
    assert [
        (a.connection_id, a.capabilities, a.includes_optional) for a in result.actions
    ] == case.actions
    # Every requirement is listed once, in manifest order, with the manifest's description.
    manifest = MANIFESTS[case.manifest]
    assert [(i.key, i.description) for i in result.items] == [
        (r.key, r.description) for r in (*manifest.integrations, *manifest.secrets)
    ]


def test_satisfied_items_name_the_connection_that_grants_them() -> None:
    g = grant("google.sheets", id=9, account="ada@gmail.example")
    (sheets, drive) = assess("report", [g]).items
    assert sheets.satisfied and sheets.granted_by == g
    assert sheets.hint == "Granted (ada@gmail.example)"
    assert not drive.satisfied and drive.reason is Reason.NOT_GRANTED
    assert drive.hint == "Not granted yet on ada@gmail.example"


@pytest.mark.parametrize(
    ("manifest", "key", "reason", "kind", "hint"),
    [
        (
            "sa",
            "google.sa",
            Reason.NEEDS_CREDENTIAL,
            CredentialKind.SERVICE_ACCOUNT,
            "service-account key",
        ),
        (
            "api-google-gcp-vertex-veo-3",
            "gcp.vertex_ai",
            Reason.NEEDS_CREDENTIAL,
            CredentialKind.GCP_PROJECT,
            "Google Cloud project",
        ),
        (
            "api-discord-message-send",
            "discord.bot",
            Reason.NEEDS_CREDENTIAL,
            CredentialKind.BOT_TOKEN,
            "bot token",
        ),
        ("unknown", "google.sheetz", Reason.UNKNOWN, None, "did you mean google.sheets"),
        (
            "api-x-article-publish",
            "x.tweet.write",
            Reason.PROVIDER_UNAVAILABLE,
            CredentialKind.OAUTH,
            "X cannot be connected",
        ),
        (
            "api-google-sheets",
            "google.sheets",
            Reason.NOT_CONNECTED,
            CredentialKind.OAUTH,
            "No Google account",
        ),
        ("api-falai-dia-tts", "FAL_KEY", Reason.SECRET_NOT_SET, None, "Settings → Secrets"),
    ],
)
def test_missing_reasons(manifest, key, reason, kind, hint) -> None:
    item = next(i for i in assess(manifest, []).items if i.key == key)
    assert not item.satisfied
    assert item.reason is reason
    assert item.credential_kind == kind
    assert hint in item.hint


def test_reconnect_names_the_account_and_is_a_connect() -> None:
    result = assess(
        "api-google-sheets",
        [grant("google.sheets", status="needs_reconnect", account="old@gmail.example")],
    )
    (item,) = result.items
    assert item.reason is Reason.NEEDS_RECONNECT
    assert "old@gmail.example" in item.hint and "reconnect" in item.hint
    (action,) = result.actions
    assert action.is_connect and action.reconnect and action.account == "old@gmail.example"


def test_an_active_connection_is_preferred_to_an_ended_one() -> None:
    result = assess(
        "report",
        [
            grant("google.sheets.readonly", id=1, status="needs_reconnect"),
            grant("google.gmail.send", id=2),
        ],
    )
    assert [(a.connection_id, a.reconnect) for a in result.actions] == [(2, False), (2, False)]


def test_the_default_connection_is_the_one_named_when_it_covers_what_is_required() -> None:
    # The run environment hands out the default connection's token when it covers the
    # required entries: readiness names that one, not a "better" one (drive is optional).
    from dataclasses import replace

    best = grant("google.sheets.readonly", "google.drive.readonly", id=1, account="b@x")
    default = replace(grant("google.sheets.readonly", id=2, account="d@x"), is_default=True)
    (sheets, drive) = assess("report", [best, default]).items
    assert sheets.granted_by == default
    assert not drive.satisfied  # not on the connection the run will use
    # A default that lacks something required is passed over, as by the run.
    weak = replace(grant("google.drive.readonly", id=3), is_default=True)
    (sheets, _) = assess("report", [best, weak]).items
    assert sheets.granted_by == best


def test_the_connection_the_runner_names_is_chosen_or_none_never_another() -> None:
    # The one rule of readiness and the run environment, with the runner's override.
    from dataclasses import replace

    reqs = MANIFESTS["report"].integrations
    best = grant("google.sheets.readonly", "google.drive.readonly", id=1)
    default = replace(grant("google.sheets.readonly", id=2), is_default=True)
    lacking = grant("google.drive.readonly", id=3)
    dead = grant("google.sheets.readonly", id=4, status="needs_reconnect")
    grants = [best, default, lacking, dead]
    assert choose_connection(reqs, grants, "google", catalogue) == default
    assert choose_connection(reqs, grants, "google", catalogue, named=1) == best
    # Named but not serving (a required entry missing, a dead grant, another provider's
    # or no such id): no connection, not the default one.
    for named in (3, 4, 99):
        assert choose_connection(reqs, grants, "google", catalogue, named=named) is None
    assert choose_connection(reqs, grants, "x", catalogue, named=1) is None
    # No usable connection at all.
    assert choose_connection(reqs, [dead], "google", catalogue) is None


def test_a_provider_that_is_not_configured_gets_no_action() -> None:
    m = MANIFESTS["report"]
    result = assess_readiness(
        integrations=m.integrations, secrets=(), grants=[], secret_keys=set(), connectable=set()
    )
    assert result.actions == ()
    assert {i.reason for i in result.items} == {Reason.PROVIDER_UNAVAILABLE}


GOOGLE_OAUTH = [c.key for c in catalogue.oauth_capabilities_of("google")]


@settings(max_examples=300, deadline=None)
@given(
    granted=st.lists(st.sampled_from(GOOGLE_OAUTH), unique=True),
    required=st.lists(st.sampled_from(GOOGLE_OAUTH), unique=True, max_size=6),
    optional=st.lists(st.sampled_from(GOOGLE_OAUTH), unique=True, max_size=4),
)
def test_following_the_actions_makes_the_app_ready(granted, required, optional) -> None:
    """Whatever is granted, a Google app is ready exactly when every required key is
    satisfied, and granting what the required action asks for makes it ready."""
    optional = [k for k in optional if k not in required]
    reqs = [Requirement(k) for k in required] + [Requirement(k, optional=True) for k in optional]
    before = assess_readiness(
        integrations=reqs,
        secrets=(),
        grants=[grant(*granted)],
        secret_keys=(),
        connectable={"google"},
    )
    assert before.ready is all(catalogue.is_satisfied(k, granted) for k in required)
    asked = [k for a in before.required_actions for k in a.capabilities]
    assert len(before.required_actions) == (0 if before.ready else 1)
    # Never asks for what is granted already.
    assert not any(catalogue.is_satisfied(k, granted) for k in asked)

    after = assess_readiness(
        integrations=reqs,
        secrets=(),
        grants=[grant(*granted, *asked)],
        secret_keys=(),
        connectable={"google"},
    )
    assert after.ready
    if before.optional_actions:
        everything = [k for k in before.optional_actions[0].capabilities]
        full = assess_readiness(
            integrations=reqs,
            secrets=(),
            grants=[grant(*granted, *everything)],
            secret_keys=(),
            connectable={"google"},
        )
        assert full.ready and not full.optional_missing
