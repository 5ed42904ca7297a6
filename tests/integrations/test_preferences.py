"""Settings → Preferences: the user's time zone, activated for each of their requests
(``TimeZoneMiddleware``); the browser's zone taken once while none is chosen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import Connection, UserPreferences
from integrations.preferences import preferences_time_zone_set

from .factories import ConnectionFactory

pytestmark = pytest.mark.django_db
PREFS = reverse("integrations:preferences")
DETECT = reverse("integrations:time_zone_detect")
PAGE = reverse("integrations:page")
# 12:00 UTC: 14:00 in Paris (summer time), 21:00 in Tokyo.
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def connected_at_noon(user) -> Connection:
    conn = ConnectionFactory.create(user=user, account_email="a@gmail.example")
    Connection.objects.filter(pk=conn.pk).update(created_at=NOON)
    return conn


def test_without_a_choice_times_are_utc_and_the_page_offers_the_browser_zone(alice_client, alice):
    connected_at_noon(alice)
    html = alice_client.get(PAGE).content.decode()
    assert "1 Jun 2026, 12:00 UTC" in html
    assert f'action="{DETECT}" data-browser-time-zone hidden>' in html
    assert 'src="/static/js/time-zone.js"' in html


def test_the_chosen_zone_is_used_for_the_users_pages(alice_client, alice):
    connected_at_noon(alice)
    resp = alice_client.post(PREFS, {"time_zone": "Europe/Paris"}, follow=True)
    assert resp.redirect_chain == [(PREFS, 302)]
    assert "Times are now shown in Europe/Paris." in resp.content.decode()
    assert UserPreferences.objects.get(user=alice).time_zone == "Europe/Paris"
    assert '<option value="Europe/Paris" selected>' in resp.content.decode()
    html = alice_client.get(PAGE).content.decode()
    assert "1 Jun 2026, 14:00 CEST" in html
    assert "data-browser-time-zone" not in html and "time-zone.js" not in html


def _prefs_queries(client) -> int:
    with CaptureQueriesContext(db) as ctx:
        assert "1 Jun 2026, 21:00 JST" in client.get(PAGE).content.decode()
    return len([q for q in ctx.captured_queries if "userpreferences" in q["sql"]])


def test_the_zone_is_read_at_sign_in_not_per_page(alice):
    connected_at_noon(alice)
    preferences_time_zone_set(user=alice, time_zone="Asia/Tokyo")
    client = Client()
    client.force_login(alice)
    assert _prefs_queries(client) == 0
    # A session signed in before the preference existed reads it once.
    session = client.session
    del session["integrations_time_zone"]
    session.save()
    assert _prefs_queries(client) == 1
    assert _prefs_queries(client) == 0


def test_another_users_zone_is_not_used(client, alice, bob):
    preferences_time_zone_set(user=alice, time_zone="Asia/Tokyo")
    connected_at_noon(bob)
    client.force_login(bob)
    assert "1 Jun 2026, 12:00 UTC" in client.get(PAGE).content.decode()


def test_an_unknown_zone_is_refused(alice_client, alice):
    resp = alice_client.post(PREFS, {"time_zone": "Mars/Olympus_Mons"})
    assert resp.status_code == 400
    assert "Select a valid choice." in resp.content.decode()
    assert not UserPreferences.objects.filter(user=alice).exists()
    with pytest.raises(ValidationError):
        preferences_time_zone_set(user=alice, time_zone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError):
        UserPreferences(user=alice, time_zone="Mars/Olympus_Mons").full_clean()


def test_preferences_needs_login_and_csrf(client, alice):
    assert client.get(PREFS).status_code == 302
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(alice)
    assert csrf.post(PREFS, {"time_zone": "Europe/Paris"}).status_code == 403
    assert csrf.post(DETECT, {"time_zone": "Europe/Paris"}).status_code == 403
    assert not UserPreferences.objects.filter(user=alice).exists()


def test_the_browser_zone_is_taken_once_and_never_over_a_choice(alice_client, alice):
    connected_at_noon(alice)
    assert alice_client.post(DETECT, {"time_zone": "Europe/Paris"}).status_code == 204
    assert "14:00 CEST" in alice_client.get(PAGE).content.decode()
    alice_client.post(PREFS, {"time_zone": "Asia/Tokyo"})
    assert alice_client.post(DETECT, {"time_zone": "America/New_York"}).status_code == 204
    assert UserPreferences.objects.get(user=alice).time_zone == "Asia/Tokyo"
    assert "21:00 JST" in alice_client.get(PAGE).content.decode()
    assert alice_client.post(DETECT, {"time_zone": "not a zone"}).status_code == 400
    assert alice_client.get(DETECT).status_code == 405


def test_visitors_get_utc_and_no_detection(client):
    html = client.get(reverse("account_login")).content.decode()
    assert "data-browser-time-zone" not in html


def test_the_settings_tabs_link_preferences(alice_client):
    html = alice_client.get(PREFS).content.decode()
    assert f'href="{PREFS}" aria-current="page">Preferences</a>' in html
    assert '<label for="id_time_zone">Time zone</label>' in html
    assert '<option value="UTC" selected>' in html
    page = alice_client.get(PAGE).content.decode()
    assert f'href="{PREFS}">Preferences</a>' in page
