"""The staged key rotation (issue 11, point 8; docs/secrets.md "Rotating the keys"): at
every step a process still on the previous step reads what a process on the new step
writes, and the other way round. A "process" is its INTEGRATIONS_TOKEN_KEYS (the cipher
is a pure function of them); the provider registry, which keeps decrypted client
secrets, is emptied before each read, as a fresh process starts empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings

from integrations.connections.own_clients import user_client_set
from integrations.core import crypto
from integrations.core.tokens import TokenSet
from integrations.key_rotation import ENCRYPTED_FIELDS
from integrations.models import Connection, ProviderDefinition, Secret, UserOAuthClient
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret
from integrations.secrets import secret_set, secret_value
from tests.integrations.test_provider_definitions import make_acme

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()

STEP_0 = [OLD]  # everyone before the rollout
STEP_1 = [OLD, NEW]  # the new key added second: still encrypting under OLD
STEP_2 = [NEW, OLD]  # the new key first: encrypting under NEW
STEP_4 = [NEW]  # after rotate_token_keys (step 3), the old key dropped


def write(keys: list[str], user, label: str) -> None:
    """What a process on ``keys`` writes through the services: a connection's tokens, a
    secret, the platform's and a user's client secret of a staff-defined provider."""
    from integrations.connections.store import store_tokens

    with override_settings(INTEGRATIONS_TOKEN_KEYS=keys):
        conn = Connection(user=user, provider="acme", account_uid=label, scopes=["read"])
        store_tokens(
            conn,
            TokenSet(
                access_token=f"at-{label}",
                refresh_token=f"rt-{label}",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                scopes=None,
            ),
        )
        conn.save()
        secret_set(user=user, key=f"KEY_{label.upper()}", value=f"secret-{label}")
        definition = ProviderDefinition.objects.get(slug="acme")
        provider_definition_set_secret(definition=definition, secret=f"platform-{label}")
        user_client_set(
            user=user, provider="acme", client_id="own-id", client_secret=f"own-{label}"
        )


def read(keys: list[str]) -> set[str]:
    """Everything a fresh process on ``keys`` reads back through the services;
    ``crypto.DecryptionError`` if anything does not decrypt."""
    from integrations.connections.store import connection_access_token, connection_refresh_token

    with override_settings(INTEGRATIONS_TOKEN_KEYS=keys):
        registry.definitions_changed()
        seen: set[str] = set()
        for conn in Connection.objects.all():
            seen.add(connection_access_token(connection=conn))
            seen.add(connection_refresh_token(connection=conn) or "")
        seen.update(secret_value(secret=s) for s in Secret.objects.all())
        seen.add(registry.provider_config("acme").client_secret)
        for client in UserOAuthClient.objects.all():
            seen.add(registry.provider_config("acme", client=client).client_secret)
        registry.definitions_changed()
        return seen


def written(*labels: str, platform: str, own: str) -> set[str]:
    values = {f"{kind}-{label}" for label in labels for kind in ("at", "rt", "secret")}
    return values | {f"platform-{platform}", f"own-{own}"}


def encrypted_values() -> list[bytes]:
    values: list[bytes] = []
    for model, fields in ENCRYPTED_FIELDS:
        for row in model._default_manager.values_list(*fields):
            values.extend(bytes(v) for v in row if v)
    return values


@pytest.fixture
def acme(alice):
    with override_settings(INTEGRATIONS_TOKEN_KEYS=STEP_0):
        definition = make_acme()
        registry.definitions_changed()
    return definition


def test_the_staged_rollout_never_leaves_a_process_unable_to_read(alice, acme):
    write(STEP_0, alice, "s0")
    assert read(STEP_0) == written("s0", platform="s0", own="s0")

    # Step 1: NEW added second, process by process. Processes on step 1 still encrypt
    # under OLD: those not restarted yet read what they write, and they read all.
    write(STEP_1, alice, "s1")
    everything = written("s0", "s1", platform="s1", own="s1")
    assert read(STEP_0) == read(STEP_1) == everything
    write(STEP_0, alice, "s0b")
    everything = written("s0", "s1", "s0b", platform="s0b", own="s0b")
    assert read(STEP_1) == everything

    # Step 2, only once every process has NEW: NEW first. A process still on step 1
    # reads what step 2 writes (under NEW), and step 2 reads step 1's (under OLD).
    write(STEP_2, alice, "s2")
    everything = written("s0", "s1", "s0b", "s2", platform="s2", own="s2")
    assert read(STEP_1) == read(STEP_2) == everything
    write(STEP_1, alice, "s1b")
    everything = written("s0", "s1", "s0b", "s2", "s1b", platform="s1b", own="s1b")
    assert read(STEP_2) == everything

    # Step 3: rotate_token_keys, run by a step-2 process: every column under NEW alone.
    with override_settings(INTEGRATIONS_TOKEN_KEYS=STEP_2):
        call_command("rotate_token_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    values = encrypted_values()
    assert len(values) == 2 * 5 + 5 + 2  # tokens, secrets, the two client secrets
    for value in values:
        crypto.decrypt(value, keys=[NEW])
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(value, keys=[OLD])
    assert read(STEP_2) == everything

    # Step 4: OLD dropped, process by process: step 2 and step 4 read each other's.
    write(STEP_4, alice, "s4")
    everything = written("s0", "s1", "s0b", "s2", "s1b", "s4", platform="s4", own="s4")
    assert read(STEP_2) == read(STEP_4) == everything


def test_the_new_key_first_while_a_process_lacks_it_is_what_breaks(alice, acme):
    """The order matters: NEW put first while a process still has only OLD (skipping
    step 1) leaves that process unable to read what the others write."""
    write(STEP_0, alice, "s0")
    write(STEP_2, alice, "s2")
    assert read(STEP_2) == written("s0", "s2", platform="s2", own="s2")
    with pytest.raises(crypto.DecryptionError):
        read(STEP_0)


def test_dropping_the_old_key_before_the_rotation_is_what_breaks(alice, acme):
    write(STEP_1, alice, "s1")
    with pytest.raises(crypto.DecryptionError):
        read(STEP_4)
