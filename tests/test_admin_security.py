"""The admin's sign-in is allauth's (its rate limits apply), staff need two-factor
authentication to open the admin when INTEGRATIONS_ADMIN_REQUIRE_MFA is on (production's
default), and the rate limits count the client behind a trusted proxy, not the proxy.

Real requests through the real URLs; TOTP codes are computed with allauth's own
functions from the authenticator's secret, as an authenticator app would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from io import StringIO
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from config.settings import base

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
TOO_MANY_FAILED_LOGINS = "Too many failed login attempts. Try again later."
SET_UP = "Set up two-factor authentication to open the admin"
CONFIRM = "Confirm with your authenticator app to open the admin"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(autouse=True)
def production_limits(settings) -> Iterator[None]:
    """base.py's rate limits (test.py turns them off), counted in an empty cache."""
    settings.ACCOUNT_RATE_LIMITS = base.ACCOUNT_RATE_LIMITS
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def require_mfa(settings):
    assert base.INTEGRATIONS_ADMIN_REQUIRE_MFA is False  # production.py turns it on
    settings.INTEGRATIONS_ADMIN_REQUIRE_MFA = True


def verified(user):
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def staff(make_user):
    user = verified(make_user("staff@example.com"))
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


def totp_code(offset: int = 0) -> str:
    """What an authenticator app shows now (``offset`` periods later: a code not yet
    used, as allauth refuses a code twice)."""
    return format_hotp_value(hotp_value(TOTP_SECRET, int(time.time()) // 30 + offset))


def login(client: Client, email: str, password: str, *, next: str = ""):
    url = reverse("account_login") + (f"?next={next}" if next else "")
    return client.post(url, {"login": email, "password": password})


# --- the admin signs in through allauth --------------------------------------------------


def test_the_admin_login_page_sends_to_allauths(client):
    resp = client.get("/admin/login/?next=/admin/integrations/")
    assert resp.status_code == 302
    parts = urlsplit(resp["Location"])
    assert parts.path == reverse("account_login")
    assert parts.query == "next=%2Fadmin%2Fintegrations%2F"


def test_the_admin_login_is_rate_limited(client, staff):
    # A POST to the admin's old form signs no one in and checks no password.
    for _ in range(15):
        resp = client.post("/admin/login/", {"username": staff.username, "password": "wrong"})
        assert resp.status_code == 302
        assert urlsplit(resp["Location"]).path == reverse("account_login")
    resp = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD})
    assert "_auth_user_id" not in client.session

    # Where it sends: allauth's form, whose limits apply (5 failures per account).
    for _ in range(5):
        resp = login(client, staff.email, "wrong", next="/admin/")
        assert resp.status_code == 200
        assert TOO_MANY_FAILED_LOGINS not in resp.content.decode()
    resp = login(client, staff.email, PASSWORD, next="/admin/")
    assert resp.status_code == 200
    assert TOO_MANY_FAILED_LOGINS in resp.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still signed out


def test_staff_sign_in_and_open_the_admin_when_mfa_is_not_required(client, staff):
    resp = login(client, staff.email, PASSWORD, next="/admin/")
    assert resp.status_code == 302 and resp["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_non_staff_user_cannot_open_the_admin(client, make_user):
    user = verified(make_user("ada@example.com"))
    assert login(client, user.email, PASSWORD).status_code == 302
    assert client.get("/admin/login/").status_code == 403
    assert client.get("/admin/").status_code == 302


# --- two-factor authentication for staff ---------------------------------------------------


def test_staff_without_an_authenticator_cannot_open_the_admin(client, staff, require_mfa):
    resp = login(client, staff.email, PASSWORD, next="/admin/")
    assert resp.status_code == 302 and resp["Location"] == "/admin/"

    for path in ("/admin/", "/admin/integrations/connection/", "/admin/login/"):
        resp = client.get(path)
        assert resp.status_code == 403, path
        page = resp.content.decode()
        assert SET_UP in page
        assert f'href="{reverse("mfa_activate_totp")}"' in page
    # Nor change anything.
    resp = client.post("/admin/auth/user/add/", {"username": "eve", "password1": "x"})
    assert resp.status_code == 403
    assert not get_user_model().objects.filter(username="eve").exists()


def test_staff_who_signed_in_with_their_code_open_the_admin(client, staff, require_mfa):
    TOTP.activate(staff, TOTP_SECRET)

    resp = login(client, staff.email, PASSWORD, next="/admin/")
    # allauth's two-factor step, before the session is signed in.
    assert resp.status_code == 302
    assert urlsplit(resp["Location"]).path == reverse("mfa_authenticate")
    assert client.get("/admin/").status_code == 302  # not signed in yet
    resp = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert resp.status_code == 200 and "_auth_user_id" not in client.session

    resp = client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert resp.status_code == 302 and resp["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/integrations/connection/").status_code == 200


def test_a_recovery_code_opens_the_admin_too(client, staff, require_mfa):
    TOTP.activate(staff, TOTP_SECRET)
    codes = RecoveryCodes.activate(staff).get_unused_codes()

    login(client, staff.email, PASSWORD, next="/admin/")
    resp = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert resp.status_code == 302 and resp["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Used once: the next sign-in needs another.
    assert (
        codes[0]
        not in RecoveryCodes(staff.authenticator_set.get(type="recovery_codes")).get_unused_codes()
    )


def test_a_session_not_confirmed_with_the_code_is_asked_for_it(client, staff, require_mfa):
    # Signed in before the authenticator was added (or by password alone): the page
    # asks for a code, and allauth's reauthentication with one opens the admin.
    assert login(client, staff.email, PASSWORD).status_code == 302
    TOTP.activate(staff, TOTP_SECRET)

    resp = client.get("/admin/integrations/")
    assert resp.status_code == 403
    page = resp.content.decode()
    assert CONFIRM in page
    assert f'href="{reverse("mfa_reauthenticate")}?next=/admin/integrations/"' in page

    resp = client.post(
        reverse("mfa_reauthenticate") + "?next=/admin/integrations/", {"code": totp_code()}
    )
    assert resp.status_code == 302 and resp["Location"] == "/admin/integrations/"
    assert client.get("/admin/integrations/").status_code == 200


def test_the_mfa_requirement_leaves_other_pages_alone(client, staff, require_mfa):
    login(client, staff.email, PASSWORD)
    assert client.get(reverse("integrations:page")).status_code == 200
    assert client.get(reverse("mfa_activate_totp")).status_code in (200, 302)


# --- the client's address behind a reverse proxy ------------------------------------------


def _locked_out_after_another_clients_failures(*, a: dict, b: dict, make_user) -> bool:
    """Ten failed logins for one account from client A, then client B signs in to
    another: whether B is refused."""
    ada = verified(make_user("ada@example.com"))
    bob = verified(make_user("bob@example.com"))
    client_a, client_b = Client(**a), Client(**b)
    for _ in range(10):
        assert login(client_a, ada.email, "wrong").status_code == 200
    resp = login(client_b, bob.email, PASSWORD)
    return resp.status_code != 302


def test_behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another(settings, make_user):
    assert base.ALLAUTH_TRUSTED_PROXY_COUNT == 0  # set by TRUSTED_PROXY_COUNT
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    # Both come from the proxy's address; the proxy appends each client's.
    a = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    b = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert not _locked_out_after_another_clients_failures(a=a, b=b, make_user=make_user)


def test_without_the_setting_the_proxys_address_locks_everyone_out(make_user):
    a = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    b = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert _locked_out_after_another_clients_failures(a=a, b=b, make_user=make_user)


def test_a_client_cannot_escape_the_limit_by_forging_x_forwarded_for(settings, make_user):
    # The trusted proxy appends the real address last; what the client wrote before
    # it is not believed.
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    ada = verified(make_user("ada@example.com"))
    for i in range(10):
        forged = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 198.51.100.7")
        login(forged, f"guess{i}@example.com", "wrong")
    same = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.7")
    assert login(same, ada.email, PASSWORD).status_code != 302


def test_a_trusted_client_ip_header_names_the_client(settings, make_user):
    settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER = "X-Real-IP"
    a = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_REAL_IP": "198.51.100.7"}
    b = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_REAL_IP": "203.0.113.9"}
    assert not _locked_out_after_another_clients_failures(a=a, b=b, make_user=make_user)


def test_the_admin_never_shows_an_authenticators_secret(client, staff, make_user):
    member = make_user("ada@example.com")
    totp = TOTP.activate(member, TOTP_SECRET).instance
    recovery = RecoveryCodes.activate(member)
    client.force_login(staff)

    pages = [
        client.get("/admin/mfa/authenticator/"),
        client.get(f"/admin/mfa/authenticator/{totp.pk}/change/"),
        client.get(f"/admin/mfa/authenticator/{recovery.instance.pk}/change/"),
    ]
    for resp in pages:
        assert resp.status_code == 200
        body = resp.content.decode()
        assert TOTP_SECRET not in body
        assert recovery.instance.data["seed"] not in body
        assert not any(code in body for code in recovery.get_unused_codes())
    # Read-only: a POST changes nothing; deleting (a lost authenticator) is allowed.
    client.post(
        f"/admin/mfa/authenticator/{totp.pk}/change/",
        {"user": member.pk, "type": "totp", "data": '{"secret": "AAAA"}'},
    )
    before = totp.data["secret"]
    totp.refresh_from_db()
    assert totp.data["secret"] == before
    resp = client.post(f"/admin/mfa/authenticator/{totp.pk}/delete/", {"post": "yes"})
    assert resp.status_code == 302
    assert not member.authenticator_set.filter(type="totp").exists()


def test_too_few_forwarded_addresses_are_refused_not_a_server_error(settings, staff, caplog):
    # Two proxies trusted, one address: the request skipped a proxy.
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2
    client = Client(REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="198.51.100.7")
    resp = login(client, staff.email, PASSWORD)
    assert resp.status_code == 403
    assert "_auth_user_id" not in client.session
    assert "TRUSTED_PROXY_COUNT expects more" in caplog.text
    # Through both proxies: signed in.
    client = Client(REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.2")
    assert login(client, staff.email, PASSWORD).status_code == 302


def test_a_totp_secret_and_recovery_seed_are_encrypted_at_rest(staff):
    """allauth keeps them in clear by default; ``config.mfa_adapter`` encrypts them as
    every token is, and the codes still verify."""
    from allauth.mfa.models import Authenticator

    totp = TOTP.activate(staff, TOTP_SECRET)
    recovery = RecoveryCodes.activate(staff)
    stored = {a.type: a.data for a in Authenticator.objects.filter(user=staff)}
    assert TOTP_SECRET not in str(stored)
    assert stored["totp"]["secret"].startswith("gAAAAA")  # a Fernet token
    assert stored["recovery_codes"]["seed"].startswith("gAAAAA")
    assert totp.validate_code(totp_code())
    assert len(recovery.get_unused_codes()) == 10


def test_rotating_the_keys_re_encrypts_second_factors(staff, settings):
    """After ``rotate_token_keys`` the old key can be dropped without locking staff out."""
    from allauth.mfa.models import Authenticator
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.INTEGRATIONS_TOKEN_KEYS = [old]
    TOTP.activate(staff, TOTP_SECRET)
    codes = RecoveryCodes.activate(staff).get_unused_codes()

    settings.INTEGRATIONS_TOKEN_KEYS = [new, old]
    call_command("rotate_token_keys", stdout=StringIO())
    settings.INTEGRATIONS_TOKEN_KEYS = [new]
    totp = TOTP(Authenticator.objects.get(user=staff, type="totp"))
    assert totp.validate_code(totp_code())
    recovery = RecoveryCodes(Authenticator.objects.get(user=staff, type="recovery_codes"))
    assert recovery.get_unused_codes() == codes
