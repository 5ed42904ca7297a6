"""The catalogue and its scope math: pure, no database."""

import pytest

from integrations import catalogue
from integrations.catalogue import GOOGLE_SCOPE_PREFIX as G

DESIGN_TABLE = {
    "google.gmail.readonly": "gmail.readonly",
    "google.gmail.send": "gmail.send",
    "google.gmail.compose": "gmail.compose",
    "google.gmail.modify": "gmail.modify",
    "google.calendar.readonly": "calendar.readonly",
    "google.calendar": "calendar",
    "google.slides.readonly": "presentations.readonly",
    "google.slides": "presentations",
    "google.drive.readonly": "drive.readonly",
    "google.drive": "drive",
    "google.sheets.readonly": "spreadsheets.readonly",
    "google.sheets": "spreadsheets",
    "google.docs.readonly": "documents.readonly",
    "google.docs": "documents",
}


@pytest.mark.parametrize("key,scope", DESIGN_TABLE.items())
def test_google_capabilities_map_to_the_design_scopes(key, scope):
    assert catalogue.capability(key).scopes == (G + scope,)
    assert catalogue.capability(key).provider == "google"


def test_restricted_flags_follow_google():
    restricted = {c.key for c in catalogue.CAPABILITIES if c.restricted}
    assert restricted == {
        "google.gmail.readonly",
        "google.gmail.modify",
        "google.gmail.compose",
        "google.drive",
        "google.drive.readonly",
    }


@pytest.mark.parametrize(
    "required,granted,missing",
    [
        (["google.sheets.readonly"], ["google.sheets"], []),
        (["google.sheets"], ["google.sheets.readonly"], ["google.sheets"]),
        (["google.gmail.readonly"], ["google.gmail.modify"], []),
        (["google.gmail.send"], ["google.gmail.modify"], []),  # modify → compose → send
        (["google.docs.readonly", "google.drive"], ["google.docs"], ["google.drive"]),
        (["x.tweet.read"], ["x.tweet.write"], []),
        ([], [], []),
    ],
)
def test_write_covers_read(required, granted, missing):
    assert catalogue.missing_capabilities(required, granted) == missing


def test_every_x_capability_asks_for_offline_access():
    for cap in catalogue.capabilities_of("x"):
        assert "offline.access" in cap.scopes


def test_every_covered_key_exists():
    for cap in catalogue.CAPABILITIES:
        for key in cap.covers:
            assert key in catalogue.BY_KEY, (cap.key, key)


def test_granted_capabilities_come_from_scopes():
    scopes = ["openid", "email", G + "spreadsheets", G + "gmail.send"]
    assert set(catalogue.granted_capabilities("google", scopes)) == {
        "google.sheets",
        "google.gmail.send",
    }


def test_effective_capabilities_hide_the_covered_ones():
    assert catalogue.effective_capabilities(["google.sheets", "google.sheets.readonly"]) == [
        "google.sheets"
    ]


def test_scopes_for_dedupes_in_order():
    assert catalogue.scopes_for(["x.tweet.write", "x.tweet.read"]) == [
        "tweet.read",
        "tweet.write",
        "users.read",
        "offline.access",
    ]


def test_suggest():
    assert catalogue.suggest("google.sheet.readonly") == "google.sheets.readonly"
    assert catalogue.suggest("zzzz") is None
