"""What production settings send: Content-Security-Policy and Permissions-Policy on
every page, the admin closed to staff without two-factor authentication, and the
reverse-proxy settings read from the environment.

config.settings.production is loaded in a process of its own (as a WSGI server loads
it), on a scratch SQLite database, and asked through Django's test client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="

SCRIPT = """
import json
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings

# The manifest of static files is made by collectstatic, a deployment step.
plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}).enable()
call_command("migrate", verbosity=0)
staff = get_user_model().objects.create_user(
    username="staff", email="staff@example.com", password="x", is_staff=True, is_superuser=True
)
anonymous = Client(HTTP_HOST="hub.example.com", HTTP_X_FORWARDED_PROTO="https")
client = Client(HTTP_HOST="hub.example.com", HTTP_X_FORWARDED_PROTO="https")
client.force_login(staff)
out = {
    "proxy_count": settings.ALLAUTH_TRUSTED_PROXY_COUNT,
    "client_ip_header": settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER,
    "pages": {},
}
for name, c, path in [
    ("login", anonymous, "/accounts/login/"),
    ("signup", anonymous, "/accounts/signup/"),
    ("admin_login", anonymous, "/admin/login/"),
    ("admin", client, "/admin/"),
    ("integrations", client, "/settings/secrets/integrations/"),
]:
    resp = c.get(path)
    out["pages"][name] = {
        "status": resp.status_code,
        "location": resp.get("Location"),
        "csp": resp.get("Content-Security-Policy"),
        "permissions_policy": resp.get("Permissions-Policy"),
        "body": resp.content.decode(errors="replace"),
    }
print("RESULT" + json.dumps(out))
"""


def run_production(tmp_path: Path, **extra: str) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INTEGRATIONS_"))}
    for name in ("SANDBOX_ENABLED", "TRUSTED_PROXY_COUNT", "TRUSTED_CLIENT_IP_HEADER"):
        base.pop(name, None)
    env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-for-the-test",
        "DJANGO_ALLOWED_HOSTS": "hub.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "CACHE_URL": "locmemcache://",
        "INTEGRATIONS_TOKEN_KEYS": KEY,
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


def test_production_pages_carry_csp_and_permissions_policy_and_the_admin_needs_mfa(tmp_path):
    out = run_production(tmp_path)
    pages = out["pages"]

    for name in ("login", "signup", "admin", "integrations"):
        csp = pages[name]["csp"]
        assert csp, name
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["img-src"] == "'self' data:"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["base-uri"] == "'none'"
        assert directives["object-src"] == "'none'"
        # Connect's redirect to Google is a form's navigation too.
        assert directives["form-action"] == "'self' https://accounts.google.com"
        assert "unsafe-inline" not in csp
        policy = pages[name]["permissions_policy"]
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert f"{feature}=()" in policy, (name, policy)

    # The admin's sign-in is allauth's.
    assert pages["admin_login"]["status"] == 302
    assert pages["admin_login"]["location"].startswith("/accounts/login/?next=")
    # Staff without an authenticator app: on by default in production.
    assert pages["admin"]["status"] == 403
    assert "Set up two-factor authentication to open the admin" in pages["admin"]["body"]
    assert pages["integrations"]["status"] == 200
    # No proxy trusted unless configured.
    assert out["proxy_count"] == 0 and out["client_ip_header"] is None


def test_production_reads_the_reverse_proxy_settings_and_the_mfa_switch(tmp_path):
    out = run_production(
        tmp_path,
        TRUSTED_PROXY_COUNT="2",
        TRUSTED_CLIENT_IP_HEADER="X-Real-IP",
        ADMIN_REQUIRE_MFA="false",
    )
    assert out["proxy_count"] == 2
    assert out["client_ip_header"] == "X-Real-IP"
    assert out["pages"]["admin"]["status"] == 200
