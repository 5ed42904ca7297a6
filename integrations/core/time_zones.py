"""The IANA time zones a user may choose (``zoneinfo``). Pure: no Django."""

from __future__ import annotations

import zoneinfo
from functools import cache

DEFAULT = "UTC"


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every zone name this machine's tz database knows, sorted."""
    return tuple(sorted(zoneinfo.available_timezones()))


@cache
def _known() -> frozenset[str]:
    return frozenset(time_zone_names())


def is_time_zone(name: str) -> bool:
    return name in _known()
