"""The catalogue and its scope math: pure, no database."""

import pytest

from integrations.core.catalogue import BUILTIN as catalogue
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.core.catalogue import Capability, ProviderInfo

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
    restricted = {c.key for c in catalogue.capabilities if c.restricted}
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
    for cap in catalogue.capabilities:
        for key in cap.covers:
            assert key in catalogue.by_key, (cap.key, key)


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


def test_labels_and_provider_names():
    assert catalogue.label("google.sheets") == "Sheets: read and write"
    assert catalogue.label("acme.read") == "acme.read"  # unknown: the key itself
    assert catalogue.provider_name("gcp") == "Google Cloud project"
    assert catalogue.provider_name("acme") == "acme"
    assert catalogue.providers["google"].identity_scopes == ("openid", "email")


def test_extended_adds_capabilities_and_providers():
    acme = ProviderInfo(id="acme", name="Acme", env={"access_token": "ACME_TOKEN"})
    read = Capability(key="acme.read", provider="acme", label="Acme: read", description="")
    cat = catalogue.extended([read], [acme, ProviderInfo(id="x", name="X (staff)")])
    assert (cat.label("acme.read"), cat.provider_name("acme")) == ("Acme: read", "Acme")
    assert cat.provider_name("x") == "X (staff)"  # a provider defined again is replaced
    assert cat.provider_name("google") == "Google"
    assert catalogue.provider_name("acme") == "acme"  # the original is unchanged


def test_picker_rows_follow_the_catalogue_data_least_level_first():
    from integrations.core.catalogue import level_label, product_rows

    rows = product_rows(catalogue.oauth_capabilities_of("google"))
    assert [r.name for r in rows] == ["Gmail", "Calendar", "Drive", "Sheets", "Docs", "Slides"]
    assert [c.key for c in rows[0].levels] == [
        "google.gmail.readonly",
        "google.gmail.send",
        "google.gmail.compose",
        "google.gmail.modify",
    ]
    # Each higher level of a two-level row covers the lower one (what "Read and write" says).
    for row in rows[1:]:
        low, high = row.levels
        assert catalogue.is_satisfied(low.key, [high.key])
        assert (level_label(low), level_label(high)) == ("Read", "Read and write")
    x = product_rows(catalogue.oauth_capabilities_of("x"))
    assert sum(len(r.levels) for r in x) == len(catalogue.oauth_capabilities_of("x"))
    assert rows[3].slug == "sheets" and x[5].slug == "direct-messages"


def test_a_capability_without_a_product_is_a_row_of_its_own():
    from integrations.core.catalogue import level_label, product_rows

    cap = Capability(key="acme.read", provider="acme", label="Acme: read", description="")
    (row,) = product_rows([cap])
    assert row.name == "Acme: read" and row.levels == (cap,) and level_label(cap) == "Allow"
