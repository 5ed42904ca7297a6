"""What ``/readyz`` checks: the database, the broker, the token keys and beat.

Small checks of our own rather than django-health-check's plugins: two of the four
(the key canary and beat's heartbeat) are ours in any case, and the other two are one
statement each; each check answers ok or a short reason that names no secret (no URL,
no key, no exception message: a class name at most).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import connection, transaction
from django.utils import timezone

from integrations import app_settings
from integrations.core import crypto
from integrations.models import HealthMark

# HealthMark names.
REFRESH_SWEEP = "refresh_sweep"
KEY_CANARY = "token_key_canary"
# Encrypted under the keys and decrypted by every readiness check: no secret.
CANARY_TEXT = "integrations-hub key canary"
# Seconds a readiness probe waits for Redis.
BROKER_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str = ""


def health_mark_stamp(*, name: str, now: datetime | None = None) -> None:
    """Record that ``name`` happened now (beat's sweep calls it every run): one UPDATE
    once the row exists."""
    now = now or timezone.now()
    if not HealthMark.objects.filter(name=name).update(at=now):
        HealthMark.objects.update_or_create(name=name, defaults={"at": now})


def _database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check("database", True)


def _broker() -> Check:
    url = app_settings.redis_url()
    if not url:
        # kombu's filesystem transport (development): nothing to reach.
        return Check("broker", True, "filesystem transport")
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()
    return Check("broker", True)


def _token_keys(now: datetime) -> Check:
    """The configured keys decrypt the canary. The first check writes it; a check that
    finds it under a key other than the first re-encrypts it under the first, so that it
    follows a rotation (docs/secrets.md) and fails only once its key is dropped."""
    keys = app_settings.token_keys()
    with transaction.atomic():
        mark = HealthMark.objects.select_for_update().filter(name=KEY_CANARY).first()
        if mark is None or not mark.value:
            HealthMark.objects.update_or_create(
                name=KEY_CANARY,
                defaults={"at": now, "value": crypto.encrypt(CANARY_TEXT, keys=keys)},
            )
            return Check("token_keys", True, "canary written")
        try:
            crypto.decrypt(mark.value, keys=keys[:1])
        except crypto.DecryptionError:
            mark.value = crypto.rotate(mark.value, keys=keys)  # DecryptionError: no key fits
            mark.at = now
            mark.save(update_fields=["value", "at"])
    return Check("token_keys", True)


def _beat(now: datetime) -> Check:
    max_age = app_settings.beat_max_age()
    if max_age <= 0:
        return Check("beat", True, "not checked")
    mark = HealthMark.objects.filter(name=REFRESH_SWEEP).first()
    if mark is None:
        return Check("beat", False, "the refresh sweep has never run")
    age = (now - mark.at).total_seconds()
    if age > max_age:
        return Check("beat", False, f"the refresh sweep last ran {int(age)} s ago")
    return Check("beat", True)


def readiness_checks(*, now: datetime | None = None) -> list[Check]:
    """Every check, each caught on its own so that one failure names itself."""
    now = now or timezone.now()
    checks = []
    for name, check in (
        ("database", _database),
        ("broker", _broker),
        ("token_keys", lambda: _token_keys(now)),
        ("beat", lambda: _beat(now)),
    ):
        try:
            checks.append(check())
        except crypto.DecryptionError:
            checks.append(Check(name, False, "the keys do not decrypt the canary"))
        except crypto.KeyConfigurationError:
            checks.append(Check(name, False, "INTEGRATIONS_TOKEN_KEYS is empty or malformed"))
        except Exception as exc:  # a probe reports, never raises
            checks.append(Check(name, False, type(exc).__name__))
    return checks
