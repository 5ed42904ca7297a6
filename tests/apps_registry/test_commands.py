"""manage.py validate_manifest and create_api_token."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps_registry import selectors
from apps_registry.models import ApiToken

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "manifests"


def validate(*files: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("validate_manifest", *map(str, files), stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_every_real_manifest_is_valid():
    files = sorted(FIXTURES.glob("*.inf.yml"))
    if SHARED.is_dir():
        files += sorted(SHARED.glob("*.inf.yml"))
    code, out, _ = validate(*files)
    assert code == 0, out
    assert out == ""  # no errors, no warnings


def test_problems_are_printed_like_a_compiler_and_exit_1(tmp_path):
    good = tmp_path / "good.inf.yml"
    good.write_text("name: good\nhomepage: x\n")
    bad = tmp_path / "bad.inf.yml"
    bad.write_text("name: Bad\nintegrations:\n  - key: google.sheets\n    optional: yes\n")

    code, out, err = validate(good, bad)

    assert code == 1
    assert out.splitlines() == [
        f"{good}:2:1: warning: homepage: unknown field 'homepage' (kept)",
        f"{bad}:1:7: name: must be a slug: 1-64 lowercase letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit, without '..' (got 'Bad')",
        f"{bad}:4:15: integrations[0].optional: must be true or false, not a string",
    ]
    assert err.strip() == "1 of 2 files invalid"


def test_unreadable_and_oversized_files(tmp_path):
    big = tmp_path / "big.inf.yml"
    big.write_bytes(b"name: big\n#" + b"x" * (1024 * 1024))
    code, out, _ = validate(tmp_path / "missing.inf.yml", big)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'missing.inf.yml'}:1:1: cannot read the file")
    assert lines[1].startswith(f"{big}:1:1: the manifest is too large")


def test_the_real_exit_code(tmp_path):
    bad = tmp_path / "bad.inf.yml"
    bad.write_text("name: [\n")
    run = subprocess.run(
        [sys.executable, "manage.py", "validate_manifest", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith(f"{bad}:2:1: the manifest ends inside a list")
    ok = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "validate_manifest",
            str(FIXTURES / "api-google-sheets.inf.yml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout == ""


@pytest.mark.django_db
def test_create_api_token_prints_it_once_and_stores_a_hash(alice):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_token", "--user", "ALICE@example.com", "--name", "ci", stdout=out, stderr=err
    )
    token = out.getvalue().strip()
    row = ApiToken.objects.get()
    assert row.user == alice and row.name == "ci"
    assert selectors.api_token_for(token=token) == row
    assert token not in err.getvalue() and row.prefix in err.getvalue()


@pytest.mark.django_db
def test_create_api_token_for_an_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "--user", "nobody@example.com", "--name", "ci")


def test_an_escaped_nul_or_a_reserved_secret_is_not_ok(tmp_path):
    nul = tmp_path / "nul.inf.yml"
    nul.write_text('name: nul\nmetadata:\n  note: "a\\0b"\n')
    reserved = tmp_path / "reserved.inf.yml"
    reserved.write_text("name: r\nsecrets:\n  - key: GOOGLE_OAUTH_ACCESS_TOKEN\n")

    code, out, _ = validate(nul, reserved)

    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{nul}:3:9: metadata.note: the string contains the NUL")
    assert lines[1].startswith(
        f"{reserved}:3:10: secrets[0].key: GOOGLE_OAUTH_ACCESS_TOKEN is handed out"
    )
    assert len(lines) == 2
