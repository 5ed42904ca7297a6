"""The app page's checklist (apps_registry.checklist), pure: the steps, the buttons on
their rows, and a heading that counts what the buttons ask."""

from __future__ import annotations

from apps_registry.checklist import build_checklist
from apps_registry.manifest import parse_manifest
from apps_registry.readiness import Grant, ToAllow, assess_readiness
from integrations.core.catalogue import BUILTIN as catalogue

GMAIL = parse_manifest(
    "name: mail\n"
    "integrations:\n"
    "  - key: google.gmail.send\n"
    "  - key: google.gmail.compose\n"
    "  - key: google.gmail.modify\n"
    "  - key: google.sheets.readonly\n"
    "  - key: google.drive.readonly\n"
    "    optional: true\n"
    "  - key: google.sa\n"
    "  - key: google.sheetz\n"
    "secrets:\n"
    "  - key: FAL_KEY\n"
    "  - key: EXTRA_KEY\n"
    "    optional: true\n"
)


def grant(*keys: str) -> Grant:
    scopes = ["openid", "email", *catalogue.scopes_for(keys)]
    return Grant(
        connection_id=7,
        provider="google",
        account="ada@gmail.example",
        capabilities=frozenset(catalogue.granted_capabilities("google", scopes)),
        status="active",
    )


def readiness(grants: list[Grant], secrets: set[str] | None = None):
    return assess_readiness(
        integrations=GMAIL.integrations,
        secrets=GMAIL.secrets,
        grants=grants,
        secret_keys=secrets or set(),
        connectable={"google"},
    )


def test_one_button_per_asked_capability_and_the_heading_counts_what_they_ask() -> None:
    checklist = build_checklist(readiness([grant("google.gmail.readonly")]), to_allow=())
    steps = {s.item.key: s for s in checklist.steps if s.item is not None}

    # modify covers send and compose: one button, on modify's row; the others say so.
    modify = steps["google.gmail.modify"]
    assert modify.action is not None and modify.action.capabilities == ("google.gmail.modify",)
    assert modify.action.connection_id == 7
    for key in ("google.gmail.send", "google.gmail.compose"):
        assert steps[key].action is None
        assert steps[key].covered_by == catalogue.label("google.gmail.modify")
    sheets = steps["google.sheets.readonly"]
    assert sheets.action is not None and sheets.action.capabilities == ("google.sheets.readonly",)
    drive = steps["google.drive.readonly"]
    assert drive.optional and drive.action is not None
    # No button brings a service-account key or knows an unknown key; no Add Permissions
    # at Google asks for a service-account key.
    assert steps["google.sa"].action is None and steps["google.sheetz"].action is None
    assert all("google.sa" not in a.capabilities for a, _ in checklist.together)
    assert steps["FAL_KEY"].state == "missing" and steps["EXTRA_KEY"].optional

    assert (checklist.permissions, checklist.covers) == (2, 4)
    assert checklist.heading == (
        "Not ready: needs 2 permissions (covers 4), 1 secret, 1 credential to bring and "
        "1 item that this server cannot provide"
    )
    # Several capabilities in one consent: the required two, and with the optional one.
    asked = [a.capabilities for a, _ in checklist.together]
    assert ("google.gmail.modify", "google.sheets.readonly") in asked
    assert asked[-1][-1] == "google.drive.readonly"
    # Nothing is there to allow yet.
    assert checklist.steps[-1].kind == "allow" and checklist.steps[-1].state == "waiting"


def test_the_allow_step_and_the_headings() -> None:
    everything = grant("google.gmail.modify", "google.sheets.readonly", "google.drive.readonly")
    there = readiness([everything], secrets={"FAL_KEY"})
    missing_sa = build_checklist(there, to_allow=())
    assert missing_sa.heading == (
        "Not ready: needs 1 credential to bring and 1 item that this server cannot provide"
    )

    to_allow = (
        ToAllow("secret", "FAL_KEY", optional=False, label="FAL_KEY", description=""),
        ToAllow("capability", "google.drive.readonly", True, "Drive: read", "", 7),
    )
    checklist = build_checklist(there, to_allow=to_allow)
    allow = checklist.steps[-1]
    assert allow.state == "missing" and allow.to_allow == to_allow and not allow.optional
    assert [s.item.key for s in checklist.steps if s.not_allowed and s.item] == [
        "google.drive.readonly",
        "FAL_KEY",
    ]
    assert checklist.heading.endswith("and your Allow")

    # Only optional items left to allow: not counted, the step is optional.
    optional_only = build_checklist(there, to_allow=to_allow[1:])
    assert optional_only.steps[-1].optional and "Allow" not in optional_only.heading
    # Declared authorization: running is the consent, there is no Allow step.
    assert all(s.kind != "allow" for s in build_checklist(there, to_allow=None).steps)


def test_ready_to_run_and_not_allowed_yet() -> None:
    app = parse_manifest("name: s\nintegrations:\n  - key: google.sheets.readonly\n")
    ready = assess_readiness(
        integrations=app.integrations,
        secrets=(),
        grants=[grant("google.sheets")],
        secret_keys=set(),
        connectable={"google"},
    )
    pending = (ToAllow("capability", "google.sheets.readonly", False, "Sheets: read", "", 7),)
    assert build_checklist(ready, to_allow=pending).heading == "Not allowed yet"
    done = build_checklist(ready, to_allow=())
    assert done.heading == "Ready to run"
    assert [s.state for s in done.steps] == ["done", "done"]
    # Nothing declared: nothing to allow, no steps.
    empty = assess_readiness(
        integrations=(), secrets=(), grants=[], secret_keys=set(), connectable={"google"}
    )
    assert build_checklist(empty, to_allow=()).steps == ()
