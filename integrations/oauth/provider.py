"""The allauth provider and OAuth2 adapter behind every integration.

allauth does the handshake (``state`` bound to the session and the provider, PKCE
S256, code exchange). Endpoints come from ``registry.provider_config`` at run
time, not at import. The token response is kept whole (allauth's ``parse_token``
drops the granted ``scope``) and handed to our adapter's ``pre_social_login``.
"""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.models import SocialLogin, SocialToken
from allauth.socialaccount.providers.base import ProviderAccount, ProviderException
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.provider import OAuth2Provider
from allauth.socialaccount.providers.oauth2.utils import generate_code_challenge
from allauth.socialaccount.providers.oauth2.views import OAuth2Adapter
from allauth.utils import get_request_param
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from integrations import app_settings
from integrations.core.provider_definitions import lookup
from integrations.core.tokens import parse_token_response
from integrations.providers import client as http
from integrations.providers import registry

ALLAUTH_PREFIX = "integration_"


def allauth_provider_id(provider_id: str) -> str:
    """The allauth sub-provider id of one of our providers: its own namespace, so that
    an integration can never be mistaken for a login provider."""
    return ALLAUTH_PREFIX + provider_id


class IntegrationAccount(ProviderAccount):
    def to_str(self) -> str:
        return str(self.account.extra_data.get("email") or self.account.uid)


class IntegrationOAuth2Adapter(OAuth2Adapter):
    def __init__(self, request: HttpRequest, provider_id: str) -> None:
        self.provider_id = allauth_provider_id(provider_id)
        self.config = registry.flow_config(provider_id, user=getattr(request, "user", None))
        super().__init__(request)

    @property
    def access_token_url(self) -> str:
        return self.config.token_url

    @property
    def authorize_url(self) -> str:
        return self.config.authorize_url

    @property
    def basic_auth(self) -> bool:
        return self.config.client_auth == "basic"

    @property
    def scope_delimiter(self) -> str:
        return self.config.scope_separator

    def get_callback_url(self, request: HttpRequest, app: Any) -> str:
        # The redirect URI registered at the provider: SITE_URL + our callback path.
        return app_settings.site_url() + reverse(
            "integrations:oauth_callback", kwargs={"provider_id": self.config.id}
        )

    def get_access_token_data(
        self, request: HttpRequest, app: Any, client: Any, pkce_code_verifier: Any = None
    ) -> dict:
        # As allauth's, plus the provider's extra token-request parameters.
        data = client.get_access_token(
            get_request_param(request, "code"),
            pkce_code_verifier=pkce_code_verifier,
            extra_data=dict(self.config.token_params) or None,
        )
        self.did_fetch_access_token = True
        return data

    def complete_login(
        self, request: HttpRequest, app: Any, token: SocialToken, **kwargs: Any
    ) -> SocialLogin:
        response = kwargs["response"]
        if self.config.userinfo_url:
            identity = http.fetch_userinfo(self.config, token.token)
        else:
            # No userinfo endpoint: the token response names the account (Slack's
            # `team`, Notion's `owner` and `workspace_id`).
            identity = http.accepted_token_response(self.config, response)
        if not isinstance(identity, dict):
            # Not an object, or an error answer (the provider's compliance hooks).
            raise OAuth2Error("the provider did not say which account this is")
        login = self.get_provider().sociallogin_from_response(request, identity)
        # Kept whole: the granted scopes, the refresh token, the expiry.
        login.integration_token = parse_token_response(
            response,
            now=timezone.now(),
            scope_separator=self.config.scope_separator,
            default_lifetime=self.config.default_lifetime,
        )
        login.integration_identity = {
            "uid": self.get_provider().extract_uid(identity),
            # The account's label: an email for most, a handle for some (X: data.username).
            "email": str(lookup(identity, self.config.email_field) or "")
            if self.config.email_field
            else "",
        }
        return login


class IntegrationProvider(OAuth2Provider):
    id = "integration"
    name = "Integration"
    package = "integrations.oauth"
    account_class = IntegrationAccount
    oauth2_adapter_class = IntegrationOAuth2Adapter
    pkce_enabled_default = True

    def __init__(self, request: HttpRequest, app: Any = None) -> None:
        super().__init__(request, app=app)
        self.config = registry.flow_config(self.integration_id, user=getattr(request, "user", None))
        self.name = self.config.name

    @property
    def integration_id(self) -> str:
        return str(self.app.provider_id).removeprefix(ALLAUTH_PREFIX)

    def get_oauth2_adapter(self, request: HttpRequest) -> IntegrationOAuth2Adapter:
        return IntegrationOAuth2Adapter(request, self.integration_id)

    def get_pkce_params(self) -> dict:
        # PKCE S256 (RFC 9700 §2.1.1), whatever allauth's per-app settings say; a provider
        # definition may turn it off only for a server that rejects the parameters.
        return generate_code_challenge() if self.config.pkce else {}

    def get_callback_url(self) -> str:
        return reverse("integrations:oauth_callback", kwargs={"provider_id": self.integration_id})

    def extract_uid(self, data: dict) -> str:
        uid = lookup(data, self.config.uid_field)
        if uid in (None, ""):
            raise ProviderException(f"the userinfo answer has no {self.config.uid_field}")
        return str(uid)

    def extract_common_fields(self, data: dict) -> dict:
        return {}

    def extract_email_addresses(self, data: dict) -> list:
        return []
