"""manifest_upload and the API-token services, against the database."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps_registry import selectors, services
from apps_registry.errors import ManifestRejectedError, NamespaceOwnedError
from apps_registry.manifest import MAX_MANIFEST_BYTES
from apps_registry.models import ApiToken, App, ManifestVersion
from apps_registry.services import derive_default_namespace

from .conftest import REAL, REPORT, own_namespaces

pytestmark = pytest.mark.django_db

BROKEN_REPORT = REPORT.replace("optional: true", "optional: yes")


def test_first_valid_upload_creates_the_app_owned_by_the_uploader(alice, upload):
    version = upload(alice)

    app = App.objects.get()
    assert (app.namespace, app.name, app.owner) == ("acme", "report", alice)
    assert app.current_version == version
    assert (version.number, version.valid, version.uploaded_by) == (1, True, alice)
    assert version.raw_text == REPORT
    assert version.errors == []
    assert version.parsed["title"] == "Weekly report"
    assert version.parsed["integrations"][1] == {
        "key": "google.drive.readonly",
        "description": "Find the spreadsheet in Drive",
        "optional": True,
    }


def test_versions_count_up_and_the_newest_valid_one_is_current(alice, upload):
    v1 = upload(alice)
    v2 = upload(alice, REPORT.replace("Weekly", "Daily"))
    v3 = upload(alice, BROKEN_REPORT)

    app = App.objects.get()
    assert [v1.number, v2.number, v3.number] == [1, 2, 3]
    assert app.current_version == v2
    assert not v3.valid
    assert v3.parsed == {}
    assert v3.raw_text == BROKEN_REPORT
    (error,) = v3.errors
    assert error["line"] == 10 and error["path"] == "integrations[1].optional"
    assert "must be true or false" in error["message"]


def test_an_invalid_first_upload_is_kept_but_the_app_has_no_current_version(alice, bob, upload):
    version = upload(alice, BROKEN_REPORT)

    app = App.objects.get()
    assert app.current_version is None and app.owner == alice and not version.valid
    # Such an app is for its owner (and staff) only.
    assert selectors.app_for_user(user=alice, namespace="acme", name="report") == app
    with pytest.raises(Exception, match="No such app"):
        selectors.app_for_user(user=bob, namespace="acme", name="report")


def test_real_manifests_upload_valid_with_their_warnings(alice, upload):
    own_namespaces(alice, "google", "x", "discord")
    for text in REAL.values():
        assert upload(alice, text).valid
    assert App.objects.count() == len(REAL)


def test_manifest_without_namespace_goes_to_the_uploaders_namespace(make_user, upload):
    user = get_user_model().objects.create_user(username="Ada.Lovelace+x", email="ada@example.com")
    version = upload(user, REAL["native-agents-browser-use.inf.yml"])
    assert version.app.slug == "ada-lovelace-x/browser-use"


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("ada", "ada"),
        ("Ada.Lovelace", "ada-lovelace"),
        ("ada@example.com", "ada-example-com"),
        ("__ada__", "ada"),
        ("émile", "mile"),
        ("!!!", "user-42"),
        ("x" * 80, "x" * 64),
        ("a" * 63 + "-b", "a" * 63),
    ],
)
def test_default_namespace_is_a_slug_of_the_username(username, expected):
    assert derive_default_namespace(username=username, user_id=42) == expected


def test_another_users_app_is_refused_and_nothing_is_stored(alice, bob, upload):
    upload(alice)
    with pytest.raises(NamespaceOwnedError, match=r"Ask alice@example\.com to add you"):
        upload(bob, REPORT.replace("Weekly", "Hijacked"))
    with pytest.raises(NamespaceOwnedError):
        upload(bob, BROKEN_REPORT)  # not even as an invalid version
    assert ManifestVersion.objects.count() == 1
    current = App.objects.get().current_version
    assert current is not None and current.parsed["title"] == "Weekly report"


def test_staff_may_upload_a_version_of_anyones_app(alice, admin_user, upload):
    upload(alice)
    version = upload(admin_user, REPORT.replace("Weekly", "Staff"))
    assert version.number == 2 and version.uploaded_by == admin_user
    assert App.objects.get().owner == alice


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"name: big\n#" + b"x" * MAX_MANIFEST_BYTES, "too large"),
        ("name: big\n#" + "x" * MAX_MANIFEST_BYTES, "too large"),
        (b"name: latin\ndescription: caf\xe9\n", "not valid UTF-8"),
        ("name: [unclosed\n", "is never closed"),
        ("description: no name\n", "missing required field"),
        ("name: Not A Slug\n", "must be a slug"),
        ("namespace: Bad NS\nname: fine\n", "must be a slug"),
        ("name: nul\x00\n", "not allowed"),
        ("- a list\n", "must be a mapping"),
        ("", "empty"),
    ],
)
def test_uploads_that_name_no_app_are_refused_and_not_stored(alice, upload, text, message):
    with pytest.raises(ManifestRejectedError) as info:
        upload(alice, text)
    assert any(message in p.message for p in info.value.problems)
    assert not App.objects.exists() and not ManifestVersion.objects.exists()


def test_an_invalid_manifest_that_names_its_app_is_kept(alice, upload):
    version = upload(alice, "namespace: acme\nname: kept\nintegrations: nope\n")
    assert version.app.slug == "acme/kept" and not version.valid
    assert version.errors[0]["path"] == "integrations"


def test_null_namespace_counts_as_absent_for_invalid_manifests_too(alice, upload):
    version = upload(alice, "namespace:\nname: kept\nsecrets: 3\n")
    assert version.app.namespace == selectors_default(alice) and not version.valid


def selectors_default(user) -> str:
    return services.default_namespace_for(user)


def test_upload_into_a_given_app_must_name_it(alice, upload):
    app = upload(alice).app
    version = upload(alice, REPORT.replace("name: report", "name: other"), app=app)
    assert version.app == app and not version.valid
    (error,) = version.errors
    assert error["line"] == 2 and error["path"] == "name"
    assert "acme/other, not for acme/report" in error["message"]
    # Without a namespace, the given app's namespace is assumed.
    ok = upload(alice, REPORT.replace("namespace: acme\n", ""), app=app)
    assert ok.valid and App.objects.get(pk=app.pk).current_version == ok


def test_values_json_cannot_hold_are_stored_as_strings(alice, upload):
    text = (
        "name: odd-values\nmetadata:\n  a: .nan\n  b: -.inf\n  c: 0x" + "f" * 5000 + "\n"
        "  d: 123456789012345678901234567890\n  e: 1.5\n"
    )
    version = upload(alice, text)
    version.refresh_from_db()
    meta = version.parsed["metadata"]
    assert meta["a"] == ".nan" and meta["b"] == "-.inf" and meta["e"] == 1.5
    assert meta["c"].startswith("0xfff")
    assert meta["d"] == "123456789012345678901234567890"


def test_api_token_is_stored_only_as_a_hash(alice):
    row, token = services.api_token_create(user=alice, name="ci")
    assert token.startswith("ihub_") and len(token) > 40
    assert row.prefix == token[: len(row.prefix)] and len(row.prefix) == 11
    stored = ApiToken.objects.filter(pk=row.pk).values().get()
    assert token not in repr(stored) and token not in str(row) and token not in repr(row)
    assert selectors.api_token_for(token=token) == row
    assert selectors.api_token_for(token=token + "x") is None
    assert selectors.api_token_for(token="") is None


def test_api_token_of_an_inactive_user_is_refused(alice):
    _, token = services.api_token_create(user=alice, name="ci")
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert selectors.api_token_for(token=token) is None


def test_readiness_selector_reads_in_two_queries(alice, bob, upload, django_assert_num_queries):
    from integrations.core.catalogue import BUILTIN
    from integrations.providers import registry
    from integrations.secrets import secret_set
    from tests.integrations.factories import ConnectionFactory

    upload(alice)
    app = selectors.app_for_user(user=bob, namespace="acme", name="report")
    for i in range(5):
        ConnectionFactory.create(
            user=bob, scopes=["openid", "email", *BUILTIN.scopes_for(["google.sheets.readonly"])]
        )
        secret_set(user=bob, key=f"KEY_{i}", value="v")
    registry.connectable_providers()  # its provider definitions are cached
    with django_assert_num_queries(2):  # connections, secret keys
        readiness = selectors.readiness_for(user=bob, app=app)
    assert readiness is not None and readiness.ready
