"""Development makes and keeps a local encryption key by itself (config/settings/local.py).

The real function runs against a temporary BASE_DIR, never the checkout's .local/."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config.settings import local


@pytest.fixture
def base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(local, "BASE_DIR", tmp_path)
    return tmp_path


def test_the_first_call_makes_a_private_fernet_key_file(base_dir: Path):
    path = base_dir / ".local" / "token_keys"
    assert not path.exists()

    keys = local._local_token_keys()

    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys) == 1
    assert path.read_text().strip() == keys[0]
    # A usable Fernet key.
    fernet = Fernet(keys[0].encode())
    assert fernet.decrypt(fernet.encrypt(b"refresh-token")) == b"refresh-token"


def test_the_key_is_kept_across_restarts(base_dir: Path):
    first = local._local_token_keys()
    token = Fernet(first[0].encode()).encrypt(b"stored in the dev database")
    path = base_dir / ".local" / "token_keys"
    written = path.read_bytes()

    second = local._local_token_keys()

    assert second == first
    assert path.read_bytes() == written
    assert Fernet(second[0].encode()).decrypt(token) == b"stored in the dev database"


def test_each_checkout_gets_its_own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    keys = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        monkeypatch.setattr(local, "BASE_DIR", tmp_path / name)
        keys.append(local._local_token_keys())
    assert keys[0] != keys[1]


def test_an_existing_key_list_is_read_as_it_is(base_dir: Path):
    # Rotation by hand: the new key first, the old one after it (comma-separated).
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    (base_dir / ".local").mkdir()
    (base_dir / ".local" / "token_keys").write_text(f"{new}, {old}\n")

    assert local._local_token_keys() == [new, old]


def test_the_settings_module_points_at_the_checkout():
    # What the fixture replaces: the checkout's own directory, where .local/ is ignored.
    checkout = Path(local.__file__).resolve().parents[2]
    assert checkout == local.BASE_DIR
    gitignore = (local.BASE_DIR / ".gitignore").read_text().splitlines()
    assert "/.local/" in gitignore


# `make run`: its port, its mail, its log lines.

CHECKOUT = Path(local.__file__).resolve().parents[2]


def _local_django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after django.setup() on the development settings, in a process of
    its own (settings are read once per process)."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("SITE_URL", "DEV_PORT", "DATABASE_URL")
    }
    environ.update(DJANGO_SETTINGS_MODULE="config.settings.local", **env)
    script = "import django; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=CHECKOUT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_site_url_follows_the_dev_port():
    run = _local_django(
        "from django.conf import settings; print(settings.SITE_URL)", DEV_PORT="8100"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "http://127.0.0.1:8100"


def test_an_explicit_site_url_wins_over_the_dev_port():
    run = _local_django(
        "from django.conf import settings; print(settings.SITE_URL)",
        DEV_PORT="8100",
        SITE_URL="https://dev.example.test/",
    )
    assert run.stdout.strip() == "https://dev.example.test"


def test_make_run_port_reaches_the_processes(tmp_path: Path):
    # A stand-in virtualenv whose python and honcho print what they were given: the
    # Makefile's own `run` recipe, without installing or serving anything.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "honcho"):
        script = venv / "bin" / name
        script.write_text(f'#!/bin/sh\necho "{name} DEV_PORT=$DEV_PORT $*"\n')
        script.chmod(0o755)
    installed = venv / ".installed"
    installed.touch()
    future = 4_000_000_000  # newer than every lock file, so `install` has nothing to do
    os.utime(installed, (future, future))

    run = subprocess.run(
        ["make", "-s", "run", "PORT=8100", f"VENV={venv}"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    assert "python DEV_PORT=8100 manage.py migrate --no-input" in run.stdout
    assert "honcho DEV_PORT=8100 start -f Procfile.dev" in run.stdout
    web = next(
        line
        for line in (CHECKOUT / "Procfile.dev").read_text().splitlines()
        if line.startswith("web:")
    )
    shown = subprocess.run(
        ["sh", "-c", "echo " + web.removeprefix("web:").strip()],
        env={"DEV_PORT": "8100", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert shown.stdout.split()[-1] == "127.0.0.1:8100"


def test_the_console_mail_shows_links_whole():
    from django.core.mail import EmailMultiAlternatives

    from config.dev_mail import ReadableConsoleEmailBackend

    link = "http://127.0.0.1:8000/accounts/confirm-email/" + "Mjk:1vQx=" * 12 + "/"
    message = EmailMultiAlternatives(
        subject="Please confirm your email address",
        body=f"Hello,\n\nTo confirm, go to {link}\n",
        from_email="noreply@localhost",
        to=["ada@example.test"],
    )
    message.attach_alternative(f'<a href="{link}">confirm</a>', "text/html")
    stream = io.StringIO()

    ReadableConsoleEmailBackend(stream=stream).send_messages([message])

    printed = stream.getvalue()
    assert link in printed.splitlines()[-4]
    assert "=3D" not in printed and "=\n" not in printed
    assert "Subject: Please confirm your email address" in printed
    assert "To: ada@example.test" in printed
    assert "(also sent as text/html; not shown)" in printed


def test_the_development_settings_use_the_readable_console_mail():
    run = _local_django("from django.conf import settings; print(settings.EMAIL_BACKEND)")
    assert run.stdout.strip() == "config.dev_mail.ReadableConsoleEmailBackend"


def test_a_django_line_is_printed_once_with_its_request_id_field():
    # DEBUG is on in development, where Django's own console handler would print the
    # line a second time, in another format.
    run = _local_django(
        "import logging\n"
        "logging.getLogger('django.request').warning('Not Found: /favicon.ico')\n"
        "logging.getLogger('django.server').info('\"GET / HTTP/1.1\" 302 0')\n"
    )
    lines = run.stderr.splitlines()
    assert [line for line in lines if "Not Found: /favicon.ico" in line] == [
        next(line for line in lines if "WARNING django.request [-] Not Found: /favicon.ico" in line)
    ]
    assert len([line for line in lines if '"GET / HTTP/1.1" 302 0' in line]) == 1
    assert any('INFO django.server [-] "GET / HTTP/1.1" 302 0' in line for line in lines)


def test_celery_task_bookkeeping_is_quiet_in_development():
    run = _local_django(
        "import logging\n"
        "for name in ('celery.beat', 'celery.worker.strategy', 'celery.app.trace'):\n"
        "    print(name, logging.getLevelName(logging.getLogger(name).getEffectiveLevel()))\n"
        "print('root', logging.getLevelName(logging.getLogger().getEffectiveLevel()))\n"
    )
    assert run.stdout.split("\n")[:4] == [
        "celery.beat WARNING",
        "celery.worker.strategy WARNING",
        "celery.app.trace WARNING",
        "root INFO",
    ]


def test_the_file_broker_s_hostname_warning_is_quiet_in_development():
    code = (
        "import logging\n"
        "print(logging.getLevelName(logging.getLogger('kombu.connection').getEffectiveLevel()))\n"
    )
    assert _local_django(code, REDIS_URL="").stdout.strip() == "ERROR"
    # With Redis, kombu's own warnings are the operator's.
    assert _local_django(code, REDIS_URL="redis://127.0.0.1:6379/0").stdout.strip() == "INFO"
