"""Email accounts (django-allauth) end to end through the real URLs, with the production
settings that test.py relaxes: mandatory email verification and base.py's rate limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.test import Client
from django.urls import reverse

from config.settings import base

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new staple 42"
EMAIL_PASSWORD_MISMATCH = "The email address and/or password you specified are not correct."
TOO_MANY_FAILED_LOGINS = "Too many failed login attempts. Try again later."


@pytest.fixture(autouse=True)
def production_accounts(settings) -> Iterator[None]:
    """base.py's account settings, and an empty cache (rate limits are counted there)."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.ACCOUNT_RATE_LIMITS = base.ACCOUNT_RATE_LIMITS
    assert base.ACCOUNT_EMAIL_VERIFICATION == "mandatory"
    assert isinstance(base.ACCOUNT_RATE_LIMITS, dict) and base.ACCOUNT_RATE_LIMITS
    # Rate limits are counted in the cache: it must keep what it is given.
    assert not isinstance(caches["default"], DummyCache)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def verified_alice(alice):
    """Alice with her address verified, as after a completed signup."""
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    return alice


def logged_in_user_id(client: Client) -> int | None:
    user_id = client.session.get("_auth_user_id")
    return int(user_id) if user_id is not None else None


def login(client: Client, email: str, password: str):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def link_in(message: mail.EmailMessage, url_name: str, **kwargs: str) -> str:
    """The path of the one link in ``message`` to ``url_name``: ``kwargs`` are
    placeholders for the URL's arguments; the link's part before them must match."""
    url = reverse(url_name, kwargs=kwargs)
    prefix = url[: min(url.index(v) for v in kwargs.values())]
    body = str(message.body)
    paths = [urlsplit(url).path for url in re.findall(r"https?://\S+", body) if prefix in url]
    assert len(paths) == 1, body
    return paths[0]


# --- signup and email verification ----------------------------------------------------


def test_signup_sends_a_verification_email_and_login_waits_for_it(client):
    resp = client.post(
        reverse("account_signup"),
        {"email": "carol@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_email_verification_sent")
    assert logged_in_user_id(client) is None
    carol = get_user_model().objects.get(email="carol@example.com")
    address = EmailAddress.objects.get(user=carol)
    assert address.email == "carol@example.com" and not address.verified
    (verification,) = mail.outbox
    assert verification.to == ["carol@example.com"]
    confirm_path = link_in(verification, "account_confirm_email", key="KEY")

    # The right password is not enough while the address is unverified.
    resp = login(Client(), "carol@example.com", PASSWORD)
    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in resp.wsgi_request.session

    # The link opens a confirmation page (a GET, e.g. a mail scanner's, verifies nothing)...
    reader = Client()
    page = reader.get(confirm_path)
    assert page.status_code == 200
    assert "carol@example.com" in page.content.decode()
    address.refresh_from_db()
    assert not address.verified
    # ...whose button verifies the address.
    resp = reader.post(confirm_path)
    assert resp.status_code == 302
    address.refresh_from_db()
    assert address.verified

    browser = Client()
    resp = login(browser, "carol@example.com", PASSWORD)
    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page")
    assert logged_in_user_id(browser) == carol.pk


def test_a_user_without_a_verified_address_cannot_log_in(client, alice):
    # E.g. made with createsuperuser, or the `alice` fixture: no EmailAddress row.
    resp = login(client, alice.email, PASSWORD)

    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_email_verification_sent")
    assert logged_in_user_id(client) is None
    (verification,) = mail.outbox
    assert verification.to == [alice.email]
    assert EmailAddress.objects.filter(user=alice, email=alice.email, verified=False).exists()


def test_signup_with_a_taken_address_creates_no_second_account(client, verified_alice):
    resp = client.post(
        reverse("account_signup"),
        {"email": verified_alice.email, "password1": PASSWORD, "password2": PASSWORD},
    )

    assert logged_in_user_id(client) is None
    assert get_user_model().objects.filter(email__iexact=verified_alice.email).count() == 1
    # allauth does not reveal that the address has an account: it answers as for a new
    # one and mails the owner instead (ACCOUNT_PREVENT_ENUMERATION).
    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_email_verification_sent")
    (notice,) = mail.outbox
    assert notice.to == [verified_alice.email]


# --- login and logout ---------------------------------------------------------------------


def test_login_with_the_right_password(client, verified_alice):
    resp = login(client, verified_alice.email, PASSWORD)

    assert resp.status_code == 302
    assert resp["Location"] == reverse("integrations:page")
    assert logged_in_user_id(client) == verified_alice.pk
    assert client.get(reverse("integrations:page")).status_code == 200


def test_login_with_a_wrong_password_is_refused_with_a_message(client, verified_alice):
    resp = login(client, verified_alice.email, "not the password")

    assert resp.status_code == 200
    assert EMAIL_PASSWORD_MISMATCH in resp.content.decode()
    assert logged_in_user_id(client) is None
    page = client.get(reverse("integrations:page"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("account_login"))


def test_logout_by_get_only_asks_for_confirmation(client, verified_alice):
    login(client, verified_alice.email, PASSWORD)

    page = client.get(reverse("account_logout"))

    # ACCOUNT_LOGOUT_ON_GET = False: a GET renders a page with a POST form.
    assert page.status_code == 200
    assert page.templates[0].name == "account/logout.html"
    html = page.content.decode()
    assert re.search(r'<form[^>]*method="post"', html, re.IGNORECASE)
    assert f'action="{reverse("account_logout")}"' in html
    assert logged_in_user_id(client) == verified_alice.pk


def test_logout_by_post(client, verified_alice):
    login(client, verified_alice.email, PASSWORD)

    resp = client.post(reverse("account_logout"))

    assert resp.status_code == 302
    assert logged_in_user_id(client) is None
    page = client.get(reverse("integrations:page"))
    assert page["Location"].startswith(reverse("account_login"))


def test_logout_needs_the_csrf_token(verified_alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(verified_alice)

    assert client.post(reverse("account_logout")).status_code == 403
    assert logged_in_user_id(client) == verified_alice.pk


# --- password reset -------------------------------------------------------------------------


def test_password_reset_by_the_emailed_link(client, verified_alice):
    resp = client.post(reverse("account_reset_password"), {"email": verified_alice.email})

    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_reset_password_done")
    (message,) = mail.outbox
    assert message.to == [verified_alice.email]
    key_path = link_in(message, "account_reset_password_from_key", uidb36="UID", key="KEY")

    reader = Client()
    resp = reader.get(key_path)
    # allauth moves the key from the URL into the session before showing the form.
    assert resp.status_code == 302
    set_password_path = resp["Location"]
    assert set_password_path != key_path
    form = reader.get(set_password_path)
    assert form.status_code == 200
    assert 'name="password1"' in form.content.decode()
    resp = reader.post(set_password_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_reset_password_from_key_done")

    old = login(Client(), verified_alice.email, PASSWORD)
    assert old.status_code == 200
    assert EMAIL_PASSWORD_MISMATCH in old.content.decode()
    browser = Client()
    new = login(browser, verified_alice.email, NEW_PASSWORD)
    assert new.status_code == 302
    assert logged_in_user_id(browser) == verified_alice.pk

    # The link works once.
    again = Client().get(key_path, follow=True)
    assert 'name="password1"' not in again.content.decode()


def test_password_reset_for_an_unknown_address_sends_nothing_revealing(client, verified_alice):
    resp = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    assert resp.status_code == 302
    assert resp["Location"] == reverse("account_reset_password_done")
    for message in mail.outbox:
        assert message.to == ["nobody@example.com"]
        assert "reset/key" not in str(message.body)


# --- rate limits ----------------------------------------------------------------------------


def test_repeated_failed_logins_lock_the_account_for_a_while(verified_alice, bob):
    assert isinstance(base.ACCOUNT_RATE_LIMITS, dict)
    assert base.ACCOUNT_RATE_LIMITS["login_failed"] == "10/m/ip,5/5m/key"
    EmailAddress.objects.create(user=bob, email=bob.email, verified=True, primary=True)
    client = Client()

    for _ in range(5):
        resp = login(client, verified_alice.email, "wrong")
        assert resp.status_code == 200
        assert EMAIL_PASSWORD_MISMATCH in resp.content.decode()

    # The sixth attempt is refused before the password is checked: even the right one.
    resp = login(client, verified_alice.email, PASSWORD)
    assert resp.status_code == 200
    assert TOO_MANY_FAILED_LOGINS in resp.content.decode()
    assert logged_in_user_id(client) is None
    # The key is the address, case-insensitively.
    resp = login(client, verified_alice.email.upper(), PASSWORD)
    assert TOO_MANY_FAILED_LOGINS in resp.content.decode()

    # Another account from the same address is not locked out (10/m/ip not reached).
    resp = login(Client(), bob.email, PASSWORD)
    assert resp.status_code == 302
    assert resp.wsgi_request.user.pk == bob.pk


def test_a_flood_of_login_attempts_is_answered_with_429(client, verified_alice):
    assert isinstance(base.ACCOUNT_RATE_LIMITS, dict)
    assert base.ACCOUNT_RATE_LIMITS["login"] == "30/m/ip"
    statuses = [login(client, f"guess{i}@example.com", "wrong").status_code for i in range(30)]
    assert set(statuses) == {200}

    resp = login(client, verified_alice.email, PASSWORD)

    assert resp.status_code == 429
    assert logged_in_user_id(client) is None
    # A GET of the login page is not counted, and still shows the form.
    assert client.get(reverse("account_login")).status_code == 200
