"""Staff open the admin only after two-factor authentication, when
``INTEGRATIONS_ADMIN_REQUIRE_MFA`` is on (production's default).

A middleware, not an ``AdminSite.has_permission`` override: the admin answers a refused
permission with its login form ("You are authenticated as ..., but are not authorized"),
which tells a staff member nothing about what to do; this page says what is missing and
links to allauth's own pages for it.
"""

from __future__ import annotations

from collections.abc import Callable

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


def passed_mfa(request: HttpRequest) -> bool:
    """Whether the signed-in user has an authenticator app and this session was
    confirmed with it (or with one of its recovery codes): at sign-in, allauth's MFA
    step, or later, its reauthentication. allauth records each in the session."""
    return any(
        record.get("method") == "mfa"
        for record in get_authentication_records(request, request.user)
    )


class AdminRequiresMFAMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.INTEGRATIONS_ADMIN_REQUIRE_MFA
            and request.user.is_authenticated
            and request.user.is_staff
            and request.path.startswith(reverse("admin:index"))
        ):
            has_totp = Authenticator.objects.filter(
                user_id=request.user.pk, type=Authenticator.Type.TOTP
            ).exists()
            if not (has_totp and passed_mfa(request)):
                return render(
                    request,
                    "mfa/admin_required.html",
                    {"has_totp": has_totp, "next": request.get_full_path()},
                    status=403,
                )
        return self.get_response(request)
