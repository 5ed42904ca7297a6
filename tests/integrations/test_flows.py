"""Connect, Add Permissions and Disconnect through our views and allauth, against a
fake Google at the HTTP edge."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import AuditEvent, Connection

from .fakes import FakeGoogle

pytestmark = pytest.mark.django_db

CALLBACK = reverse("integrations:oauth_callback", kwargs={"provider_id": "google"})


@pytest.fixture
def google():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGoogle(rsps)


def start(client: Client, caps: list[str], url: str | None = None, **extra: str) -> dict[str, str]:
    resp = client.post(
        url or reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"capabilities": caps, **extra},
    )
    assert resp.status_code == 302, resp.content
    location = urlsplit(resp["Location"])
    return {k: v[0] for k, v in parse_qs(location.query).items()} | {
        "_url": f"{location.scheme}://{location.netloc}{location.path}"
    }


def finish(client: Client, google: FakeGoogle, params: dict[str, str], **query: str):
    code = google.authorize(params)
    return client.get(CALLBACK, {"state": params["state"], "code": code, **query})


def texts(resp) -> list[str]:
    return [str(m) for m in get_messages(resp.wsgi_request)]


def test_connect_asks_google_for_exactly_the_chosen_capabilities(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly", "google.gmail.send"])

    assert params["_url"].endswith("/sandbox/o/authorize/") or "google" in params["_url"]
    assert params["client_id"]
    assert params["response_type"] == "code"
    assert params["redirect_uri"].endswith(CALLBACK)
    assert set(params["scope"].split()) == {
        "openid",
        "email",
        G + "spreadsheets.readonly",
        G + "gmail.send",
    }
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"
    assert "login_hint" not in params
    assert len(params["state"]) >= 16


def test_connect_stores_encrypted_tokens_and_the_granted_scopes(alice_client, alice, google):
    params = start(alice_client, ["google.sheets.readonly", "google.gmail.send"])
    resp = finish(alice_client, google, params)

    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page")
    conn = Connection.objects.get(user=alice)
    assert conn.account_uid == "google-sub-alice"
    assert conn.account_email == "alice@gmail.example"
    assert conn.status == Connection.Status.ACTIVE
    assert set(conn.scopes) == {"openid", "email", G + "spreadsheets.readonly", G + "gmail.send"}
    assert connection_access_token(connection=conn) == google.issued[0]
    assert connection_refresh_token(connection=conn) == google.issued[1]
    assert google.issued[0].encode() not in bytes(conn.access_token_encrypted)
    assert conn.expires_at is not None
    assert "Connected Google (alice@gmail.example): Sheets: read, Gmail: send." in texts(resp)
    # allauth never stored an account or a token of its own.
    from allauth.socialaccount.models import SocialAccount, SocialToken

    assert not SocialAccount.objects.exists()
    assert not SocialToken.objects.exists()
    event = AuditEvent.objects.get(kind="connect")
    assert event.detail["granted"] == ["google.gmail.send", "google.sheets.readonly"] or set(
        event.detail["granted"]
    ) == {"google.gmail.send", "google.sheets.readonly"}


def test_the_code_exchange_sends_the_pkce_verifier(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"])
    finish(alice_client, google, params)

    (request,) = google.token_requests
    assert request["grant_type"] == "authorization_code"
    assert len(request["code_verifier"]) >= 43


def test_partial_grant_is_stated(alice_client, alice, google):
    google.withhold = {G + "drive.readonly"}
    params = start(
        alice_client, ["google.sheets.readonly", "google.gmail.send", "google.drive.readonly"]
    )
    resp = finish(alice_client, google, params)

    assert any(
        "You granted 2 of the 3 permissions asked for" in t and "Drive: read" in t
        for t in texts(resp)
    )
    conn = Connection.objects.get(user=alice)
    assert G + "drive.readonly" not in conn.scopes


def test_cancel_at_the_provider_changes_nothing(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"])
    resp = alice_client.get(CALLBACK, {"state": params["state"], "error": "access_denied"})

    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page")
    assert "You cancelled at Google. Nothing was changed." in texts(resp)
    assert not Connection.objects.exists()


def test_provider_error_is_reported_without_details(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"])
    resp = alice_client.get(CALLBACK, {"state": params["state"], "error": "invalid_scope<script>"})
    assert any("did not complete the connection (invalid_scope)" in t for t in texts(resp))
    assert not Connection.objects.exists()


def test_replayed_state_is_refused(alice_client, alice, google):
    params = start(alice_client, ["google.sheets.readonly"])
    assert finish(alice_client, google, params).status_code == 302
    Connection.objects.all().delete()

    resp = finish(alice_client, google, params)

    assert resp.status_code == 400
    assert b"expired or was already used" in resp.content
    assert not Connection.objects.exists()


def test_missing_state_is_refused(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"])
    code = google.authorize(params)
    resp = alice_client.get(CALLBACK, {"code": code})
    assert resp.status_code == 400
    assert not Connection.objects.exists()


def test_state_of_another_session_is_refused(alice_client, bob, google):
    params = start(alice_client, ["google.sheets.readonly"])
    mallory = Client()
    mallory.force_login(bob)

    resp = finish(mallory, google, params)

    assert resp.status_code == 400
    assert not Connection.objects.exists()
    # Alice's own state is still good for Alice.
    assert finish(alice_client, google, params).status_code == 302


def test_a_get_never_starts_a_flow(alice_client):
    resp = alice_client.get(reverse("integrations:connect", kwargs={"provider_id": "google"}))
    assert resp.status_code == 405
    assert "socialaccount_states" not in alice_client.session


def test_anonymous_connect_goes_to_login(client):
    resp = client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"capabilities": ["google.sheets.readonly"]},
    )
    assert resp.status_code == 302
    assert resp["Location"].startswith(reverse("account_login"))


def test_unknown_capability_is_refused(alice_client):
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"capabilities": ["google.sheets.readonly", "x.tweet.write"]},
    )
    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page")
    assert any("not one of the available choices" in t for t in texts(resp))
    assert "socialaccount_states" not in alice_client.session


def test_nothing_chosen_is_refused(alice_client):
    resp = alice_client.post(reverse("integrations:connect", kwargs={"provider_id": "google"}))
    assert "Choose at least one permission." in texts(resp)


def test_unknown_provider_is_404(alice_client):
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "nope"}),
        {"capabilities": ["google.sheets.readonly"]},
    )
    assert resp.status_code == 404


def test_off_site_next_is_ignored(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"], next="https://evil.example/steal")
    resp = finish(alice_client, google, params)
    assert resp["Location"] == reverse("integrations:page")


def test_on_site_next_is_followed(alice_client, google):
    params = start(alice_client, ["google.sheets.readonly"], next="/apps/acme/report/")
    resp = finish(alice_client, google, params)
    assert resp["Location"] == "/apps/acme/report/"


def connect(client: Client, google: FakeGoogle, caps: list[str]) -> Connection:
    finish(client, google, start(client, caps))
    return Connection.objects.latest("id")


def test_add_permissions_keeps_the_account_and_the_grant(alice_client, google):
    conn = connect(alice_client, google, ["google.gmail.readonly", "google.calendar.readonly"])
    url = reverse("integrations:add_permissions", kwargs={"id": conn.pk})

    params = start(alice_client, ["google.sheets.readonly"], url=url)

    assert params["login_hint"] == "alice@gmail.example"
    assert params["include_granted_scopes"] == "true"
    assert "prompt" not in params  # a refresh token is stored already
    assert set(params["scope"].split()) == {"openid", "email", G + "spreadsheets.readonly"}

    # Google answers with every scope of the grant (include_granted_scopes).
    params["scope"] += f" {G}gmail.readonly {G}calendar.readonly"
    google.send_refresh_token = False
    resp = finish(alice_client, google, params)

    conn.refresh_from_db()
    assert Connection.objects.count() == 1
    assert {G + "gmail.readonly", G + "calendar.readonly", G + "spreadsheets.readonly"} <= set(
        conn.scopes
    )
    assert "Updated Google (alice@gmail.example): granted Sheets: read." in texts(resp)
    # A token response without a refresh token keeps the stored one.
    assert connection_refresh_token(connection=conn) == google.issued[1]
    assert connection_access_token(connection=conn) == google.issued[-1]
    assert AuditEvent.objects.filter(kind="add_permissions").count() == 1


def test_add_permissions_only_offers_what_is_not_granted(alice_client, google):
    conn = connect(alice_client, google, ["google.sheets"])
    url = reverse("integrations:add_permissions", kwargs={"id": conn.pk})
    resp = alice_client.post(url, {"capabilities": ["google.sheets.readonly"]})
    assert resp["Location"] == reverse("integrations:page")
    assert any("not one of the available choices" in t for t in texts(resp))


def test_add_permissions_with_another_account_is_refused(alice_client, google):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    params = start(
        alice_client,
        ["google.sheets.readonly"],
        url=reverse("integrations:add_permissions", kwargs={"id": conn.pk}),
    )
    google.sub, google.email = "google-sub-other", "other@gmail.example"

    resp = finish(alice_client, google, params)

    assert resp.status_code == 302
    assert any("as other@gmail.example, not as the account" in t for t in texts(resp))
    conn.refresh_from_db()
    assert conn.account_uid == "google-sub-alice"
    assert G + "spreadsheets.readonly" not in conn.scopes
    assert connection_access_token(connection=conn) == google.issued[0]
    assert Connection.objects.count() == 1
    assert AuditEvent.objects.filter(kind="connect_refused", error_code="account_mismatch").exists()


def test_prompt_consent_on_add_permissions_without_refresh_token(alice_client, google):
    google.send_refresh_token = False
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    assert not conn.has_refresh_token
    params = start(
        alice_client,
        ["google.sheets.readonly"],
        url=reverse("integrations:add_permissions", kwargs={"id": conn.pk}),
    )
    assert params["prompt"] == "consent"


def test_connecting_the_same_account_again_updates_it(alice_client, google):
    connect(alice_client, google, ["google.gmail.readonly"])
    connect(alice_client, google, ["google.sheets.readonly"])
    assert Connection.objects.count() == 1


def test_every_google_flow_asks_for_the_earlier_grants_too(alice_client, google):
    """Connect included: the account chosen at Google may be one already connected."""
    params = start(alice_client, ["google.sheets.readonly"])
    assert params["include_granted_scopes"] == "true"


def test_connect_returning_a_connected_account_keeps_its_grants_and_says_so(alice_client, google):
    conn = connect(alice_client, google, ["google.sheets.readonly"])
    params = start(alice_client, ["google.calendar.readonly"])
    # Google answers with the union of this client's grants for the account.
    params["scope"] += f" {G}spreadsheets.readonly"
    resp = finish(alice_client, google, params)

    conn.refresh_from_db()
    assert Connection.objects.count() == 1
    assert {G + "spreadsheets.readonly", G + "calendar.readonly"} <= set(conn.scopes)
    assert "Google (alice@gmail.example) was already connected; added Calendar: read." in texts(
        resp
    )

    again = finish(alice_client, google, start(alice_client, ["google.calendar.readonly"]))
    assert (
        "Google (alice@gmail.example) was already connected; it already had Calendar: read."
        in texts(again)
    )


def test_two_users_may_connect_the_same_google_account(alice_client, bob, google):
    connect(alice_client, google, ["google.gmail.readonly"])
    other = Client()
    other.force_login(bob)
    connect(other, google, ["google.gmail.readonly"])
    assert Connection.objects.filter(account_uid="google-sub-alice").count() == 2


def test_response_without_scope_means_the_requested_scopes(alice_client, google):
    google.send_scope = False
    conn = connect(alice_client, google, ["google.sheets.readonly"])
    assert G + "spreadsheets.readonly" in conn.scopes


def test_disconnect_asks_for_confirmation_then_revokes(alice_client, google):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    url = reverse("integrations:disconnect", kwargs={"id": conn.pk})

    page = alice_client.get(url)
    assert page.status_code == 200
    assert b"Disconnect Google?" in page.content
    assert Connection.objects.filter(pk=conn.pk).exists()

    resp = alice_client.post(url)

    assert resp.status_code == 302
    assert google.revoked == [google.issued[1]]  # the refresh token: the whole grant
    assert not Connection.objects.filter(pk=conn.pk).exists()
    assert "Disconnected Google (alice@gmail.example); Google revoked the access." in texts(resp)
    revocation = AuditEvent.objects.get(kind="revocation")
    assert revocation.ok and revocation.connection_id == conn.pk


@pytest.mark.parametrize("status", [400, 503])
def test_failed_revocation_is_recorded_and_shown_and_tokens_deleted(alice_client, google, status):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    google.revoke_status = status

    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))

    assert not Connection.objects.filter(pk=conn.pk).exists()
    assert any("did not confirm the revocation (server_error)" in t for t in texts(resp))
    event = AuditEvent.objects.get(kind="revocation")
    assert not event.ok and event.error_code == "server_error"


def test_unreachable_revocation_endpoint_still_deletes(alice_client, google):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    google.rsps.replace(
        responses.POST,
        google.rsps.registered()[-1].url,
        body=requests.ConnectionError("connection refused"),
    )
    resp = alice_client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
    assert not Connection.objects.exists()
    assert any("did not confirm the revocation (ConnectionError)" in t for t in texts(resp))


@pytest.mark.parametrize(
    "name,method", [("add_permissions", "post"), ("disconnect", "get"), ("disconnect", "post")]
)
def test_another_users_connection_is_404(alice_client, bob, google, name, method):
    conn = connect(alice_client, google, ["google.gmail.readonly"])
    other = Client()
    other.force_login(bob)
    resp = getattr(other, method)(
        reverse(f"integrations:{name}", kwargs={"id": conn.pk}),
        {"capabilities": ["google.sheets.readonly"]} if method == "post" else None,
    )
    assert resp.status_code == 404
    assert Connection.objects.filter(pk=conn.pk).exists()
    assert google.revoked == []


def test_connect_and_disconnect_without_csrf_token_are_403(alice, google):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    resp = client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"capabilities": ["google.sheets.readonly"]},
    )
    assert resp.status_code == 403
    assert "socialaccount_states" not in client.session

    conn = Connection.objects.create(
        user=alice, provider="google", account_uid="s", access_token_encrypted=b"x"
    )
    for name in ("disconnect", "add_permissions"):
        resp = client.post(reverse(f"integrations:{name}", kwargs={"id": conn.pk}))
        assert resp.status_code == 403
    assert Connection.objects.filter(pk=conn.pk).exists()


def test_callback_for_a_logged_out_user_is_refused(client, alice, google):
    client.force_login(alice)
    params = start(client, ["google.sheets.readonly"])
    client.logout()
    resp = finish(client, google, params)
    assert resp.status_code == 400
    assert not Connection.objects.exists()


def test_two_accounts_of_one_provider_one_default(alice_client, alice, google):
    first = connect(alice_client, google, ["google.gmail.readonly"])
    google.sub, google.email = "google-sub-work", "alice@work.example"
    second = connect(alice_client, google, ["google.sheets.readonly"])
    first.refresh_from_db()
    assert first.is_default and not second.is_default
    page = alice_client.get(reverse("integrations:page")).content.decode()
    assert "default for apps" in page and "Make default" in page

    resp = alice_client.post(reverse("integrations:make_default", kwargs={"id": second.pk}))
    assert resp.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_default and not first.is_default

    alice_client.post(reverse("integrations:disconnect", kwargs={"id": second.pk}))
    first.refresh_from_db()
    assert first.is_default  # the remaining one inherits


def test_make_default_is_owned_and_post_only(alice_client, bob, google):
    other = Client()
    other.force_login(bob)
    conn = connect(other, google, ["google.gmail.readonly"])
    url = reverse("integrations:make_default", kwargs={"id": conn.pk})
    assert alice_client.post(url).status_code == 404
    assert other.get(url).status_code == 405


def test_connect_takes_the_pickers_rows_and_the_old_capabilities_field_together(
    alice_client, google
):
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {
            "pick-gmail": "",  # None
            "pick-sheets": "google.sheets",
            "pick-calendar": "google.calendar.readonly",
            "capabilities": ["google.docs.readonly"],
        },
    )
    assert resp.status_code == 302
    scope = set(parse_qs(urlsplit(resp["Location"]).query)["scope"][0].split())
    assert {G + "spreadsheets", G + "calendar.readonly", G + "documents.readonly"} <= scope
    assert not any("gmail" in s for s in scope)


def test_a_picked_level_that_is_not_offered_is_refused_without_a_flow(alice_client, alice):
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"pick-posts": "x.tweet.write"},
    )
    assert resp.status_code == 302 and resp["Location"] == reverse("integrations:page")
    assert any("not one of the available choices" in t for t in texts(resp))
    assert not Connection.objects.filter(user=alice).exists()


def test_connect_with_every_row_at_none_asks_for_a_choice(alice_client):
    resp = alice_client.post(
        reverse("integrations:connect", kwargs={"provider_id": "google"}),
        {"pick-gmail": "", "pick-sheets": ""},
    )
    assert resp["Location"] == reverse("integrations:page")
    assert texts(resp) == ["Choose at least one permission."]
