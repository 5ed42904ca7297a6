"""Development makes and keeps a local encryption key by itself (config/settings/local.py).

The real function runs against a temporary BASE_DIR, never the checkout's .local/."""

from __future__ import annotations

import stat
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
