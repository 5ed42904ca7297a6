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
from django.contrib import admin
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


class AuthenticatorAdmin(admin.ModelAdmin):
    """allauth's, without the ``data`` field: it holds the TOTP secret and the recovery
    codes' seed, which allauth stores as they are (its adapter's ``encrypt`` is the
    identity) and its own admin shows in a text box. Staff may see that a member has an
    authenticator, and delete it (a member who lost it signs in again and sets up a new
    one), never read or change it."""

    raw_id_fields = ("user",)
    list_display = ("user", "type", "created_at", "last_used_at")
    list_filter = ("type", "created_at", "last_used_at")
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def register_authenticator_admin(site: admin.AdminSite) -> None:
    """Replace allauth's registration (made when the admin discovered its apps)."""
    if site.is_registered(Authenticator):
        site.unregister(Authenticator)
    site.register(Authenticator, AuthenticatorAdmin)


UNUSED_ADMIN_MODELS = (
    "oauth2_provider.Application",
    "oauth2_provider.AccessToken",
    "oauth2_provider.RefreshToken",
    "oauth2_provider.Grant",
    "oauth2_provider.IDToken",
    "socialaccount.SocialApp",
    "socialaccount.SocialAccount",
    "socialaccount.SocialToken",
)


def unregister_unused_admin(site: admin.AdminSite) -> None:
    """Drop the admin pages of models staff never use here (see config/urls.py)."""
    from django.apps import apps

    for label in UNUSED_ADMIN_MODELS:
        app_label, _, model_name = label.partition(".")
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            continue
        if site.is_registered(model):
            site.unregister(model)
