"""allauth's social-account adapter, customised for integrations.

allauth runs the handshake; at ``pre_social_login`` (after the code exchange and the
account lookup, before allauth would log in or connect anything) an integration's
callback is taken over: the state must be a ``connect`` started by this very user,
the tokens go to our ``Connection`` through one service call, and no allauth
``SocialAccount`` or ``SocialToken`` is ever written, so an integration never becomes
a way to sign in.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base.constants import AuthError
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from integrations.app_authorization import AllowItem, app_authorization_allow, check_app_slug
from integrations.connections import connect
from integrations.errors import (
    AccountMismatchError,
    InvalidAppSlugError,
    ProviderDisabledError,
    UnknownProviderError,
)
from integrations.oauth.provider import ALLAUTH_PREFIX, IntegrationProvider
from integrations.providers import client as http
from integrations.providers import registry

logger = logging.getLogger(__name__)


def _page_url() -> str:
    return reverse("integrations:page")


def safe_next(request: HttpRequest, url: str | None) -> str | None:
    """``url`` if it stays on this site, else None (an off-site ``next`` is ignored)."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def _labels(keys: list[str]) -> str:
    by_key = registry.catalogue().by_key
    return ", ".join(by_key[k].label if k in by_key else k for k in keys)


class IntegrationSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(
        self, request: HttpRequest | None, provider: str | None = None, client_id: str | None = None
    ) -> list[SocialApp]:
        # Integration clients come from our provider configuration (read at call time),
        # not from allauth's SOCIALACCOUNT_PROVIDERS or its SocialApp table.
        if provider and provider.startswith(ALLAUTH_PREFIX):
            try:
                config = registry.flow_config(
                    provider.removeprefix(ALLAUTH_PREFIX), user=getattr(request, "user", None)
                )
            except (UnknownProviderError, ProviderDisabledError):
                return []
            if client_id and client_id != config.client_id:
                return []
            return [
                SocialApp(
                    provider=IntegrationProvider.id,
                    provider_id=provider,
                    name=config.name,
                    client_id=config.client_id,
                    secret=config.client_secret,
                )
            ]
        return super().list_apps(request, provider=provider, client_id=client_id)

    def get_requests_session(self) -> Any:
        return http.session()

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        if not isinstance(sociallogin.provider, IntegrationProvider):
            return super().pre_social_login(request, sociallogin)
        raise ImmediateHttpResponse(self._complete_integration(request, sociallogin))

    def _complete_integration(self, request: HttpRequest, sociallogin: SocialLogin) -> HttpResponse:
        provider = sociallogin.provider
        assert isinstance(provider, IntegrationProvider)
        state = sociallogin.state or {}
        data = state.get("data") or {}
        if (
            state.get("process") != "connect"
            or not request.user.is_authenticated
            or data.get("user_id") != request.user.pk
        ):
            # An integration is never a login, and a flow finishes only for the user who
            # started it.
            return render(
                request,
                "integrations/oauth_error.html",
                {"message": "This connection attempt does not belong to you. Nothing was changed."},
                status=403,
            )
        identity = sociallogin.integration_identity
        requested = list(data.get("capabilities") or [])
        try:
            result = connect.connection_save_from_callback(
                user=request.user,
                provider_id=provider.integration_id,
                uid=identity["uid"],
                email=identity["email"],
                token=sociallogin.integration_token,
                requested=requested,
                connection_id=data.get("connection_id"),
            )
        except AccountMismatchError:
            messages.error(
                request,
                f"You signed in to {provider.name} as {identity['email'] or 'another account'}, "
                "not as the account of this connection. Nothing was changed. To add that "
                "account, use Connect instead.",
            )
            return HttpResponseRedirect(_page_url())
        conn = result.connection
        who = conn.account_email or conn.account_uid
        allowed_app = self._allow_app(request, data, result)
        if result.not_granted:
            granted_now = len(requested) - len(result.not_granted)
            messages.warning(
                request,
                f"You granted {granted_now} of the {len(requested)} permissions asked for "
                f"on {provider.name} ({who}). Not granted: {_labels(result.not_granted)}.",
            )
        elif result.added:
            messages.success(request, f"Connected {provider.name} ({who}): {_labels(requested)}.")
        elif data.get("connection_id") is None:
            # Connect came back with an account this user had connected already: that
            # connection was updated, and its earlier grants kept.
            messages.success(
                request,
                f"{provider.name} ({who}) was already connected; "
                + (
                    f"added {_labels(result.newly_granted)}."
                    if result.newly_granted
                    else f"it already had {_labels(requested)}."
                ),
            )
        else:
            messages.success(
                request, f"Updated {provider.name} ({who}): granted {_labels(requested)}."
            )
        if allowed_app:
            messages.success(request, f"Allowed {allowed_app} to use what you granted.")
        return HttpResponseRedirect(safe_next(request, state.get("next")) or _page_url())

    def _allow_app(
        self, request: HttpRequest, data: dict[str, Any], result: connect.ConnectResult
    ) -> str:
        """A flow started from an app's page allows that app the capabilities it asked
        for and got, on this connection, nothing else (the slug was checked when the
        flow started; checked again: the state is ours, but costs nothing to verify).
        Returns the app allowed, ``""`` for none."""
        app = data.get("app")
        version = data.get("app_version")
        if not isinstance(app, str) or not app or not isinstance(version, int):
            return ""
        try:
            check_app_slug(app)
        except InvalidAppSlugError:
            return ""
        keys = [k for k in result.requested if k not in result.not_granted]
        allowed = app_authorization_allow(
            user=result.connection.user,
            app=app,
            version=version,
            items=[
                AllowItem(kind="capability", key=k, connection_id=result.connection.pk)
                for k in keys
            ],
        )
        return app if allowed else ""

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        if not isinstance(provider, IntegrationProvider):
            return super().on_authentication_error(
                request, provider, error=error, exception=exception, extra_context=extra_context
            )
        extra_context = extra_context or {}
        if not extra_context.get("state"):
            # Missing, expired, replayed or another session's `state`.
            raise ImmediateHttpResponse(
                render(
                    request,
                    "integrations/oauth_error.html",
                    {
                        "message": "This connection attempt has expired or was already "
                        "used. Nothing was changed; start again from the integrations page."
                    },
                    status=400,
                )
            )
        if error == AuthError.CANCELLED:
            messages.info(request, f"You cancelled at {provider.name}. Nothing was changed.")
        else:
            # Only the leading error-code characters of the provider's `error`: it is shown.
            match = re.match(r"[a-z0-9_]{1,64}", str(request.GET.get("error", "")))
            code = match.group(0) if match else ""
            # The exception's text may quote the provider's response body: log its type only.
            logger.warning(
                "integration callback failed: provider=%s error=%s exception=%s",
                provider.integration_id,
                code or error,
                type(exception).__name__ if exception else None,
            )
            messages.error(
                request,
                f"{provider.name} did not complete the connection"
                + (f" ({code})" if code else "")
                + ". Nothing was changed; please try again.",
            )
        raise ImmediateHttpResponse(HttpResponseRedirect(_page_url()))
