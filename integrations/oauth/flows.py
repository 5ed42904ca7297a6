"""Starting a flow: Connect, Add Permissions and Reconnect go to the provider through
allauth in ``connect`` mode, with the scopes chosen here, on the server."""

from __future__ import annotations

from collections.abc import Sequence

from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from django.http import HttpRequest, HttpResponse

from integrations.errors import (
    IntegrationError,
    OwnClientRequiredError,
    ProviderNotConfiguredError,
)
from integrations.models import Connection
from integrations.oauth.provider import allauth_provider_id
from integrations.providers import registry


def _validate_capabilities(provider_id: str, capabilities: Sequence[str]) -> list[str]:
    allowed = {c.key for c in registry.catalogue().oauth_capabilities_of(provider_id)}
    keys = list(dict.fromkeys(capabilities))
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise IntegrationError(f"unknown capabilities: {', '.join(unknown)}", code="invalid_scope")
    if not keys:
        raise IntegrationError("choose at least one permission", code="invalid_scope")
    return keys


def connection_start(
    *,
    request: HttpRequest,
    provider_id: str,
    capabilities: Sequence[str],
    connection: Connection | None = None,
    next_url: str | None = None,
    reconnect: bool = False,
    app: str = "",
    app_version: int = 1,
) -> HttpResponse:
    """Start Connect (``connection`` None) or Add Permissions at the provider.

    Goes through allauth in ``connect`` mode with the scopes chosen here, on the server:
    PKCE S256 and a single-use ``state`` come from allauth; ``access_type=offline``
    from the provider's parameters; ``include_granted_scopes=true`` and ``login_hint``
    for incremental authorization
    (https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth);
    ``prompt=consent`` whenever we hold no refresh token, as Google sends one only then.

    ``app`` (a checked slug; its manifest ``app_version``): the flow was started from
    that app's page, and the callback allows the app what is asked and granted, on the
    connection it lands on (the user's intent; kept in the flow's server-side state).
    """
    config = registry.flow_config(provider_id, user=request.user)
    if not config.configured:
        # Add Permissions and Reconnect too: a grant is only ever asked for with a client.
        if config.allow_user_clients:
            raise OwnClientRequiredError(
                f"To connect {config.name}, first add your own {config.name} OAuth client's "
                "ID and secret on the Integrations page."
            )
        raise ProviderNotConfiguredError(
            f"{config.name} is not set up on this server yet; ask staff."
        )
    keys = _validate_capabilities(provider_id, capabilities)
    scopes = list(config.identity_scopes) + registry.catalogue().scopes_for(keys)
    auth_params = dict(config.auth_params)
    if connection is None or not connection.has_refresh_token or reconnect:
        auth_params["prompt"] = "consent"
    if config.incremental:
        # On every flow, Connect included: the account chosen at the provider may be one
        # already connected (or another tab's flow may have connected it meanwhile), and
        # the answer must then keep what it granted before. Google's token `scope` is
        # the union of this client's grants for the account.
        auth_params["include_granted_scopes"] = "true"
    if connection is not None:
        if not config.incremental:
            scopes += [s for s in connection.scopes if s not in scopes]
        if connection.account_email:
            auth_params["login_hint"] = connection.account_email
    provider = get_social_adapter(request).get_provider(
        request, provider=allauth_provider_id(provider_id)
    )
    data: dict[str, object] = {
        "capabilities": keys,
        "connection_id": connection.pk if connection else None,
        "user_id": request.user.pk,
    }
    if app:
        data["app"] = app
        data["app_version"] = int(app_version)
    return provider.redirect(
        request,
        process="connect",
        next_url=next_url,
        data=data,
        scope=scopes,
        auth_params=auth_params,
    )
