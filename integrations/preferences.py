"""A user's display preferences (``UserPreferences``): the time zone pages use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from integrations.core import time_zones
from integrations.models import UserPreferences

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@transaction.atomic
def preferences_time_zone_set(*, user: User, time_zone: str, only_if_unset: bool = False) -> str:
    """Store ``time_zone`` (an IANA name) as the user's; with ``only_if_unset`` (the
    browser's guess), only when the user has none yet. Returns the zone now stored.
    ``ValidationError`` for a name the tz database does not know."""
    if not time_zones.is_time_zone(time_zone):
        raise ValidationError(f"{time_zone!r} is not a time zone this server knows.")
    prefs, _ = UserPreferences.objects.select_for_update().get_or_create(user=user)
    if only_if_unset and prefs.time_zone:
        return prefs.time_zone
    prefs.time_zone = time_zone
    prefs.save(update_fields=["time_zone", "updated_at"])
    return time_zone
