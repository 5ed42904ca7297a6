"""Settings → Secrets → Integrations."""

import re

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import Connection

from .factories import ConnectionFactory

pytestmark = pytest.mark.django_db
PAGE = reverse("integrations:page")


def test_page_needs_login(client):
    resp = client.get(PAGE)
    assert resp.status_code == 302
    assert resp["Location"].startswith(reverse("account_login"))


def test_empty_page_offers_connect_with_labelled_checkboxes(alice_client):
    resp = alice_client.get(PAGE)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "<span>Settings</span> → <span>Secrets</span>" in html
    assert 'href="/settings/secrets/integrations/" aria-current="page">Integrations</a>' in html
    assert "No Google account connected." in html
    assert 'action="/settings/secrets/integrations/google/connect/"' in html
    assert 'id="connect-google-google.sheets.readonly"' in html
    assert 'for="connect-google-google.sheets.readonly"' in html
    assert html.count('name="csrfmiddlewaretoken"') >= 2
    # Restricted scopes are marked.
    gmail_read = html.split('id="connect-google-google.gmail.readonly-desc"')[1].split("</div>")[0]
    assert "restricted" in gmail_read
    sheets = html.split('id="connect-google-google.sheets.readonly-desc"')[1].split("</div>")[0]
    assert "restricted" not in sheets
    assert 'aria-describedby="connect-google-google.gmail.readonly-desc"' in html


def test_connect_form_has_one_row_per_product_with_none_first(alice_client):
    html = alice_client.get(PAGE).content.decode()
    form = html.split('action="/settings/secrets/integrations/google/connect/"')[1].split(
        "</form>"
    )[0]
    legends = re.findall(r"<legend>([^<]+)</legend>", form)
    assert legends == ["Gmail", "Calendar", "Drive", "Sheets", "Docs", "Slides"]
    gmail = form.split("<legend>Gmail</legend>")[1].split("</fieldset>")[0]
    assert re.findall(r'<label for="[^"]+">([^<]+)</label>', gmail) == [
        "None",
        "Read",
        "Send only",
        "Drafts and send",
        "Read and organize",
    ]
    assert 'name="pick-gmail" value="" id="connect-google-gmail-none" checked' in gmail
    # Restricted is explained in visible words, not a tooltip.
    assert "Restricted:</strong> Google must verify apps" in gmail
    sheets = form.split("<legend>Sheets</legend>")[1].split("</fieldset>")[0]
    assert "Restricted" not in sheets
    assert form.count('class="primary"') == 1
    assert "<summary" not in form


def test_connection_shows_account_grants_status_and_only_missing_permissions(alice_client, alice):
    conn = ConnectionFactory.create(user=alice, account_email="alice@gmail.example")
    html = alice_client.get(PAGE).content.decode()
    assert "alice@gmail.example" in html
    assert "Sheets: read" in html and "Gmail: send" in html
    assert "Active" in html
    assert "Working. Renewed automatically." in html
    add_form = html.split(
        f'action="/settings/secrets/integrations/connections/{conn.pk}/add-permissions/"'
    )[1].split("</form>")[0]
    # The same picker, each row's current level shown checked and not choosable again.
    sheets = add_form.split("<legend>Sheets</legend>")[1].split("</fieldset>")[0]
    read = sheets.split('value="google.sheets.readonly"')[1].split(">")[0]
    assert " disabled" in read and " checked" in read
    assert "Read (current)" in sheets
    write = sheets.split('value="google.sheets"')[1].split(">")[0]
    assert "disabled" not in write and "checked" not in write
    assert 'value="google.drive.readonly"' in add_form
    assert 'name="pick-drive"' in add_form
    assert f'href="/settings/secrets/integrations/connections/{conn.pk}/disconnect/"' in html


def test_other_users_connections_are_not_listed(alice_client, bob):
    ConnectionFactory.create(user=bob, account_email="bob@gmail.example")
    assert "bob@gmail.example" not in alice_client.get(PAGE).content.decode()


def _queries(client) -> int:
    client.get(PAGE)  # warms the per-process provider cache
    with CaptureQueriesContext(db) as ctx:
        assert client.get(PAGE).status_code == 200
    return len(ctx.captured_queries)


def test_page_query_count_does_not_grow_with_connections(alice_client, alice):
    ConnectionFactory.create(user=alice)
    one = _queries(alice_client)
    ConnectionFactory.create_batch(19, user=alice)
    twenty = _queries(alice_client)
    assert one == twenty
    assert one <= 6


@pytest.mark.parametrize(
    ("status", "shown", "hidden"),
    [
        ("active", ["Working. Renewed automatically."], ["did not answer", "Reconnect"]),
        (
            "refresh_failing",
            ["Google did not answer our last renewal.", "Retry now"],
            ["Renewed automatically", "Reconnect"],
        ),
        (
            "needs_reconnect",
            ["Google no longer accepts this connection", "Reconnect"],
            ["Renewed automatically", "Retry now"],
        ),
    ],
)
def test_each_status_says_what_it_means(alice_client, alice, status, shown, hidden):
    conn = ConnectionFactory.create(user=alice, status=status, last_error_code="timeout")
    html = alice_client.get(PAGE).content.decode()
    assert Connection.objects.get(pk=conn.pk).status == status
    for text in shown:
        assert text in html
    for text in hidden:
        assert text not in html


@pytest.mark.django_db
def test_connecting_another_account_is_folded_behind_a_secondary_button(client, django_user_model):
    """The first Connect is the page's primary action, in the open; once an account is
    connected, another one is a secondary action behind "Connect another Google account"."""
    user = django_user_model.objects.create_user("ada", "ada@example.com", "pw-ada-long-enough")
    client.force_login(user)
    first = client.get(reverse("integrations:page")).content.decode()
    assert "<h3>Connect Google account</h3>" in first
    assert 'class="primary">Continue to Google</button>' in first
    assert "Connect another Google account</summary>" not in first

    ConnectionFactory(user=user, provider="google")
    second = client.get(reverse("integrations:page")).content.decode()
    summary = '<summary class="button">Connect another Google account</summary>'
    assert summary in second
    folded = second.split(summary, 1)[1].split("</details>", 1)[0]
    assert '<button type="submit">Continue to Google</button>' in folded  # not primary


@pytest.mark.django_db
def test_each_provider_card_has_its_logo_and_one_line(client, django_user_model):
    user = django_user_model.objects.create_user("ada", "ada@example.com", "pw-ada-long-enough")
    client.force_login(user)
    html = client.get(reverse("integrations:page")).content.decode()
    assert '<span class="logo logo-google" aria-hidden="true">G</span>' in html
    assert (
        "Lets apps use your Gmail, Calendar, Drive, Sheets, Docs and Slides, "
        "with the permissions you choose." in html
    )
