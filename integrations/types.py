"""Types shared by the pages and the API (for mypy; nothing here runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``login_required``: its user is signed in
    (django-stubs' recommended way to say so)."""

    user: User
