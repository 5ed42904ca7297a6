"""What the distribution promises: production settings need neither the sandbox's
django-oauth-toolkit nor honcho, which are extras; gunicorn's settings come from the
environment. (.ci/wheel-check builds and runs the wheel itself.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> list[str]:
    return [
        r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in requirements
    ]


def test_runtime_dependencies_are_listed_once_and_dev_tools_are_extras():
    runtime = names(project()["dependencies"])
    assert len(runtime) == len(set(runtime)), runtime
    assert "honcho" not in runtime and "django-oauth-toolkit" not in runtime
    extras = project()["optional-dependencies"]
    assert "gunicorn" in names(extras["production"])
    assert "django-oauth-toolkit" in names(extras["sandbox"])
    assert {"honcho", "django-oauth-toolkit"} <= set(names(extras["dev"]))


def test_production_settings_load_without_the_sandbox():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "INTEGRATIONS_TOKEN_KEYS": GOOD_KEY,
    }
    env.pop("SANDBOX_ENABLED", None)
    code = (
        "import sys, django; django.setup(); from django.conf import settings;"
        "import config.urls;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('oauth2_provider', 'honcho')"
        " or m.startswith('integrations.sandbox')));"
        "print([a for a in settings.INSTALLED_APPS if 'oauth2' in a or 'sandbox' in a])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]


def test_gunicorn_settings_come_from_the_environment():
    code = (
        "import config.gunicorn as g; print(g.bind, g.workers, g.threads, g.timeout, g.accesslog)"
    )
    env = {**os.environ, "PORT": "9123", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "6"}
    env.pop("GUNICORN_BIND", None)
    env.pop("GUNICORN_ACCESS_LOG", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["0.0.0.0:9123", "3", "6", "30", "None"], done.stderr
