"""Pages in the signed-in user's time zone: ``TimeZoneMiddleware`` activates it
(``django.utils.timezone.activate``) for the request; UTC until one is chosen.

The zone is read from the database at sign-in (``remember_at_login``, a
``user_logged_in`` receiver) and kept in the session, so a page costs no query for it;
a session from before has it read on its first request. Choosing a zone updates both
(``remember``).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from integrations import selectors

_SESSION_ZONE = "integrations_time_zone"


def remember(request: HttpRequest, zone: str) -> None:
    """Keep ``zone`` ("" for none chosen) as this session's time zone."""
    request.session[_SESSION_ZONE] = zone


def remember_at_login(*, request: HttpRequest | None, user: Any, **kwargs: object) -> None:
    """``user_logged_in``: keep the user's zone in the new session."""
    if request is not None and hasattr(request, "session"):
        remember(request, selectors.time_zone_for_user(user=user))


def _session_zone(request: HttpRequest) -> str | None:
    """The signed-in user's zone ("" for none chosen), None for a visitor."""
    session = getattr(request, "session", None)
    if session is None or SESSION_KEY not in session:
        return None
    zone = session.get(_SESSION_ZONE)
    if zone is None:
        if not request.user.is_authenticated:
            return None
        zone = selectors.time_zone_for_user(user=request.user)
        remember(request, zone)
    return str(zone)


class TimeZoneMiddleware:
    """Place after ``AuthenticationMiddleware``. Sets ``request.time_zone_unset`` for a
    signed-in user who has not chosen a zone (pages then offer the browser's)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = _session_zone(request)
        request.time_zone_unset = zone == ""  # type: ignore[attr-defined]
        try:
            if zone:
                timezone.activate(zoneinfo.ZoneInfo(zone))
            else:
                timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()  # a zone the tz database dropped since: UTC
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
