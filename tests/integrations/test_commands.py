import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def test_integrations_list_table():
    out = StringIO()
    call_command("integrations", "list", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["KEY", "PROVIDER", "DESCRIPTION", "SCOPES"]
    sheets = next(line for line in lines if line.startswith("google.sheets.readonly "))
    assert "google" in sheets and sheets.rstrip().endswith("spreadsheets.readonly")


def test_integrations_list_json():
    out = StringIO()
    call_command("integrations", "list", "--json", stdout=out)
    items = json.loads(out.getvalue())
    by_key = {i["key"]: i for i in items}
    assert by_key["google.sheets.readonly"]["scopes"] == [
        "https://www.googleapis.com/auth/spreadsheets.readonly"
    ]
    assert {"key", "provider", "description", "scopes"} <= set(by_key["x.tweet.write"])
    assert by_key["gcp.vertex_ai"]["provider"] == "gcp"


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "INTEGRATIONS_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


PROD = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-for-the-check",
    "DJANGO_ALLOWED_HOSTS": "hub.example.com",
    "SANDBOX_ENABLED": "false",
    "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_production_refuses_to_start_without_keys():
    result = _manage("check", env=PROD)
    assert result.returncode != 0
    assert "INTEGRATIONS_TOKEN_KEYS is not set" in result.stderr
    assert "Fernet.generate_key()" in result.stderr


def test_production_refuses_the_sandbox():
    key = "aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="
    result = _manage("check", env={**PROD, "INTEGRATIONS_TOKEN_KEYS": key, "SANDBOX_ENABLED": "1"})
    assert result.returncode != 0
    assert "SANDBOX_ENABLED must not be set in production" in result.stderr


def test_check_deploy_is_clean():
    key = "aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PROD, "INTEGRATIONS_TOKEN_KEYS": key}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_googles_endpoints_and_client_come_from_the_environment():
    import json as _json
    import os
    import subprocess
    import sys

    from django.conf import settings

    names = {
        "GOOGLE_OAUTH_AUTHORIZE_URL": "https://accounts.example/auth",
        "GOOGLE_OAUTH_TOKEN_URL": "https://oauth2.example/token",
        "GOOGLE_OAUTH_REVOKE_URL": "https://oauth2.example/revoke",
        "GOOGLE_OAUTH_USERINFO_URL": "https://openid.example/userinfo",
        "GOOGLE_CLIENT_ID": "env-client.apps.googleusercontent.com",
        "GOOGLE_CLIENT_SECRET": "env-secret",
    }
    code = (
        "import django, json; django.setup(); from integrations.providers import registry; "
        "c = registry.provider_config('google'); print(json.dumps([c.authorize_url, "
        "c.token_url, c.revoke_url, c.userinfo_url, c.client_id, c.client_secret]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            **names,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "SANDBOX_ENABLED": "false",
            "PYTHONPATH": str(settings.BASE_DIR),
        },
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _json.loads(out.strip().splitlines()[-1]) == list(names.values())
