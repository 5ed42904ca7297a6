"""The account pages (django-allauth's) in the site's frame: every sign-in, sign-up, email,
password and two-factor page is base.html's (its header) with allauth's content in one
card (templates/allauth/layouts/), its forms laid out by templates/allauth/elements/:
a label above every field, a field's errors right under it, one primary button per form.
The flows still work through those pages: sign-up → verification mail → confirm → sign
in, and a password reset by the mailed link.

TOTP codes are computed with allauth's own functions from the authenticator's secret, as
an authenticator app would."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from .test_accounts import link_in, logged_in_user_id

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new staple 42"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(autouse=True)
def _no_used_codes() -> Iterator[None]:
    """allauth remembers used TOTP codes in the cache (a code works once): a test's code
    is not another's, whose authenticator may have the same id."""
    cache.clear()
    yield
    cache.clear()


class _Page(HTMLParser):
    """What the checks below need of a page: its forms' fields, labels and primary
    buttons, and whether the account card sits in base.html's frame."""

    def __init__(self) -> None:
        super().__init__()
        self.in_header = False
        self.site_header = False
        self.account_card = False
        self.account_tabs = False
        self.current_tab = ""
        self._in_current_tab = False
        self._stack: list[str] = []
        self.forms: list[dict[str, list[str]]] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        classes = attrs.get("class", "").split()
        if tag == "header" and "top" in classes:
            self.site_header = True
            self.in_header = True
        if tag == "div":
            self._stack.append(" ".join(classes))
            if "card" in classes and self._stack[-2:-1] == ["account-page"]:
                self.account_card = True
        if tag == "nav" and attrs.get("aria-label") == "Account settings":
            self.account_tabs = True
        if tag == "a" and attrs.get("aria-current") == "page" and self.account_tabs:
            self._in_current_tab = True
        if self.in_header:
            return
        if tag == "form":
            self.forms.append({"fields": [], "primary": []})
        if tag == "label" and "for" in attrs:
            self.labels.add(attrs["for"])
        if not self.forms:
            return
        form = self.forms[-1]
        if tag in ("input", "textarea", "select") and attrs.get("type") != "hidden":
            form["fields"].append(attrs.get("id", ""))
        if tag in ("button", "a") and "primary" in classes:
            form["primary"].append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "header":
            self.in_header = False
        if tag == "div" and self._stack:
            self._stack.pop()
        if tag == "a":
            self._in_current_tab = False

    def handle_data(self, data: str) -> None:
        if self._in_current_tab:
            self.current_tab += data.strip()


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def assert_house_style(resp, *, tab: str | None = None) -> _Page:
    """``resp`` is a 200 account page in base.html's frame, allauth's content in the
    account card; every field has its label and no form more than one primary button
    (and one with fields exactly one). ``tab``: the account tab shown as the current one
    (manage pages), or no tabs at all (sign-in and the like)."""
    assert resp.status_code == 200, resp.status_code
    html = resp.content.decode()
    page = parse(html)
    assert page.site_header, "not base.html's header"
    assert page.account_card, "allauth's content is not in the account card"
    for form in page.forms:
        assert all(f in page.labels for f in form["fields"] if f), form
        assert len(form["primary"]) == (1 if form["fields"] else len(form["primary"])) <= 1, form
    if tab is None:
        assert not page.account_tabs
    else:
        assert page.account_tabs and page.current_tab == tab
    return page


def verified_user(email: str = "dana@example.com", password: str | None = PASSWORD):
    user = get_user_model().objects.create_user(email.split("@")[0], email, password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def totp_code() -> str:
    return format_hotp_value(hotp_value(TOTP_SECRET, int(time.time()) // 30))


def signed_in(user, *, codes: tuple[str, str] | None = None) -> Client:
    """A client that signed in through the sign-in form and then confirmed its access
    again (the two-factor pages ask for that) by password; a user with two-factor
    authentication gives ``codes`` instead: one to sign in, one to confirm (allauth
    takes a code once)."""
    client = Client()
    resp = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert resp.status_code == 302
    if codes is not None:
        assert resp["Location"] == reverse("mfa_authenticate")
        resp = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
        assert resp.status_code == 302
    assert logged_in_user_id(client) == user.pk
    if codes is None:
        confirm = client.get(reverse("account_reauthenticate"))
        assert_house_style(confirm)
        resp = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    else:
        assert_house_style(client.get(reverse("mfa_reauthenticate")))
        resp = client.post(reverse("mfa_reauthenticate"), {"code": codes[1]})
    assert resp.status_code == 302, resp.content.decode()
    return client


# --- signed out ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name",
    [
        "account_login",
        "account_signup",
        "account_reset_password",
        "account_reset_password_done",
        "account_reset_password_from_key_done",
        "account_email_verification_sent",
    ],
)
def test_signed_out_pages_are_in_the_sites_frame(client, url_name):
    assert_house_style(client.get(reverse(url_name)))


def test_sign_in_and_sign_up_link_each_other_and_the_password_reset(client):
    sign_in = client.get(reverse("account_login")).content.decode()
    sign_up = client.get(reverse("account_signup")).content.decode()

    assert f'href="{reverse("account_signup")}"' in sign_in
    assert f'href="{reverse("account_reset_password")}"' in sign_in
    assert f'href="{reverse("account_login")}"' in sign_up


def test_a_fields_errors_are_under_it_and_named_by_it(client):
    resp = client.post(
        reverse("account_signup"),
        {"email": "not an address", "password1": "abc", "password2": "abc"},
    )

    assert_house_style(resp)
    html = resp.content.decode()
    email_input = re.search(r'<input[^>]*name="email"[^>]*>', html)
    assert email_input is not None
    assert 'aria-invalid="true"' in email_input.group()
    assert 'aria-describedby="id_email_error"' in email_input.group()
    after_input = html[email_input.end() :]
    errors = re.match(r'\s*<ul class="errors" id="id_email_error"><li>([^<]*)</li>', after_input)
    assert errors is not None and errors.group(1) == "Enter a valid email address."
    assert not get_user_model().objects.filter(email="not an address").exists()


def test_a_wrong_password_is_said_above_the_fields(client):
    verified_user()

    resp = client.post(reverse("account_login"), {"login": "dana@example.com", "password": "x"})

    assert_house_style(resp)
    assert re.search(
        r'<div role="alert" class="msg msg-error form-errors"><ul class="errors">'
        r"<li>The email address and/or password you specified are not correct.</li></ul>",
        resp.content.decode(),
    )
    assert logged_in_user_id(client) is None


def test_sign_up_verify_the_address_and_sign_in_through_the_pages(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    assert_house_style(client.get(reverse("account_signup")))

    resp = client.post(
        reverse("account_signup"),
        {"email": "erin@example.com", "password1": PASSWORD, "password2": PASSWORD},
        follow=True,
    )

    assert resp.redirect_chain[-1][0] == reverse("account_email_verification_sent")
    assert_house_style(resp)
    assert logged_in_user_id(client) is None
    (verification,) = mail.outbox
    confirm_path = link_in(verification, "account_confirm_email", key="KEY")
    confirm = client.get(confirm_path)
    assert_house_style(confirm)
    assert "erin@example.com" in confirm.content.decode()

    resp = client.post(confirm_path, follow=True)

    assert resp.redirect_chain[-1][0] == reverse("account_login")
    assert_house_style(resp)
    assert EmailAddress.objects.get(email="erin@example.com").verified
    resp = client.post(
        reverse("account_login"), {"login": "erin@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 302
    assert logged_in_user_id(client) == get_user_model().objects.get(email="erin@example.com").pk


def test_an_expired_confirmation_link_says_so_in_the_frame(client):
    resp = client.get(reverse("account_confirm_email", kwargs={"key": "no-such-key"}))

    assert_house_style(resp)
    assert "expired or is invalid" in resp.content.decode()


def test_reset_the_password_through_the_pages(client):
    dana = verified_user()
    assert_house_style(client.get(reverse("account_reset_password")))

    resp = client.post(reverse("account_reset_password"), {"email": dana.email}, follow=True)

    assert resp.redirect_chain[-1][0] == reverse("account_reset_password_done")
    assert_house_style(resp)
    (message,) = mail.outbox
    key_path = link_in(message, "account_reset_password_from_key", uidb36="UID", key="KEY")
    form = client.get(key_path, follow=True)
    assert_house_style(form)
    set_password_path = form.redirect_chain[-1][0]

    resp = client.post(
        set_password_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, follow=True
    )

    assert resp.redirect_chain[-1][0] == reverse("account_reset_password_from_key_done")
    assert_house_style(resp)
    dana.refresh_from_db()
    assert dana.check_password(NEW_PASSWORD)


def test_a_used_reset_link_says_so_in_the_frame(client):
    dana = verified_user()
    key = default_token_generator.make_token(dana)
    uidb36 = user_pk_to_url_str(dana)
    dana.set_password(NEW_PASSWORD)  # the token was for the old password
    dana.save(update_fields=["password"])

    resp = client.get(
        reverse("account_reset_password_from_key", kwargs={"uidb36": uidb36, "key": key}),
        follow=True,
    )

    assert_house_style(resp)
    assert "Bad Token" in resp.content.decode()


def test_the_confirm_page_of_an_unverified_address(client):
    frank = get_user_model().objects.create_user("frank", "frank@example.com", PASSWORD)
    address = EmailAddress.objects.create(user=frank, email=frank.email, primary=True)
    key = EmailConfirmationHMAC(address).key

    resp = client.get(reverse("account_confirm_email", kwargs={"key": key}))

    page = assert_house_style(resp)
    assert [len(form["primary"]) for form in page.forms if form["primary"]] == [1]
    address.refresh_from_db()
    assert not address.verified


# --- signed in: account management -------------------------------------------------------


def test_the_email_page_is_an_account_tab():
    client = signed_in(verified_user())

    resp = client.get(reverse("account_email"))

    assert_house_style(resp, tab="Email addresses")
    html = resp.content.decode()
    assert '<span class="badge ok">' in html and "Verified" in html


def test_adding_an_address_from_the_email_page():
    dana = verified_user()
    client = signed_in(dana)

    resp = client.post(
        reverse("account_email"), {"action_add": "", "email": "dana.work@example.com"}
    )

    assert resp.status_code == 302
    address = EmailAddress.objects.get(user=dana, email="dana.work@example.com")
    assert not address.verified
    page = client.get(reverse("account_email"))
    assert_house_style(page, tab="Email addresses")
    assert '<span class="badge pending">' in page.content.decode()


def test_change_the_password_from_its_tab():
    dana = verified_user()
    client = signed_in(dana)
    assert_house_style(client.get(reverse("account_change_password")), tab="Password")

    resp = client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert resp.status_code == 302
    dana.refresh_from_db()
    assert dana.check_password(NEW_PASSWORD)


def test_a_user_without_a_password_sets_one_from_its_tab():
    gail = verified_user("gail@example.com", password=None)
    client = Client()
    client.force_login(gail)
    assert client.get(reverse("account_change_password"))["Location"] == reverse(
        "account_set_password"
    )

    assert_house_style(client.get(reverse("account_set_password")), tab="Password")
    resp = client.post(
        reverse("account_set_password"), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert resp.status_code == 302
    gail.refresh_from_db()
    assert gail.check_password(NEW_PASSWORD)


def test_sign_out_asks_in_the_frame():
    dana = verified_user()
    client = signed_in(dana)

    page = assert_house_style(client.get(reverse("account_logout")), tab="")

    assert [len(form["primary"]) for form in page.forms if form["primary"]] == [1]
    assert client.post(reverse("account_logout")).status_code == 302
    assert logged_in_user_id(client) is None


# --- signed in: two-factor authentication -------------------------------------------------


def test_activate_an_authenticator_app_through_the_pages():
    dana = verified_user()
    client = signed_in(dana)
    index = client.get(reverse("mfa_index"))
    assert_house_style(index, tab="Two-factor authentication")
    assert '<section class="card inset">' in index.content.decode()

    form = client.get(reverse("mfa_activate_totp"))

    assert_house_style(form, tab="Two-factor authentication")
    assert '<img class="qr" src="data:image/svg+xml' in form.content.decode()
    secret = form.context["form"].secret
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    resp = client.post(reverse("mfa_activate_totp"), {"code": code})
    assert resp.status_code == 302
    assert dana.authenticator_set.filter(type="totp").exists()


def test_a_wrong_authenticator_code_is_said_under_the_field():
    client = signed_in(verified_user())

    resp = client.post(reverse("mfa_activate_totp"), {"code": "000000"})

    assert_house_style(resp, tab="Two-factor authentication")
    html = resp.content.decode()
    code_input = re.search(r'<input[^>]*name="code"[^>]*>', html)
    assert code_input is not None and 'aria-invalid="true"' in code_input.group()
    assert re.search(r'<ul class="errors" id="id_code_error"><li>Incorrect code', html)


def test_sign_in_with_an_authenticator_code_in_the_frame():
    dana = verified_user()
    TOTP.activate(dana, TOTP_SECRET)
    client = Client()
    resp = client.post(reverse("account_login"), {"login": dana.email, "password": PASSWORD})
    assert resp["Location"] == reverse("mfa_authenticate")

    page = assert_house_style(client.get(reverse("mfa_authenticate")))

    assert [len(form["primary"]) for form in page.forms if form["primary"]] == [1]
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert logged_in_user_id(client) == dana.pk


def test_recovery_codes_and_deactivation_pages_are_two_factor_tabs():
    dana = verified_user()
    TOTP.activate(dana, TOTP_SECRET)
    recovery_code = RecoveryCodes.activate(dana).get_unused_codes()[0]
    client = signed_in(dana, codes=(totp_code(), recovery_code))
    tab = "Two-factor authentication"

    codes = client.get(reverse("mfa_view_recovery_codes"))
    assert_house_style(codes, tab=tab)
    assert re.search(
        r'<textarea class="code"[^>]*readonly[^>]*id="recovery_codes"', codes.content.decode()
    )
    assert_house_style(client.get(reverse("mfa_generate_recovery_codes")), tab=tab)
    deactivate = client.get(reverse("mfa_deactivate_totp"))
    assert_house_style(deactivate, tab=tab)
    assert '<button class="danger" type="submit">' in deactivate.content.decode()

    resp = client.post(reverse("mfa_deactivate_totp"))

    assert resp.status_code == 302
    assert not dana.authenticator_set.filter(type="totp").exists()
