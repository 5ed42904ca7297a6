"""Encryption at rest and key rotation."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.test import override_settings

from integrations.connections.store import (
    connection_access_token,
    connection_refresh_token,
    store_tokens,
)
from integrations.core import crypto
from integrations.core.tokens import TokenSet, parse_token_response
from integrations.models import Connection
from integrations.secrets import secret_set, secret_value

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def test_round_trip_and_tamper_detection():
    blob = crypto.encrypt("ya29.secret", keys=[KEY_A])
    assert b"ya29" not in blob
    assert crypto.decrypt(blob, keys=[KEY_A]) == "ya29.secret"
    tampered = blob[:-5] + (b"A" if blob[-5:-4] != b"A" else b"B") + blob[-4:]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered, keys=[KEY_A])
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(blob, keys=[KEY_B])


def test_bad_key_configuration_does_not_echo_the_key():
    with pytest.raises(crypto.KeyConfigurationError) as exc:
        crypto.encrypt("x", keys=["not-a-key-but-secret-material"])
    assert "secret-material" not in str(exc.value)
    with pytest.raises(crypto.KeyConfigurationError):
        crypto.encrypt("x", keys=[])


def _stored(user) -> Connection:
    conn = Connection(user=user, provider="google", account_uid="sub-1")
    store_tokens(
        conn,
        TokenSet(
            access_token="ya29.at-under-a",
            refresh_token="1//rt-under-a",
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
            scopes=None,
        ),
    )
    conn.save()
    return conn


@pytest.mark.django_db
def test_keys_rotate(alice):
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_A]):
        conn = _stored(alice)
        before = bytes(conn.access_token_encrypted)
        secret = secret_set(user=alice, key="FAL_KEY", value="fal-secret-under-a").secret

    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_B, KEY_A]):
        conn.refresh_from_db()
        # Written under A, still read with B first.
        assert connection_access_token(connection=conn) == "ya29.at-under-a"
        call_command("rotate_token_keys", stdout=StringIO())
        conn.refresh_from_db()
        assert bytes(conn.access_token_encrypted) != before

    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_B]):
        conn.refresh_from_db()
        # A is gone: the rewritten tokens read under B alone.
        assert connection_access_token(connection=conn) == "ya29.at-under-a"
        assert connection_refresh_token(connection=conn) == "1//rt-under-a"
        secret.refresh_from_db()
        assert secret_value(secret=secret) == "fal-secret-under-a"
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_A]), pytest.raises(crypto.DecryptionError):
        connection_access_token(connection=conn)


@pytest.mark.django_db
def test_no_token_in_clear_in_the_table(alice):
    _stored(alice)
    with db.cursor() as cur:
        cur.execute("SELECT * FROM integrations_connection")
        dump = repr(cur.fetchall())
    assert "ya29.at-under-a" not in dump
    assert "rt-under-a" not in dump


def test_parse_token_response():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ts = parse_token_response(
        {
            "access_token": "a",
            "expires_in": "3599",
            "scope": "openid email",
            "token_type": "Bearer",
        },
        now=now,
    )
    assert ts.expires_at is not None and (ts.expires_at - now).total_seconds() == 3599
    assert ts.scopes == ("openid", "email")
    assert ts.refresh_token is None
    assert "a" not in repr(ts).replace("access", "").replace("Bearer", "").split("(")[1][:2]
    assert "'a'" not in repr(ts)
    commas = parse_token_response(
        {"access_token": "a", "scope": "read,write"}, now=now, scope_separator=","
    )
    assert commas.scopes == ("read", "write")
    assert commas.expires_at is None
    default = parse_token_response({"access_token": "a"}, now=now, default_lifetime=7200)
    assert default.expires_at is not None


def test_every_encrypted_column_is_rotated():
    """A new encrypted column must be added to what `rotate_token_keys` rewrites, or the
    old key could never be dropped."""
    from django.apps import apps
    from django.db import models

    from integrations.key_rotation import ENCRYPTED_FIELDS

    found = {
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.BinaryField) and field.name.endswith("_encrypted")
    }
    listed = {(model, name) for model, names in ENCRYPTED_FIELDS for name in names}
    assert found == listed


@pytest.mark.django_db
def test_client_secrets_rotate_too(alice):
    from integrations.connections.own_clients import user_client_set
    from integrations.models import ProviderDefinition, UserOAuthClient
    from integrations.providers.definitions import provider_definition_set_secret

    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_A]):
        definition = ProviderDefinition.objects.create(
            slug="acme", name="Acme", token_url="https://a.example/t", allow_user_clients=True
        )
        provider_definition_set_secret(definition=definition, secret="platform-secret")
        user_client_set(user=alice, provider="acme", client_id="mine", client_secret="own-secret")
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[KEY_B, KEY_A]):
        call_command("rotate_token_keys", stdout=StringIO())
    definition.refresh_from_db()
    client = UserOAuthClient.objects.get(user=alice)
    assert definition.client_secret_encrypted is not None
    assert crypto.decrypt(definition.client_secret_encrypted, keys=[KEY_B]) == "platform-secret"
    assert crypto.decrypt(client.client_secret_encrypted, keys=[KEY_B]) == "own-secret"
